package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// ApplyOperation records what a successful GET returned. Once status.done is true nothing here
// changes it again: the terminal status is final. req is the request of spec.submit (nil in the
// track form): a batch response names no outputs, its request does.
func ApplyOperation(st *opsv1.OptimizationOperationStatus, op *longrunningpb.Operation, now metav1.Time, req *opsv1.SubmitSpec) {
	if st.Done {
		return
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if md := op.GetMetadata(); md != nil {
		st.MetadataType = md.GetTypeUrl()
	}
	if !op.GetDone() {
		return
	}
	st.Done = true
	st.CompletionTime = &now
	if e := op.GetError(); e != nil {
		st.Error = &opsv1.OperationError{
			Code:    e.GetCode(),
			Status:  CodeName(e.GetCode()),
			Message: truncate(e.GetMessage()),
		}
		return
	}
	st.Result = summarize(op.GetResponse(), req)
}

// ToursResponseType is the @type URL of an OptimizeToursResponse, the only response with
// routes to summarize or to store (spec.resultTo).
const ToursResponseType = "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse"

// summarize keeps a few numbers of a response, and where a solve that writes to Cloud Storage
// wrote; the full response can be megabytes.
func summarize(resp *anypb.Any, req *opsv1.SubmitSpec) *opsv1.OperationResult {
	if resp == nil {
		// done without error or response: the oneof is empty, which the contract allows.
		return &opsv1.OperationResult{}
	}
	res := &opsv1.OperationResult{Type: resp.GetTypeUrl()}
	msg, err := resp.UnmarshalNew()
	if err != nil {
		// An unknown type still counts as a response: only its summary is missing.
		return res
	}
	switch r := msg.(type) {
	case *routeoptimizationpb.OptimizeToursResponse:
		res.Routes = ptr(int32(len(r.GetRoutes())))
		res.SkippedShipments = ptr(int32(len(r.GetSkippedShipments())))
		var visits int
		for _, route := range r.GetRoutes() {
			visits += len(route.GetVisits())
		}
		res.Visits = ptr(int32(min(visits, math.MaxInt32)))
		if m := r.GetMetrics(); m != nil {
			res.TotalCost = strconv.FormatFloat(m.GetTotalCost(), 'f', -1, 64)
			res.VehiclesUsed = ptr(m.GetUsedVehicleCount())
			if a := m.GetAggregatedRouteMetrics(); a != nil {
				if d := a.GetTravelDistanceMeters(); d >= 0 && d < math.MaxInt64/2 {
					res.TravelDistanceMeters = ptr(int64(math.Round(d)))
				}
				res.TravelDuration = durationOf(a.GetTravelDuration())
				res.TotalDuration = durationOf(a.GetTotalDuration())
			}
		}
	case *routeoptimizationpb.OptimizeToursUriResponse:
		res.OutputURI = r.GetOutput().GetUri()
		if res.OutputURI != "" {
			res.Outputs = []string{res.OutputURI}
		}
	case *routeoptimizationpb.BatchOptimizeToursResponse:
		// Empty by design: the results are where the request said to write them.
		if req != nil && req.BatchOptimizeTours != nil {
			for _, c := range req.BatchOptimizeTours.ModelConfigs {
				res.Outputs = append(res.Outputs, c.OutputConfig.GCSDestination.URI)
			}
		}
	}
	return res
}

// durationOf writes a protobuf duration as a Go duration ("" when absent or out of range).
func durationOf(d *durationpb.Duration) opsv1.Duration {
	if d == nil || d.CheckValid() != nil || d.AsDuration() < 0 {
		return ""
	}
	return opsv1.Duration(d.AsDuration().String())
}

func ptr[T any](v T) *T { return &v }

// truncate keeps a message on one line (kubectl -o wide shows it in a column) and within
// MaxMessageBytes, so a verbose error cannot push the object towards etcd's size limit.
func truncate(s string) string {
	return Bound(strings.Join(strings.Fields(s), " "), MaxMessageBytes)
}

// Limits of text the API server takes: a condition's message (metav1.Condition) and an
// event's note (events.k8s.io/v1). A longer one fails the whole write, or loses the event.
const (
	MaxConditionMessage = 32768
	MaxEventNote        = 1024
)

// Bound makes s valid UTF-8 of at most n bytes, marking a cut with "..." and never cutting
// inside a character.
func Bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const more = "..."
	cut := max(n-len(more), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// Problem is the latest lasting reason the operator could not read the operation, or, before
// spec.submit was answered with an operation name, where the submit stands. The zero value
// means the last read succeeded (or, before a name, that the request waits to be sent).
type Problem struct {
	// Reason is one of ReasonNotFound, ReasonAuthFailed, ReasonRequestRejected,
	// ReasonRemoteUnavailable, ReasonInvalidSpec; before an operation name also
	// ReasonSubmitting, ReasonSubmitUncertain and ReasonInvalidRequest.
	Reason  string
	Message string
}

// TrackedName is the remote operation obj tracks: status.operationName, which holds
// spec.operationName or the name the server answered to spec.submit. Before the first status
// write of a resource that names its operation, spec.operationName.
func TrackedName(obj *opsv1.OptimizationOperation) string {
	if obj.Status.OperationName != "" {
		return obj.Status.OperationName
	}
	return obj.Spec.OperationName
}

// Submitting reports whether obj starts its own solve and has no operation name yet: its
// conditions then tell where the request stands rather than what an operation does.
func Submitting(obj *opsv1.OptimizationOperation) bool {
	return obj.Spec.Submit != nil && obj.Status.OperationName == ""
}

// IsReason reports whether obj's Ready condition has reason.
func IsReason(obj *opsv1.OptimizationOperation, reason string) bool {
	c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionReady)
	return c != nil && c.Reason == reason
}

// PastExpectedEnd says that operation name still runs after end, its deadline. The message
// holds no clock reading, so that later reads that find it running write nothing.
func PastExpectedEnd(name string, end time.Time) Problem {
	return Problem{Reason: opsv1.ReasonPastExpectedEnd, Message: fmt.Sprintf(
		"Operation %s is still running after its expected end %s (its timeout); it is read by its age again",
		name, end.UTC().Format(time.RFC3339))}
}

// ProblemFor turns a classified GET failure into a Problem. Transient failures are not problems
// until they have lasted long enough; the caller decides that and passes unavailable=true.
func ProblemFor(name string, f Failure, unavailable bool) Problem {
	switch {
	case f.Kind == NotFound:
		return Problem{Reason: opsv1.ReasonNotFound, Message: fmt.Sprintf(
			"Operation %s was not found: %s. It never existed under this name, or it finished and expired before it was seen done", name, f)}
	case f.Kind == Auth:
		return Problem{Reason: opsv1.ReasonAuthFailed, Message: fmt.Sprintf(
			"Cannot read operation %s: %s. %s", name, f, authHint)}
	case f.Kind.Permanent():
		return Problem{Reason: opsv1.ReasonRequestRejected, Message: fmt.Sprintf(
			"The server rejected reading operation %s: %s", name, f)}
	case unavailable:
		return Problem{Reason: opsv1.ReasonRemoteUnavailable, Message: fmt.Sprintf(
			"Reads of operation %s have kept failing for longer than the operator's --remote-unavailable-after; last error: %s", name, f)}
	}
	return Problem{}
}

// authHint says what to fix when the API refuses the credentials.
const authHint = "Check that the credentials (spec.credentialsSecretRef, or the operator's Workload Identity) belong to a principal with the Route Optimization Editor role in the operation's project"

// Messages of status.cancel when the operation was seen done before an answer to a cancel was
// recorded (outcome AlreadyDone). The Succeeded condition repeats them, so both tell one story.
const (
	CancelNotSentMessage             = "The operation had already finished; no cancel was sent"
	CancelUnansweredMessage          = "The operation finished before an answer to the cancel was recorded"
	CancelUnansweredCancelledMessage = "The operation ended CANCELLED before an answer to the operator's cancel was recorded (the answer was lost to a restart, or every attempt failed until it ended): the cancel was sent and most likely taken"
)

// InvalidPollInterval is the problem of a spec.pollInterval that cannot be used.
func InvalidPollInterval(name string, err error) Problem {
	return Problem{Reason: opsv1.ReasonInvalidSpec, Message: Truncate(fmt.Sprintf(
		"Nothing is sent for operation %s: spec.pollInterval cannot be used: %v; set a Go duration of at most 24h, or remove it",
		name, err))}
}

// StandingProblem is the problem the stored Ready condition tells, when it tells one: a
// reconcile that learned nothing new keeps it, instead of flipping Ready back and forth
// between the problem and the state under it.
func StandingProblem(obj *opsv1.OptimizationOperation) Problem {
	c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionReady)
	if c == nil {
		return Problem{}
	}
	switch c.Reason {
	case opsv1.ReasonNotFound, opsv1.ReasonAuthFailed, opsv1.ReasonRequestRejected, opsv1.ReasonRemoteUnavailable,
		opsv1.ReasonInvalidSpec, opsv1.ReasonSubmitUncertain, opsv1.ReasonInvalidRequest:
		return Problem{Reason: c.Reason, Message: c.Message}
	case opsv1.ReasonSubmitting:
		if Submitting(obj) {
			return Problem{Reason: c.Reason, Message: c.Message}
		}
	case opsv1.ReasonPastExpectedEnd:
		// Said by the last read; only the next one can take it back.
		return Problem{Reason: c.Reason, Message: c.Message}
	}
	return Problem{}
}

