package decide

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/api/googleapi"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/result"
)

var (
	t0  = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cfg = Config{Poll: policy.DefaultPollConfig, RemoteUnavailableAfter: 3 * time.Minute,
		DeletionCancelTimeout: 2 * time.Minute, CredentialsRecheck: 10 * time.Second, Burst: 10}
)

const (
	opName      = "projects/p/locations/global/operations/1"
	metadataURL = "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursUriMetadata"
)

// A resource in each state the table starts from.
func tracked() *opsv1.OptimizationOperation {
	o := &opsv1.OptimizationOperation{}
	o.Name, o.Namespace, o.Generation = "o", "ns", 1
	o.CreationTimestamp = metav1.NewTime(t0.Add(-time.Hour))
	o.Spec.OperationName = opName
	o.Status.OperationName = opName
	return o
}

func running() *opsv1.OptimizationOperation {
	o := tracked()
	started := metav1.NewTime(t0.Add(-time.Hour))
	o.Status.StartTime = &started
	policy.SetConditions(o, policy.Problem{})
	o.Status.ObservedGeneration = 1
	return o
}

func cancelling() *opsv1.OptimizationOperation {
	o := running()
	o.Spec.Cancel, o.Generation = true, 2
	o.Finalizers = []string{Finalizer}
	policy.SetConditions(o, policy.Problem{})
	return o
}

func cancelRecorded() *opsv1.OptimizationOperation {
	o := cancelling()
	at := metav1.NewTime(t0.Add(-time.Second))
	o.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &at}
	o.Status.ObservedGeneration = 2
	return o
}

func withDeadline(o *opsv1.OptimizationOperation, fromNow time.Duration) *opsv1.OptimizationOperation {
	end := metav1.NewTime(t0.Add(fromNow))
	o.Status.ExpectedEndTime = &end
	return o
}

func withProblem(o *opsv1.OptimizationOperation, reason string) *opsv1.OptimizationOperation {
	policy.SetConditions(o, policy.Problem{Reason: reason, Message: "earlier " + reason})
	return o
}

func done() *opsv1.OptimizationOperation {
	o := running()
	o.Status.Done = true
	o.Status.Result = &opsv1.OperationResult{}
	policy.SetConditions(o, policy.Problem{})
	return o
}

func submitting() *opsv1.OptimizationOperation {
	o := tracked()
	o.Spec.OperationName, o.Status.OperationName = "", ""
	o.Spec.Submit = &opsv1.SubmitSpec{Parent: "projects/p", OptimizeToursURI: &opsv1.OptimizeToursURIRequest{
		Input: opsv1.CloudStorageFile{URI: "gs://b/in.json"}, Output: opsv1.CloudStorageFile{URI: "gs://b/out.json"}}}
	return o
}

func attempted(outcome opsv1.SubmitOutcome) *opsv1.OptimizationOperation {
	o := submitting()
	at := metav1.NewTime(t0.Add(-time.Minute))
	o.Status.Submit = &opsv1.SubmitStatus{AttemptedAt: &at, Attempts: 1, RequestHash: "h", Outcome: outcome}
	return o
}

func deleting(policyName opsv1.DeletionPolicy, age time.Duration) *opsv1.OptimizationOperation {
	o := running()
	o.Spec.DeletionPolicy = policyName
	o.Finalizers = []string{Finalizer}
	at := metav1.NewTime(t0.Add(-age))
	o.DeletionTimestamp = &at
	return o
}

// Answers of the API.
func op(doneWith *rpcstatus.Status) *longrunningpb.Operation {
	o := &longrunningpb.Operation{Name: opName}
	if doneWith != nil {
		o.Done = true
		if doneWith.Code != 0 {
			o.Result = &longrunningpb.Operation_Error{Error: doneWith}
		}
	}
	return o
}

var (
	runningOp   = op(nil)
	succeededOp = op(&rpcstatus.Status{})
	cancelledOp = op(&rpcstatus.Status{Code: 1, Message: "cancelled"})
	unavailable = status.Error(codes.Unavailable, "backend down")
	notFound    = status.Error(codes.NotFound, "no such operation")
	denied      = status.Error(codes.PermissionDenied, "denied")
	exhausted   = status.Error(codes.ResourceExhausted, "quota")
	unsupported = status.Error(codes.Unimplemented, "cancel not supported")
	errTimedOut = fmt.Errorf("submit: %w", context.DeadlineExceeded)
	refusedCred = &policy.CredentialsError{Err: errors.New("secret ns/k has no key")}
)

func httpError(t *testing.T, code int, body string) error {
	t.Helper()
	err := googleapi.CheckResponse(&http.Response{StatusCode: code,
		Header: http.Header{"Content-Type": []string{"application/json"}}, Body: io.NopCloser(strings.NewReader(body))})
	if err == nil {
		t.Fatal("no error")
	}
	return err
}

