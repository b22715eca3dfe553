package decide

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/result"
)

// This file holds the two requests a resource makes besides tracking its operation: a read now
// (the annotation reconcile.fluxcd.io/requestedAt) and the full response written to the
// ConfigMap of spec.resultTo.

// RequestedAt is the value of obj's reconcile.fluxcd.io/requestedAt when it asks for something
// not handled yet ("" when it does not). handled is what this process handled last: a cache
// that lags its own status write must not make it handle the same value twice.
func RequestedAt(obj *opsv1.OptimizationOperation, handled string) string {
	v := obj.Annotations[opsv1.AnnotationRequestedAt]
	if v == "" || v == obj.Status.LastHandledReconcileAt || v == handled {
		return ""
	}
	return v
}

// ResultToWrite reports whether obj's response is still to be written to spec.resultTo, by the
// operator's own: its operation is done, without an error, and no outcome that a retry cannot
// change is recorded. A ConfigMap in the way (NotOwned) is waited for: its change wakes the
// resource.
func ResultToWrite(obj *opsv1.OptimizationOperation) bool {
	if obj.Spec.ResultTo == nil || !obj.Status.Done {
		return false
	}
	c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionResultStored)
	if c == nil {
		return true
	}
	switch c.Reason {
	case opsv1.ReasonResultStored, opsv1.ReasonResultTooLarge, opsv1.ReasonResultNoResponse, opsv1.ReasonResultUnavailable:
		return false
	}
	return true
}

// ResultBlocked reports whether obj's response waits for a ConfigMap that is in the way.
func ResultBlocked(obj *opsv1.OptimizationOperation) bool {
	c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionResultStored)
	return c != nil && c.Reason == opsv1.ReasonResultNotOwned
}

// hasToursResponse reports whether obj's operation finished with an OptimizeToursResponse, the
// only response spec.resultTo stores.
func hasToursResponse(obj *opsv1.OptimizationOperation) bool {
	r := obj.Status.Result
	return obj.Status.Error == nil && r != nil && r.Type == policy.ToursResponseType
}

// ResultSchedule is when the response of a finished operation may be written again after a
// failed write.
type ResultSchedule struct {
	// HandledRequest is the value of reconcile.fluxcd.io/requestedAt this process handled last.
	HandledRequest string
	// Failures counts failed writes in a row; NextAt is when to try again.
	Failures int
	NextAt   time.Time
}

// ResultOutcome is the ResultStored condition a write (or its absence) calls for.
type ResultOutcome struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

// ResultWrite is what act did about spec.resultTo.
type ResultWrite struct {
	// Stored: the ConfigMap holds the whole response. Existing: it did before this reconcile
	// (written by an earlier process whose status write was lost). Encoded says what was
	// written (zero when Existing).
	Stored, Existing bool
	Encoded          result.Encoded
	// TooLarge: nothing was written, the response does not fit.
	TooLarge *result.TooLargeError
	// NotTours: the response read is no OptimizeToursResponse.
	NotTours bool
	// InTheWay is the ConfigMap found under the name that is not this resource's, whole.
	InTheWay result.Ownership
	Found    bool
	Owner    string
	// Err is why the ConfigMap could not be written or read.
	Err error
}

// decideDone settles a resource whose operation is done: nothing is read again, except once for
// the response spec.resultTo asks for when this process no longer holds it.
func decideDone(c Config, o Observation, d Decision) Decision {
	obj, s := o.Obj, &d.Schedule.Result
	d.Request = RequestedAt(obj, s.HandledRequest)
	if !ResultToWrite(obj) || !hasToursResponse(obj) {
		d.Action = Finish
		return d
	}
	if d.Request == "" && o.Now.Before(s.NextAt) {
		d.After = recheck(c, d.Schedule, s.NextAt, o.Now)
		return d
	}
	d.Action, d.Priority = WriteResult, budget.First
	if o.ResponseHeld {
		d.Tokens = 0
	}
	return d
}

// afterDone is what a resource whose operation was just seen done (or was found done) needs
// for spec.resultTo: keep the response for the write of the next reconcile, or say there is
// nothing to store.
func (f *folder) afterDone() {
	obj := f.obj()
	if !ResultToWrite(obj) || ResultBlocked(obj) {
		return
	}
	if !hasToursResponse(obj) {
		what := "failed"
		switch e := obj.Status.Error; {
		case e != nil && e.Code == 1:
			what = "was cancelled"
		case e == nil && obj.Status.Result != nil && obj.Status.Result.Type != "":
			what = "answered a " + typeName(obj.Status.Result.Type)
		case e == nil:
			what = "finished without a response"
		}
		f.r.ResultStored = &ResultOutcome{metav1.ConditionFalse, opsv1.ReasonResultNoResponse, fmt.Sprintf(
			"Nothing to store in ConfigMap %s: operation %s %s, not an OptimizeToursResponse", f.resultName(), f.name(), what)}
		return
	}
	if op := f.out.Op; op != nil && op.GetDone() {
		f.r.Response = op.GetResponse()
	}
	// The write comes in a reconcile of its own, after the terminal status is stored.
	f.r.Requeue = Immediately
}