// CancelProblemFor turns a failed cancel that is no answer (see CancelOutcome) into a Problem.
// Only refused credentials are one: a person must act, though reads may still succeed.
// Transient failures are retried and show as Cancelling.
func CancelProblemFor(name string, f Failure) Problem {
	if f.Kind != Auth {
		return Problem{}
	}
	return Problem{Reason: opsv1.ReasonAuthFailed, Message: fmt.Sprintf(
		"Cannot cancel operation %s: %s. %s", name, f, authHint)}
}

// CredentialsProblem is the Problem for credentials that could not be loaded at all.
func CredentialsProblem(name string, err error) Problem {
	return Problem{Reason: opsv1.ReasonAuthFailed, Message: fmt.Sprintf(
		"Cannot read operation %s: %s", name, truncate(err.Error()))}
}

// SetConditions writes the Succeeded, Ready and Stalled conditions that the spec, the recorded
// status and the current problem call for. The table in docs/status.md is this function.
func SetConditions(obj *opsv1.OptimizationOperation, p Problem) {
	st := &obj.Status
	name := TrackedName(obj)
	gen := obj.Generation
	set := func(typ string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: Bound(msg, MaxConditionMessage), ObservedGeneration: gen,
		})
	}
	stalled := func(reason, msg string) { set(opsv1.ConditionStalled, metav1.ConditionTrue, reason, msg) }
	notStalled := func() { meta.RemoveStatusCondition(&st.Conditions, opsv1.ConditionStalled) }

	if st.Done {
		notStalled()
		switch e := st.Error; {
		case st.Cancel != nil && st.Cancel.Outcome == opsv1.CancelNotSubmitted:
			// No operation ever existed: the request was cancelled before it could start one.
			msg := "Cancelled as requested, before a solve was started"
			if st.Cancel.Message != "" {
				msg += ": " + st.Cancel.Message
			}
			set(opsv1.ConditionSucceeded, metav1.ConditionFalse, opsv1.ReasonCancelled, msg)
			set(opsv1.ConditionReady, metav1.ConditionTrue, opsv1.ReasonCancelled, msg)
		case e == nil:
			reason, msg := opsv1.ReasonSucceeded, fmt.Sprintf("Operation %s finished with a response", name)
			if cancelWasSent(st) {
				reason = opsv1.ReasonCompletedDespiteCancel
				msg = fmt.Sprintf("Operation %s completed with a response although a cancel was requested", name)
			}
			set(opsv1.ConditionSucceeded, metav1.ConditionTrue, reason, msg)
			set(opsv1.ConditionReady, metav1.ConditionTrue, reason, msg)
		case e.Code == 1 && obj.Spec.Cancel:
			// The message tells the story status.cancel tells: with no answer recorded
			// (AlreadyDone), it does not claim this resource's cancel did it.
			msg := fmt.Sprintf("Operation %s was cancelled as requested: %s (code %d): %s", name, e.Status, e.Code, e.Message)
			if c := st.Cancel; c != nil && c.Outcome == opsv1.CancelAlreadyDone {
				msg = fmt.Sprintf("Operation %s ended %s (code %d): %s. status.cancel.outcome AlreadyDone: %s", name, e.Status, e.Code, e.Message, c.Message)
			}
			set(opsv1.ConditionSucceeded, metav1.ConditionFalse, opsv1.ReasonCancelled, msg)
			set(opsv1.ConditionReady, metav1.ConditionTrue, opsv1.ReasonCancelled, msg)
		case e.Code == 1:
			msg := fmt.Sprintf("Operation %s was cancelled, but not through this resource: %s (code %d): %s", name, e.Status, e.Code, e.Message)
			set(opsv1.ConditionSucceeded, metav1.ConditionFalse, opsv1.ReasonCancelled, msg)
			set(opsv1.ConditionReady, metav1.ConditionFalse, opsv1.ReasonCancelled, msg)
			stalled(opsv1.ReasonCancelled, msg)
		default:
			msg := fmt.Sprintf("Operation %s failed: %s (code %d): %s", name, e.Status, e.Code, e.Message)
			set(opsv1.ConditionSucceeded, metav1.ConditionFalse, opsv1.ReasonFailed, msg)
			set(opsv1.ConditionReady, metav1.ConditionFalse, opsv1.ReasonFailed, msg)
			stalled(opsv1.ReasonFailed, msg)
		}
		return
	}
	if Submitting(obj) {
		setSubmitting(p, set, stalled, notStalled)
		return
	}

	switch p.Reason {
	case opsv1.ReasonNotFound:
		set(opsv1.ConditionSucceeded, metav1.ConditionFalse, p.Reason, p.Message)
		set(opsv1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		stalled(p.Reason, p.Message)
		return
	case opsv1.ReasonAuthFailed, opsv1.ReasonRequestRejected, opsv1.ReasonRemoteUnavailable, opsv1.ReasonInvalidSpec:
		// What the operation is doing is unknown: keep the last Succeeded, and say on Ready
		// why it cannot be refreshed.
		if meta.FindStatusCondition(st.Conditions, opsv1.ConditionSucceeded) == nil {
			set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, opsv1.ReasonPending,
				fmt.Sprintf("Operation %s has not been read yet", name))
		}
		set(opsv1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		if p.Reason == opsv1.ReasonRemoteUnavailable {
			notStalled()
		} else {
			stalled(p.Reason, p.Message)
		}
		return
	}

	notStalled()
	if st.StartTime == nil {
		msg := fmt.Sprintf("Operation %s has not been read yet", name)
		set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, opsv1.ReasonPending, msg)
		set(opsv1.ConditionReady, metav1.ConditionFalse, opsv1.ReasonPending, msg)
		return
	}
	reason, msg := opsv1.ReasonRunning, fmt.Sprintf("Operation %s is running", name)
	if p.Reason == opsv1.ReasonPastExpectedEnd {
		reason, msg = p.Reason, p.Message
	}
	if obj.Spec.Cancel {
		reason, msg = opsv1.ReasonCancelling, fmt.Sprintf("Cancel of operation %s requested; waiting for it to end", name)
		if c := st.Cancel; c != nil && (c.Outcome == opsv1.CancelUnsupported || c.Outcome == opsv1.CancelNotFound) {
			reason, msg = opsv1.ReasonCancelUnsupported, fmt.Sprintf(
				"The server cannot cancel operation %s (%s); it keeps running and is still tracked", name, c.Message)
		}
	}
	set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, reason, msg)
	set(opsv1.ConditionReady, metav1.ConditionFalse, reason, msg)
}