// TestDecideAndFold walks the state space: each row is a state, what the observation adds to
// it, the action Decide must choose, what the action brought back, and what the resource must
// then say (Succeeded and Ready as reason/status) and how it goes on.
func TestDecideAndFold(t *testing.T) {
	invalid := httpError(t, 400, `{"error":{"code":400,"message":"bad model","status":"INVALID_ARGUMENT"}}`)
	type row struct {
		name     string
		obj      *opsv1.OptimizationOperation
		schedule Schedule
		observe  func(*Observation)
		want     Action
		out      Outcome
		// What the resource says afterwards ("" : not checked).
		succeeded, ready string
		check            func(t *testing.T, d Decision, r Result)
	}
	due := Schedule{SeenGeneration: 1}
	seen2 := Schedule{SeenGeneration: 2}
	rows := []row{
		// A resource that tracks an operation, never read.
		{name: "fresh/read ok running", obj: tracked(), want: Read, out: Outcome{Op: runningOp},
			succeeded: "Unknown/Running", ready: "False/Running", check: priorityIs(budget.First)},
		{name: "fresh/read ok done", obj: tracked(), want: Read, out: Outcome{Op: succeededOp},
			succeeded: "True/Succeeded", ready: "True/Succeeded"},
		{name: "fresh/budget denied", obj: tracked(), want: Read, out: Outcome{Denied: true, Wait: 3 * time.Second},
			succeeded: "Unknown/Pending", ready: "False/Pending", check: requeueIs(3 * time.Second)},
		{name: "fresh/read failed transient", obj: tracked(), want: Read, out: Outcome{ReadErr: unavailable},
			succeeded: "Unknown/Pending", ready: "False/Pending", check: eventIs("RemoteError")},
		{name: "fresh/read failed not found", obj: tracked(), want: Read, out: Outcome{ReadErr: notFound},
			succeeded: "False/NotFound", ready: "False/NotFound"},
		{name: "fresh/read failed permission", obj: tracked(), want: Read, out: Outcome{ReadErr: denied},
			succeeded: "Unknown/Pending", ready: "False/AuthFailed", check: requeueAtMost(cfg.CredentialsRecheck)},
		{name: "fresh/read failed 429", obj: tracked(), want: Read, out: Outcome{ReadErr: exhausted},
			succeeded: "Unknown/Pending", ready: "False/Pending", check: requeueAtLeast(policy.MinRateLimitedDelay)},
		{name: "fresh/credentials refused", obj: tracked(), observe: func(o *Observation) { o.CredsErr = refusedCred; o.CredsKey = "invalid:1" },
			want: Read, out: Outcome{ReadErr: refusedCred}, succeeded: "Unknown/Pending", ready: "False/AuthFailed"},

		// Running, polled on its schedule.
		{name: "running/not due", obj: running(), schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Minute)},
			want: None, check: requeueIs(time.Minute)},
		{name: "running/due read ok", obj: running(), schedule: due, want: Read, out: Outcome{Op: runningOp},
			succeeded: "Unknown/Running", ready: "False/Running", check: priorityIs(budget.Poll)},
		{name: "running/spec changed before due", obj: func() *opsv1.OptimizationOperation { o := running(); o.Generation = 2; return o }(),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)}, want: Read, out: Outcome{Op: runningOp},
			succeeded: "Unknown/Running", check: observedIs(2)},
		{name: "running/secret changed after refusal", obj: withProblem(running(), opsv1.ReasonAuthFailed),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour), RefusedCreds: "json:old"},
			observe:  func(o *Observation) { o.CredsKey = "json:new" }, want: Read, out: Outcome{Op: runningOp},
			succeeded: "Unknown/Running", ready: "False/Running"},
		{name: "running/woken after outage", obj: running(), schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)},
			observe: func(o *Observation) { o.Woken = true }, want: Read, out: Outcome{Op: succeededOp}, succeeded: "True/Succeeded"},
		{name: "running/read failed long enough", obj: running(),
			schedule: Schedule{SeenGeneration: 1, Failures: 9, FirstFailure: t0.Add(-5 * time.Minute)},
			want:     Read, out: Outcome{ReadErr: unavailable}, succeeded: "Unknown/Running", ready: "False/RemoteUnavailable"},
		{name: "running/expired", obj: running(), schedule: due, want: Read, out: Outcome{ReadErr: notFound},
			succeeded: "False/NotFound", ready: "False/NotFound"},
		{name: "running/remote unavailable, read ok again", obj: withProblem(running(), opsv1.ReasonRemoteUnavailable), schedule: due,
			want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Running", ready: "False/Running"},
		{name: "running/remote unavailable stands while denied", obj: withProblem(running(), opsv1.ReasonRemoteUnavailable), schedule: due,
			want: Read, out: Outcome{Denied: true, Wait: time.Second}, ready: "False/RemoteUnavailable"},
		{name: "running/invalid poll interval", obj: func() *opsv1.OptimizationOperation {
			o := running()
			d := opsv1.Duration("soon")
			o.Spec.PollInterval = &d
			return o
		}(), schedule: due, want: None, succeeded: "Unknown/Running", ready: "False/InvalidSpec"},

		// spec.cancel.
		{name: "cancel/first read finds it running", obj: cancelling(), schedule: due, want: Read, out: Outcome{Op: runningOp},
			succeeded: "Unknown/Cancelling", check: all(priorityIs(budget.Urgent), requestRecorded, requeueIs(Immediately))},
		{name: "cancel/first read finds it done", obj: cancelling(), schedule: due, want: Read, out: Outcome{Op: succeededOp},
			succeeded: "True/Succeeded", check: outcomeIs(opsv1.CancelAlreadyDone, policy.CancelNotSentMessage)},
		{name: "cancel/read failed goes to the cancel next", obj: cancelling(), schedule: due, want: Read, out: Outcome{ReadErr: unavailable},
			check: func(t *testing.T, _ Decision, r Result) {
				if !r.Schedule.ReadForCancel {
					t.Error("ReadForCancel = false after a failed read with a cancel due")
				}
			}},
		{name: "cancel/record the request first", obj: cancelling(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: RecordCancelRequest, succeeded: "Unknown/Cancelling", check: requestRecorded},
		{name: "cancel/accepted and confirmed", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, Op: cancelledOp},
			succeeded: "False/Cancelled", ready: "True/Cancelled", check: all(tokensAre(2), mustStore, outcomeIs(opsv1.CancelAccepted, ""))},
		{name: "cancel/accepted, still running", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, Op: runningOp},
			succeeded: "Unknown/Cancelling", check: all(eventIs("CancelSent"), requeueAtMost(2*time.Second))},
		{name: "cancel/unimplemented", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, CancelErr: unsupported, Op: runningOp},
			succeeded: "Unknown/CancelUnsupported", check: all(outcomeIs(opsv1.CancelUnsupported, ""), eventIs(opsv1.ReasonCancelUnsupported))},
		{name: "cancel/not found", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, CancelErr: notFound},
			succeeded: "Unknown/CancelUnsupported", check: outcomeIs(opsv1.CancelNotFound, "")},
		{name: "cancel/transient failure backs off", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, CancelErr: unavailable},
			succeeded: "Unknown/Cancelling", check: all(eventIs("CancelFailed"), func(t *testing.T, _ Decision, r Result) {
				if r.Schedule.CancelFailures != 1 || !r.Schedule.NextCancelAt.After(t0) {
					t.Errorf("cancel back-off not set: %+v", r.Schedule)
				}
			})},
		{name: "cancel/refused", obj: cancelRecorded(), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, CancelErr: denied}, ready: "False/AuthFailed"},
		{name: "cancel/refused stands after a good read", obj: withProblem(cancelRecorded(), opsv1.ReasonAuthFailed),
			schedule: Schedule{SeenGeneration: 2, CancelFailures: 1, CancelRefused: true, NextCancelAt: t0.Add(time.Hour)},
			want:     Read, out: Outcome{Op: runningOp}, ready: "False/AuthFailed"},
		{name: "cancel/outage does not flip Ready", obj: withProblem(cancelRecorded(), opsv1.ReasonRemoteUnavailable),
			schedule: Schedule{SeenGeneration: 2, ReadForCancel: true, Failures: 20, FirstFailure: t0.Add(-10 * time.Minute)},
			want:     SendCancel, out: Outcome{CancelSent: true, CancelErr: unavailable}, ready: "False/RemoteUnavailable"},
		{name: "cancel/outage, budget denied", obj: withProblem(cancelRecorded(), opsv1.ReasonRemoteUnavailable),
			schedule: Schedule{SeenGeneration: 2, ReadForCancel: true}, want: SendCancel, out: Outcome{Denied: true, Wait: time.Second},
			ready: "False/RemoteUnavailable", check: requeueIs(time.Second)},
		{name: "cancel/answer lost to a restart, ended cancelled", obj: cancelRecorded(), schedule: seen2, want: Read,
			out: Outcome{Op: cancelledOp}, succeeded: "False/Cancelled", ready: "True/Cancelled",
			check: all(outcomeIs(opsv1.CancelAlreadyDone, policy.CancelUnansweredCancelledMessage), storyIsOne)},
		{name: "cancel/answer lost to a restart, completed", obj: cancelRecorded(), schedule: seen2, want: Read,
			out: Outcome{Op: succeededOp}, succeeded: "True/Succeeded", check: outcomeIs(opsv1.CancelAlreadyDone, policy.CancelUnansweredMessage)},

		// A finished operation is never called again.
		{name: "done/cancel asked afterwards", obj: func() *opsv1.OptimizationOperation { o := done(); o.Spec.Cancel, o.Generation = true, 2; return o }(),
			want: Finish, succeeded: "True/Succeeded", check: all(outcomeIs(opsv1.CancelAlreadyDone, policy.CancelNotSentMessage), observedIs(2))},
		{name: "done/finalizer left", obj: func() *opsv1.OptimizationOperation { o := done(); o.Finalizers = []string{Finalizer}; return o }(),
			want: RemoveFinalizer},
		{name: "running/cancel policy needs the finalizer", obj: func() *opsv1.OptimizationOperation {
			o := running()
			o.Spec.DeletionPolicy = opsv1.DeletionPolicyCancel
			return o
		}(), want: AddFinalizer},

		// spec.submit.
		{name: "submit/sent, started", obj: submitting(), want: Submit,
			out:       Outcome{Attempt: attempted("").Status.Submit, Name: opName, MetadataType: metadataURL},
			succeeded: "Unknown/Running", ready: "False/Running",
			check: all(priorityIs(budget.Submit), mustStore, eventIs("Submitted"), requeueIs(cfg.Poll.Min), startedAt(t0), func(t *testing.T, _ Decision, r Result) {
				if r.Status.MetadataType != metadataURL {
					t.Errorf("metadataType = %q, want the answer's %q", r.Status.MetadataType, metadataURL)
				}
			})},
		{name: "submit/answer lost", obj: submitting(), want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, SubmitErr: errTimedOut},
			succeeded: "Unknown/SubmitUncertain", ready: "False/SubmitUncertain", check: mustStore},
		{name: "submit/refused", obj: submitting(), want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, SubmitErr: invalid},
			succeeded: "Unknown/InvalidRequest", ready: "False/InvalidRequest"},
		{name: "submit/quota, retried", obj: submitting(), want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, SubmitErr: exhausted},
			succeeded: "Unknown/Submitting", check: all(eventIs("SubmitFailed"), requeueAtLeast(policy.MinRateLimitedDelay))},
		{name: "submit/cap or budget denied", obj: submitting(), want: Submit, out: Outcome{Denied: true, Wait: 5 * time.Second},
			succeeded: "Unknown/Submitting", check: requeueIs(5 * time.Second)},
		{name: "submit/attempt conflicted", obj: submitting(), want: Submit, out: Outcome{Conflict: true}, check: requeueIs(Immediately)},
		{name: "submit/credentials refused", obj: submitting(), observe: func(o *Observation) { o.CredsErr, o.CredsKey = refusedCred, "invalid:1" },
			want: Submit, out: Outcome{SubmitErr: refusedCred}, ready: "False/AuthFailed"},
		{name: "submit/request invalid", obj: submitting(), observe: func(o *Observation) {
			o.Request.Problem = &policy.Problem{Reason: opsv1.ReasonInvalidRequest, Message: "bad"}
		}, want: None, ready: "False/InvalidRequest", check: requeueIs(0)},
		{name: "submit/backing off", obj: attempted(opsv1.SubmitNotStarted), schedule: Schedule{SubmitInputs: "h adc", NextSubmitAt: t0.Add(time.Minute)},
			observe: func(o *Observation) { o.Request.Hash = "h" }, want: None, check: requeueIs(time.Minute)},
		{name: "submit/new request skips the back-off", obj: attempted(opsv1.SubmitNotStarted), schedule: Schedule{SubmitInputs: "h adc", NextSubmitAt: t0.Add(time.Minute)},
			observe: func(o *Observation) { o.Request.Hash = "h2" }, want: Submit, out: Outcome{Conflict: true}},
		{name: "submit/uncertain waits for a person", obj: attempted(opsv1.SubmitUncertain), want: None,
			ready: "False/SubmitUncertain", check: requeueIs(0)},
		{name: "submit/resubmit approved", obj: func() *opsv1.OptimizationOperation {
			o := attempted(opsv1.SubmitUncertain)
			o.Annotations = map[string]string{opsv1.AnnotationResubmit: t0.Add(-time.Minute).Format(time.RFC3339)}
			return o
		}(), want: Submit, out: Outcome{Conflict: true}},
		{name: "submit/cancelled before sending", obj: func() *opsv1.OptimizationOperation { o := submitting(); o.Spec.Cancel = true; return o }(),
			want: NotSubmitted, succeeded: "False/Cancelled", ready: "True/Cancelled", check: outcomeIs(opsv1.CancelNotSubmitted, "")},

		// A solve whose deadline is known.
		{name: "deadline/submit records the request's", obj: submitting(), observe: func(o *Observation) { o.Request.Timeout = 20 * time.Minute },
			want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, Name: opName}, check: expectedEndIs(t0.Add(20 * time.Minute))},
		{name: "deadline/spec.solveTimeout from the first read", obj: func() *opsv1.OptimizationOperation {
			o := tracked()
			d := opsv1.Duration("30m")
			o.Spec.SolveTimeout = &d
			return o
		}(), want: Read, out: Outcome{Op: runningOp}, check: expectedEndIs(t0.Add(30 * time.Minute))},
		{name: "deadline/no read planned past it", obj: func() *opsv1.OptimizationOperation {
			o := running()
			end := metav1.NewTime(t0.Add(10 * time.Second))
			o.Status.ExpectedEndTime = &end
			return o
		}(), schedule: due, want: Read, out: Outcome{Op: runningOp}, check: requeueIs(10*time.Second + policy.JustAfter)},
		{name: "deadline/submitted: its first read is a routine one", obj: func() *opsv1.OptimizationOperation {
			o := attempted(opsv1.SubmitSubmitted)
			o.Status.OperationName = opName
			at, end := metav1.NewTime(t0.Add(-10*time.Second)), metav1.NewTime(t0.Add(20*time.Minute))
			o.Status.Submit.SubmittedAt, o.Status.StartTime, o.Status.ExpectedEndTime = &at, &at, &end
			return o
		}(), want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Running", check: all(priorityIs(budget.Poll), requeueIs(1900*time.Millisecond))},
		{name: "deadline/sparse: the next read a fifth of the timeout on", obj: func() *opsv1.OptimizationOperation {
			o := running()
			o.Spec.PollBeforeDeadline = opsv1.PollSparse
			started := metav1.NewTime(t0.Add(-time.Minute))
			o.Status.StartTime = &started
			return withDeadline(o, 59*time.Minute)
		}(), schedule: due, want: Read, out: Outcome{Op: runningOp}, check: requeueIs(11*time.Minute + 24*time.Second)},
		{name: "deadline/just past it, running: not said yet", obj: withDeadline(running(), -2*time.Second), schedule: due,
			want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Running", ready: "False/Running"},
		{name: "deadline/past its close reads, running: said", obj: withDeadline(running(), -time.Minute), schedule: due,
			want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/PastExpectedEnd", ready: "False/PastExpectedEnd",
			check: all(priorityIs(budget.Due), requeueAtLeast(cfg.Poll.Min))},
		{name: "deadline/said, then done", obj: withProblem(withDeadline(running(), -time.Hour), opsv1.ReasonPastExpectedEnd), schedule: due,
			want: Read, out: Outcome{Op: succeededOp}, succeeded: "True/Succeeded", ready: "True/Succeeded"},
		{name: "deadline/said, a read fails briefly: still said", obj: withProblem(withDeadline(running(), -time.Hour), opsv1.ReasonPastExpectedEnd), schedule: due,
			want: Read, out: Outcome{ReadErr: unavailable}, succeeded: "Unknown/PastExpectedEnd", ready: "False/PastExpectedEnd",
			check: priorityIs(budget.Poll)}, // said: read by its age again, as a routine poll
		{name: "deadline/past it, cancel requested: the cancel's story", obj: withDeadline(cancelling(), -time.Hour), schedule: Schedule{SeenGeneration: 2},
			want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Cancelling"},
		{name: "deadline/batch submit with spec.solveTimeout: from the answer", obj: func() *opsv1.OptimizationOperation {
			o := submitting()
			d := opsv1.Duration("10m")
			o.Spec.SolveTimeout = &d
			return o
		}(), want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, Name: opName}, check: expectedEndIs(t0.Add(10 * time.Minute))},
		{name: "deadline/past it: due before routine polls", obj: func() *opsv1.OptimizationOperation {
			o := running()
			end := metav1.NewTime(t0.Add(-2 * time.Second))
			o.Status.ExpectedEndTime = &end
			return o
		}(), schedule: due, want: Read, out: Outcome{Op: runningOp}, check: all(priorityIs(budget.Due), requeueIs(3*time.Second))},

		// reconcile.fluxcd.io/requestedAt: one read now, whatever the schedule; a value is handled once.
		{name: "reread/not due, asked for: read now", obj: requested(running(), "1"), schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)},
			want: Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Running", check: all(priorityIs(budget.First), handledIs("1"))},
		{name: "reread/the value handled asks for nothing", obj: handled(requested(running(), "1"), "1"),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Minute)}, want: None, check: requeueIs(time.Minute)},
		{name: "reread/handled by this process, the cache lagging", obj: requested(running(), "1"),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Minute), Result: ResultSchedule{HandledRequest: "1"}}, want: None, check: requeueIs(time.Minute)},
		{name: "reread/a new value after one handled", obj: handled(requested(running(), "2"), "1"),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)}, want: Read, out: Outcome{Op: runningOp}, check: handledIs("2")},
		{name: "reread/not found, backing off: read now, found", obj: requested(withProblem(tracked(), opsv1.ReasonNotFound), "1"),
			schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(5 * time.Minute), Failures: 1, LastFailure: &policy.Failure{Kind: policy.NotFound}},
			want:     Read, out: Outcome{Op: runningOp}, succeeded: "Unknown/Running", ready: "False/Running", check: all(priorityIs(budget.First), handledIs("1"))},
		{name: "reread/a failed read is handled too", obj: requested(running(), "1"), schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)},
			want: Read, out: Outcome{ReadErr: notFound}, succeeded: "False/NotFound", check: handledIs("1")},
		{name: "reread/budget denied: not handled yet", obj: requested(running(), "1"), schedule: Schedule{SeenGeneration: 1, NextPollAt: t0.Add(time.Hour)},
			want: Read, out: Outcome{Denied: true, Wait: 2 * time.Second}, check: all(handledIs(""), requeueIs(2*time.Second))},
		{name: "reread/a cancel is not delayed by it", obj: requested(cancelRecorded(), "1"), schedule: Schedule{SeenGeneration: 2, ReadForCancel: true},
			want: SendCancel, out: Outcome{CancelSent: true, Op: runningOp}, check: all(priorityIs(budget.Urgent), handledIs(""))},
		{name: "reread/done: recorded without a read", obj: requested(done(), "1"), want: Finish, succeeded: "True/Succeeded", check: handledIs("1")},
		{name: "reread/submit backing off: sent now", obj: requested(attempted(opsv1.SubmitNotStarted), "1"),
			schedule: Schedule{SubmitInputs: "h adc", NextSubmitAt: t0.Add(time.Hour)}, observe: func(o *Observation) { o.Request.Hash = "h" },
			want: Submit, out: Outcome{Attempt: attempted("").Status.Submit, Name: opName}, check: handledIs("1")},
		{name: "reread/submit uncertain: nothing sent, handled", obj: requested(attempted(opsv1.SubmitUncertain), "1"), want: None,
			ready: "False/SubmitUncertain", check: handledIs("1")},

		// spec.resultTo: the response of a finished solve, kept from the read that found it done,
		// is written in the next reconcile.
		{name: "result/read finds it done: the response is kept", obj: resultTo(tracked()), want: Read, out: Outcome{Op: toursOp},
			succeeded: "True/Succeeded", check: all(responseKept, requeueIs(Immediately), storedIs(""))},
		{name: "result/write the response held", obj: resultTo(toursDone()), observe: func(o *Observation) { o.ResponseHeld = true },
			want: WriteResult, out: Outcome{Write: &ResultWrite{Stored: true, Encoded: result.Encoded{Key: opsv1.ResultKeyJSON, JSONBytes: 10}}},
			succeeded: "True/Succeeded", ready: "True/Succeeded",
			check: all(priorityIs(budget.First), tokensAre(0), storedIs("True/Stored"), eventIs(opsv1.ConditionResultStored), responseDropped)},
		{name: "result/after a restart: read again, then written", obj: resultTo(toursDone()), want: WriteResult,
			out:   Outcome{Op: toursOp, Write: &ResultWrite{Stored: true, Encoded: result.Encoded{Key: opsv1.ResultKeyGzip, JSONBytes: 300 << 10}}},
			check: all(tokensAre(1), storedIs("True/Stored"))},
		{name: "result/written before a restart", obj: resultTo(toursDone()), want: WriteResult,
			out: Outcome{Write: &ResultWrite{Found: true, InTheWay: result.Complete, Stored: true, Existing: true}}, check: storedIs("True/Stored")},
		{name: "result/too large: the solve still succeeded", obj: resultTo(toursDone()), observe: func(o *Observation) { o.ResponseHeld = true },
			want: WriteResult, out: Outcome{Write: &ResultWrite{TooLarge: &result.TooLargeError{JSONBytes: 9 << 20, CompressedBytes: 2 << 20}}},
			succeeded: "True/Succeeded", ready: "True/Succeeded", check: all(storedIs("False/TooLarge"), eventIs("ResultNotStored"), responseDropped)},
		{name: "result/a ConfigMap in the way", obj: resultTo(toursDone()), observe: func(o *Observation) { o.ResponseHeld = true },
			want: WriteResult, out: Outcome{Write: &ResultWrite{Found: true, InTheWay: result.Foreign}},
			check: all(storedIs("False/NotOwned"), requeueIs(0), responseDropped)},
		{name: "result/write refused: tried again soon", obj: resultTo(toursDone()), want: WriteResult,
			out:   Outcome{Op: toursOp, Write: &ResultWrite{Err: apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "routes", errors.New("no"))}},
			check: all(storedIs("False/WriteFailed"), requeueAtMost(cfg.CredentialsRecheck), responseKept)},
		{name: "result/backing off", obj: resultTo(toursDone()), schedule: Schedule{Result: ResultSchedule{NextAt: t0.Add(time.Minute)}},
			want: None, check: requeueIs(time.Minute)},
		{name: "result/asked for again: no back-off", obj: requested(resultTo(toursDone()), "1"), schedule: Schedule{Result: ResultSchedule{NextAt: t0.Add(time.Minute)}},
			want: WriteResult, out: Outcome{Op: toursOp, Write: &ResultWrite{Stored: true}}, check: all(storedIs("True/Stored"), handledIs("1"))},
		{name: "result/budget denied", obj: resultTo(toursDone()), want: WriteResult, out: Outcome{Denied: true, Wait: time.Second},
			check: all(storedIs(""), requeueIs(time.Second))},
		{name: "result/expired before it was stored", obj: resultTo(toursDone()), want: WriteResult, out: Outcome{ReadErr: notFound},
			succeeded: "True/Succeeded", check: storedIs("False/ResponseUnavailable")},
		{name: "result/failed solve: nothing to store", obj: resultTo(tracked()), want: Read,
			out: Outcome{Op: op(&rpcstatus.Status{Code: 3, Message: "bad model"})}, succeeded: "False/Failed", check: storedIs("False/NoResponse")},
		{name: "result/stored: nothing more", obj: stored(resultTo(toursDone())), want: Finish, check: storedIs("")},

		// Deletion, each policy.
		{name: "delete/orphan", obj: deleting(opsv1.DeletionPolicyOrphan, time.Second), want: Release, check: released},
		{name: "delete/orphan without finalizer", obj: func() *opsv1.OptimizationOperation {
			o := deleting(opsv1.DeletionPolicyOrphan, time.Second)
			o.Finalizers = nil
			return o
		}(), want: Forget},
		{name: "delete/cancel accepted", obj: deleting(opsv1.DeletionPolicyCancel, time.Second), want: CancelOnDelete,
			out: Outcome{CancelSent: true}, check: all(released, eventIs("CancelledOnDelete"))},
		{name: "delete/cancel unimplemented", obj: deleting(opsv1.DeletionPolicyCancel, time.Second), want: CancelOnDelete,
			out: Outcome{CancelSent: true, CancelErr: unsupported}, check: all(released, eventIs("CancelOnDeleteFailed"))},
		{name: "delete/cancel transient, retried in time", obj: deleting(opsv1.DeletionPolicyCancel, time.Second), want: CancelOnDelete,
			out: Outcome{CancelSent: true, CancelErr: unavailable}, check: all(eventIs("CancelOnDeleteRetrying"), requeueAtMost(cfg.DeletionCancelTimeout))},
		{name: "delete/budget denied", obj: deleting(opsv1.DeletionPolicyCancel, time.Second), want: CancelOnDelete,
			out: Outcome{Denied: true, Wait: time.Second}, check: requeueIs(time.Second)},
		{name: "delete/past the deadline sends nothing", obj: deleting(opsv1.DeletionPolicyCancel, 3*time.Minute), want: Release,
			check: all(released, eventIs("CancelOnDeleteAbandoned"))},
		{name: "delete/unanswered spec.cancel is sent", obj: func() *opsv1.OptimizationOperation {
			o := deleting(opsv1.DeletionPolicyOrphan, time.Second)
			o.Spec.Cancel = true
			return o
		}(), want: CancelOnDelete},
		{name: "delete/before submission sends nothing", obj: func() *opsv1.OptimizationOperation {
			o := submitting()
			o.Spec.DeletionPolicy, o.Finalizers = opsv1.DeletionPolicyCancel, []string{Finalizer}
			at := metav1.NewTime(t0)
			o.DeletionTimestamp = &at
			return o
		}(), want: Release},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			o := Observation{Obj: tc.obj.DeepCopy(), Now: t0, Schedule: tc.schedule, CredsKey: "adc", Jitter: 0.5}
			if tc.observe != nil {
				tc.observe(&o)
			}
			if tc.obj.Spec.Submit != nil && o.Request.Hash == "" && o.Request.Problem == nil {
				o.Request.Hash = "h"
			}
			d := Decide(cfg, o)
			if d.Action != tc.want {
				t.Fatalf("Decide = %s, want %s", d.Action, tc.want)
			}
			out := tc.out
			out.At = t0
			r := Fold(cfg, o, d, out)
			obj := o.Obj.DeepCopy()
			Record(obj, r, o.Obj.Status.Done, tc.schedule != Schedule{})
			if tc.succeeded != "" {
				if got := cond(obj, opsv1.ConditionSucceeded); got != tc.succeeded {
					t.Errorf("Succeeded = %s, want %s", got, tc.succeeded)
				}
			}
			if tc.ready != "" {
				if got := cond(obj, opsv1.ConditionReady); got != tc.ready {
					t.Errorf("Ready = %s, want %s", got, tc.ready)
				}
			}
			if tc.check != nil {
				tc.check(t, d, r)
			}
			if r.Status.Done && r.Requeue != 0 && !ResultToWrite(obj) {
				t.Errorf("a finished operation comes back after %s", r.Requeue)
			}
			if r.ResultStored != nil && cond(obj, opsv1.ConditionResultStored) != string(r.ResultStored.Status)+"/"+r.ResultStored.Reason {
				t.Errorf("ResultStored recorded as %s, folded as %+v", cond(obj, opsv1.ConditionResultStored), r.ResultStored)
			}
		})
	}
}