// writeResult records the write of the response to spec.resultTo.
func (f *folder) writeResult() {
	out, s := f.out, &f.r.Schedule.Result
	name, cm := f.name(), f.resultName()
	w := out.Write
	switch {
	case out.Denied:
		s.NextAt = f.now.Add(out.Wait)
		f.r.Requeue = out.Wait
	case out.ReadErr != nil:
		fl := policy.Classify(out.ReadErr)
		if fl.Kind == policy.NotFound {
			f.resultFinal(opsv1.ReasonResultUnavailable, fmt.Sprintf(
				"The response of operation %s is not stored in ConfigMap %s: the operator restarted before it wrote it, and the operation can no longer be read (%s); it expired", name, cm, fl))
			return
		}
		f.resultRetry(out.ReadErr, fmt.Sprintf("Cannot read operation %s again for its response, to store it in ConfigMap %s: %s", name, cm, fl))
	case w == nil:
	case w.Stored:
		msg := fmt.Sprintf("The response of operation %s is in ConfigMap %s", name, cm)
		switch {
		case w.Existing:
			msg += " (written before the operator restarted)"
		case w.Encoded.Compressed():
			msg += fmt.Sprintf(", binaryData[%q]: %s of JSON, %s gzip-compressed", w.Encoded.Key,
				result.Size(w.Encoded.JSONBytes), result.Size(len(w.Encoded.Value)))
		default:
			msg += fmt.Sprintf(", data[%q]: %s of JSON", w.Encoded.Key, result.Size(w.Encoded.JSONBytes))
		}
		f.r.ResultStored = &ResultOutcome{metav1.ConditionTrue, opsv1.ReasonResultStored, msg}
		f.r.DropResponse = true
		if !w.Existing {
			f.event(corev1.EventTypeNormal, opsv1.ConditionResultStored, "WriteResult", "%s", msg)
		}
	case w.TooLarge != nil:
		f.resultFinal(opsv1.ReasonResultTooLarge, fmt.Sprintf(
			"The response of operation %s is not stored in ConfigMap %s: %s. The solve succeeded; read the response with GetOperation, or solve with spec.submit.optimizeToursUri (OptimizeToursUri writes the response to Cloud Storage, for results of any size)",
			name, cm, w.TooLarge))
	case w.NotTours:
		f.resultFinal(opsv1.ReasonResultNoResponse, fmt.Sprintf(
			"Nothing to store in ConfigMap %s: the response of operation %s is not an OptimizeToursResponse", cm, name))
	case w.Found && w.InTheWay != result.Complete:
		why := "it was not created by the operator for this resource"
		if w.Owner != "" {
			why = "it is controlled by " + w.Owner
		}
		if w.InTheWay == result.Incomplete {
			why = "it is controlled by this resource but does not hold the whole response (its content does not match its " + opsv1.AnnotationResultSHA256 + " annotation)"
		}
		msg := fmt.Sprintf("The response of operation %s is not stored: ConfigMap %s exists and %s. It is left as it is; the response is written as soon as that ConfigMap is deleted", name, cm, why)
		f.r.ResultStored = &ResultOutcome{metav1.ConditionFalse, opsv1.ReasonResultNotOwned, msg}
		f.r.DropResponse = true
		s.Failures, s.NextAt = 0, time.Time{}
		if !ResultBlocked(f.o.Obj) {
			f.event(corev1.EventTypeWarning, "ResultNotStored", "WriteResult", "%s", msg)
		}
	default:
		f.resultRetry(w.Err, fmt.Sprintf("Cannot store the response of operation %s in ConfigMap %s: %s", name, cm, policy.Truncate(w.Err.Error())))
	}
}

// resultFinal records an outcome no retry changes.
func (f *folder) resultFinal(reason, msg string) {
	f.r.ResultStored = &ResultOutcome{metav1.ConditionFalse, reason, msg}
	f.r.DropResponse = true
	f.event(corev1.EventTypeWarning, "ResultNotStored", "WriteResult", "%s", msg)
}

// resultRetry records a write that may work later: refused permissions are looked at again
// soon (a fix in RBAC sends no event), other failures back off. A response read for it is kept
// for the next try.
func (f *folder) resultRetry(err error, msg string) {
	s := &f.r.Schedule.Result
	s.Failures++
	fl := policy.Classify(err)
	delay := policy.NextPoll(f.c.Poll, policy.PollInput{Now: f.now, Failure: &fl, Failures: s.Failures, Jitter: f.o.Jitter})
	if apierrors.IsForbidden(err) && f.c.CredentialsRecheck > 0 {
		delay = min(delay, f.c.CredentialsRecheck)
	}
	s.NextAt = f.now.Add(delay)
	f.r.Requeue = delay
	f.r.ResultStored = &ResultOutcome{metav1.ConditionFalse, opsv1.ReasonResultWriteFailed, msg}
	if op := f.out.Op; op != nil {
		f.r.Response = op.GetResponse()
	}
	if s.Failures == 1 {
		f.event(corev1.EventTypeWarning, "ResultNotStored", "WriteResult", "%s; tried again in %s", msg, delay.Round(time.Second))
	}
}

// handleRequest records the value of reconcile.fluxcd.io/requestedAt the action served. A call
// the budget or a conflict kept from being made served nothing; a call that failed did.
func (f *folder) handleRequest() {
	v := f.d.Request
	if v == "" || f.out.Denied || f.out.Conflict {
		return
	}
	f.r.Status.LastHandledReconcileAt = v
	f.r.Schedule.Result.HandledRequest = v
}

func (f *folder) resultName() string {
	return f.o.Obj.Namespace + "/" + f.o.Obj.Spec.ResultTo.Name
}

// typeName is the message name of a type URL.
func typeName(url string) string {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '/' {
			return url[i+1:]
		}
	}
	return url
}

// setResultStored sets the ResultStored condition; Record is its only caller.
func setResultStored(obj *opsv1.OptimizationOperation, o ResultOutcome) {
	meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type: opsv1.ConditionResultStored, Status: o.Status, Reason: o.Reason,
		Message: policy.Bound(o.Message, policy.MaxConditionMessage), ObservedGeneration: obj.Generation,
	})
}