// setSubmitting writes the conditions of a resource whose spec.submit has no operation name yet.
// No operation exists to have an outcome, so Succeeded is Unknown throughout and its reason
// says where the request stands: Submitting (waiting, being sent, or retried after an answer
// that started nothing), SubmitUncertain or InvalidRequest. Refused credentials and an unusable
// spec are told on Ready only, as they are for reads; Ready's reason, the State column, tells
// either.
func setSubmitting(p Problem, set func(typ string, s metav1.ConditionStatus, reason, msg string), stalled func(reason, msg string), notStalled func()) {
	const notSent = "The request of spec.submit has not been sent yet"
	switch p.Reason {
	case opsv1.ReasonSubmitUncertain, opsv1.ReasonInvalidRequest:
		set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, p.Reason, p.Message)
		set(opsv1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		stalled(p.Reason, p.Message)
	case opsv1.ReasonAuthFailed, opsv1.ReasonInvalidSpec:
		set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, opsv1.ReasonSubmitting,
			"No solve was started: the request of spec.submit cannot be sent")
		set(opsv1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		stalled(p.Reason, p.Message)
	default:
		msg := p.Message
		if msg == "" {
			msg = notSent
		}
		set(opsv1.ConditionSucceeded, metav1.ConditionUnknown, opsv1.ReasonSubmitting, msg)
		set(opsv1.ConditionReady, metav1.ConditionFalse, opsv1.ReasonSubmitting, msg)
		notStalled()
	}
}

// cancelWasSent reports whether a cancel reached the server before the operation was seen done.
func cancelWasSent(st *opsv1.OptimizationOperationStatus) bool {
	if st.Cancel == nil {
		return false
	}
	switch st.Cancel.Outcome {
	case opsv1.CancelAccepted, opsv1.CancelUnsupported, opsv1.CancelNotFound:
		return true
	}
	return false
}

// CancelOutcome says what the server's answer to a cancel means. answered is false for
// failures that are not an answer (transient errors, quota, refused credentials): the cancel
// stays pending and is sent again.
func CancelOutcome(err error) (outcome opsv1.CancelOutcome, message string, answered bool) {
	if err == nil {
		return opsv1.CancelAccepted, "The server accepted the cancel", true
	}
	f := Classify(err)
	switch f.Kind {
	case Unimplemented, Rejected:
		return opsv1.CancelUnsupported, Truncate(f.String()), true
	case NotFound:
		return opsv1.CancelNotFound, Truncate(f.String()), true
	}
	return "", "", false
}

// Truncate bounds a message copied into status to the schema's limit.
func Truncate(s string) string { return truncate(s) }