func cond(o *opsv1.OptimizationOperation, typ string) string {
	c := meta.FindStatusCondition(o.Status.Conditions, typ)
	if c == nil {
		return "absent"
	}
	return string(c.Status) + "/" + c.Reason
}

type check func(t *testing.T, d Decision, r Result)

func all(cs ...check) check {
	return func(t *testing.T, d Decision, r Result) {
		for _, c := range cs {
			c(t, d, r)
		}
	}
}

func priorityIs(p budget.Priority) check {
	return func(t *testing.T, d Decision, _ Result) {
		if d.Priority != p {
			t.Errorf("priority %s, want %s", d.Priority, p)
		}
	}
}

func tokensAre(n int) check {
	return func(t *testing.T, d Decision, _ Result) {
		if d.Tokens != n {
			t.Errorf("tokens %d, want %d", d.Tokens, n)
		}
	}
}

func requeueIs(want time.Duration) check {
	return func(t *testing.T, _ Decision, r Result) {
		if r.Requeue != want {
			t.Errorf("requeue %s, want %s", r.Requeue, want)
		}
	}
}

func requeueAtMost(limit time.Duration) check {
	return func(t *testing.T, _ Decision, r Result) {
		if r.Requeue <= 0 || r.Requeue > limit {
			t.Errorf("requeue %s, want in (0, %s]", r.Requeue, limit)
		}
	}
}

func requeueAtLeast(limit time.Duration) check {
	return func(t *testing.T, _ Decision, r Result) {
		if r.Requeue < limit {
			t.Errorf("requeue %s, want at least %s", r.Requeue, limit)
		}
	}
}

func startedAt(want time.Time) check {
	return func(t *testing.T, _ Decision, r Result) {
		t.Helper()
		if s := r.Status.StartTime; s == nil || !s.Time.Equal(want) {
			t.Errorf("startTime = %v, want %s", s, want)
		}
	}
}

func expectedEndIs(want time.Time) check {
	return func(t *testing.T, _ Decision, r Result) {
		if e := r.Status.ExpectedEndTime; e == nil || !e.Time.Equal(want) {
			t.Errorf("status.expectedEndTime = %v, want %s", e, want)
		}
	}
}

func observedIs(gen int64) check {
	return func(t *testing.T, _ Decision, r Result) {
		if !r.Observed {
			t.Errorf("generation %d not observed", gen)
		}
	}
}

func eventIs(reason string) check {
	return func(t *testing.T, _ Decision, r Result) {
		for _, e := range r.Events {
			if e.Reason == reason {
				return
			}
		}
		t.Errorf("events %+v, want one with reason %s", r.Events, reason)
	}
}

func outcomeIs(outcome opsv1.CancelOutcome, message string) check {
	return func(t *testing.T, _ Decision, r Result) {
		c := r.Status.Cancel
		if c == nil || c.Outcome != outcome || (message != "" && c.Message != message) {
			t.Errorf("status.cancel = %+v, want outcome %s %q", c, outcome, message)
		}
	}
}

func requestRecorded(t *testing.T, _ Decision, r Result) {
	if c := r.Status.Cancel; c == nil || c.RequestedAt == nil || c.Outcome != "" {
		t.Errorf("status.cancel = %+v, want the request recorded and no outcome", c)
	}
}

func mustStore(t *testing.T, _ Decision, r Result) {
	if !r.MustStore {
		t.Error("an answer is not marked to be stored at once")
	}
}

func released(t *testing.T, _ Decision, r Result) {
	if !r.ReleaseFinalizer {
		t.Error("the finalizer is not released")
	}
}

// storyIsOne: the Succeeded condition tells what status.cancel tells.
func storyIsOne(t *testing.T, _ Decision, r Result) {
	o := &opsv1.OptimizationOperation{Status: r.Status}
	o.Spec.Cancel = true
	policy.SetConditions(o, policy.Problem{})
	c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded)
	if c == nil || !strings.Contains(c.Message, r.Status.Cancel.Message) || strings.Contains(c.Message, "as requested") {
		t.Errorf("Succeeded says %q; status.cancel says %q", c.Message, r.Status.Cancel.Message)
	}
}
