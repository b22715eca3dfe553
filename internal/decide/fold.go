package decide

import (
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// Immediately is the delay of a reconcile that must run again at once, after its status write
// (RequeueAfter, unlike an error, skips the work queue's backoff).
const Immediately = time.Millisecond

// Outcome is what the action brought back from the API.
type Outcome struct {
	// At is when the action ended.
	At time.Time
	// Denied: the budget or the submit cap had no room; Wait is when it will have.
	Denied bool
	Wait   time.Duration
	// Op is the operation as read (nil when it was not read); ReadErr is why a read failed
	// (a policy.CredentialsError when it could not even be sent).
	Op      *longrunningpb.Operation
	ReadErr error
	// CancelSent: a cancel was sent (or failed before it could be); CancelErr is its answer
	// (nil: accepted).
	CancelSent bool
	CancelErr  error
	// Attempt is the attempt of spec.submit recorded before the call (nil: none recorded);
	// Conflict: it could not be recorded because the object changed since it was read.
	Attempt  *opsv1.SubmitStatus
	Conflict bool
	// Name, MetadataType and SubmitErr are the answer to the submit.
	Name, MetadataType string
	SubmitErr          error
	// Write is what became of spec.resultTo's ConfigMap (nil: nothing was tried).
	Write *ResultWrite
}

// Event is an event to emit once the status is written.
type Event struct {
	Type, Reason, Action, Note string
}

// SubmitAnswer is the answer to one attempt: the operation name (empty unless it started one)
// and status.submit as it is to be written.
type SubmitAnswer struct {
	Name   string
	Record opsv1.SubmitStatus
	// ExpectedEnd is status.expectedEndTime from the request's timeout (nil: not known): the
	// request is not at hand when a failed write has to be made again.
	ExpectedEnd *metav1.Time
}

// Result is the fold of an outcome: what to record.
type Result struct {
	// Status is the new status, conditions aside: Conditions derives them once.
	Status opsv1.OptimizationOperationStatus
	// Schedule is the resource's new schedule.
	Schedule Schedule
	// Problem is the problem this reconcile established; nil keeps the standing one.
	Problem *policy.Problem
	// Observed: status now reflects the current spec (observedGeneration).
	Observed bool
	// Requeue is when to come back (0: only when something changes).
	Requeue time.Duration
	Events  []Event
	// MustStore: the status carries an answer that must not be lost (a cancel's, a submit's):
	// it is written at once, retried through conflicts.
	MustStore bool
	// CancelAnswer and SubmitAnswer are kept in memory until stored.
	CancelAnswer *opsv1.CancelStatus
	SubmitAnswer *SubmitAnswer
	// ReleaseFinalizer: deletion may go on.
	ReleaseFinalizer bool
	// SubmitOutcome is the outcome of a submit sent, for the metric ("" when none was sent).
	SubmitOutcome opsv1.SubmitOutcome
	// ResultStored is the ResultStored condition to set (nil: unchanged). Response is the
	// finished operation's response, to keep in memory until it is written to spec.resultTo;
	// DropResponse: the one kept is no longer needed.
	ResultStored *ResultOutcome
	Response     *anypb.Any
	DropResponse bool
}

// Fold turns the outcome of d into what to record. It is a pure function of its arguments.
func Fold(c Config, o Observation, d Decision, out Outcome) Result {
	f := folder{c: c, o: o, d: d, out: out, now: o.Now}
	if !out.At.IsZero() {
		f.now = out.At
	}
	f.r = Result{Status: *o.Obj.Status.DeepCopy(), Schedule: d.Schedule, Problem: d.Problem}
	switch d.Action {
	case None:
		f.r.Requeue = d.After
		// Whatever kept the request of spec.submit from being sent (or from being sent now)
		// was decided on this generation.
		f.r.Observed = d.Problem != nil || policy.Submitting(o.Obj)
	case Finish:
		CloseCancelRecord(&f.r.Status, o.Obj.Spec.Cancel, f.now)
		f.r.Observed = true
		f.afterDone()
	case WriteResult:
		f.writeResult()
	case NotSubmitted:
		obj := f.obj()
		submit.NotSubmitted(obj, metav1.NewTime(f.now))
		f.set(obj)
		f.r.Problem, f.r.Observed = &policy.Problem{}, true
	case RecordCancelRequest:
		f.recordCancelRequest()
	case Read:
		f.read()
	case SendCancel:
		f.sendCancel()
	case Submit:
		f.submit()
	case CancelOnDelete:
		f.cancelOnDelete()
	case Release:
		f.r.ReleaseFinalizer = true
		f.releaseNote()
	}
	f.handleRequest()
	return f.r
}

type folder struct {
	c   Config
	o   Observation
	d   Decision
	out Outcome
	now time.Time
	r   Result
}

// obj is the resource with the new status, for the functions that take one.
func (f *folder) obj() *opsv1.OptimizationOperation {
	o := f.o.Obj.DeepCopy()
	o.Status = f.r.Status
	return o
}

// set stores what a function of the whole object changed in its status.
func (f *folder) set(o *opsv1.OptimizationOperation) { f.r.Status = o.Status }

func (f *folder) event(typ, reason, action, note string, args ...any) {
	f.r.Events = append(f.r.Events, Event{Type: typ, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)})
}

func (f *folder) name() string { return policy.TrackedName(f.o.Obj) }

// recordCancelRequest stores the cancel request before the first cancel is sent, and comes
// back at once to send it.
func (f *folder) recordCancelRequest() {
	t := metav1.NewTime(f.now)
	f.r.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &t}
	s := &f.r.Schedule
	s.CancelRequestedAt, s.ReadForCancel, s.NextPollAt = f.now, true, f.now
	f.r.Observed, f.r.Requeue = true, Immediately
}

func (f *folder) read() {
	s := &f.r.Schedule
	switch {
	case f.out.Denied:
		// Due again as soon as the budget has room, not at the old schedule: the spec change
		// or cancel this read serves was already marked as seen.
		s.NextPollAt = f.now.Add(f.out.Wait)
		f.r.Requeue = f.out.Wait
	case f.out.Op == nil:
		// A read that failed says nothing against sending the cancel: the next try goes
		// straight to it instead of reading first again (in an outage, every read it waits
		// for may fail too).
		s.ReadForCancel = f.d.SendCancel
		f.failure(f.out.ReadErr, false)
	default:
		s.ReadForCancel = false
		f.applied(f.out.Op)
		if f.d.SendCancel && CancelPending(f.obj()) {
			// Running, and a cancel is due: its turn comes next, without reading again.
			if !CancelRequested(f.obj()) {
				f.recordCancelRequest()
				return
			}
			s.ReadForCancel = true
			s.NextPollAt = f.now
			f.r.Observed, f.r.Requeue = true, Immediately
			return
		}
		f.settle()
	}
}

// applied records a successful read.
func (f *folder) applied(op *longrunningpb.Operation) {
	s := &f.r.Schedule
	s.Failures, s.FirstFailure, s.LastFailure, s.RefusedCreds = 0, time.Time{}, nil, ""
	policy.ApplyOperation(&f.r.Status, op, metav1.NewTime(f.now), f.o.Obj.Spec.Submit)
	f.expectEnd()
}

// settle finishes a reconcile whose calls were answered: outcome of a pending cancel, the
// problem cleared, the next poll.
func (f *folder) settle() {
	f.r.Observed = true
	CloseCancelRecord(&f.r.Status, f.o.Obj.Spec.Cancel, f.now)
	// A cancel refused for its credentials is still refused: a read that works does not
	// cure it.
	in := f.pollInput()
	if !f.r.Schedule.CancelRefused || !CancelPending(f.obj()) {
		f.r.Problem = &policy.Problem{}
		if !f.r.Status.Done && policy.PhaseOf(f.c.Poll, in) == policy.PastDeadline {
			// Not in the close reads just after the deadline: a server a few seconds late
			// is not worth a word; one still running after them is, and so is one that a
			// short budget let no read see until then.
			p := policy.PastExpectedEnd(f.name(), in.Deadline)
			f.r.Problem = &p
		}
	}
	if f.r.Status.Done {
		f.r.Requeue = 0
		f.afterDone()
		return
	}
	delay := policy.NextPoll(f.c.Poll, in)
	f.r.Schedule.NextPollAt = f.now.Add(delay)
	f.r.Requeue = delay
}

func (f *folder) sendCancel() {
	s := &f.r.Schedule
	if f.out.Denied {
		s.NextPollAt = f.now.Add(f.out.Wait) // come back for the cancel as soon as there is room
		s.ReadForCancel = true
		f.r.Requeue = f.out.Wait
		return
	}
	if s.CancelRequestedAt.IsZero() && CancelRequested(f.o.Obj) {
		s.CancelRequestedAt = f.o.Obj.Status.Cancel.RequestedAt.Time
	}
	outcome, msg, answered := policy.CancelOutcome(f.out.CancelErr)
	if !answered {
		// Transient, rate limited or refused credentials: no answer yet, so the cancel stays
		// pending and is sent again after a back-off of its own, with a read before it: the
		// operation may end meanwhile, and then there is nothing to send.
		s.ReadForCancel = false
		f.failure(f.out.CancelErr, true)
		return
	}
	at := metav1.NewTime(f.now)
	c := f.r.Status.Cancel
	if c == nil {
		c = &opsv1.CancelStatus{RequestedAt: &at}
		f.r.Status.Cancel = c
	}
	c.Outcome, c.Message, c.AnsweredAt = outcome, msg, &at
	f.r.CancelAnswer = c.DeepCopy()
	f.r.MustStore = true
	s.CancelFailures, s.NextCancelAt, s.CancelRefused, s.ReadForCancel = 0, time.Time{}, false, false
	if f.out.CancelErr == nil {
		f.event(corev1.EventTypeNormal, "CancelSent", "Cancel", "Sent a cancel for operation %s; the server accepted it", f.name())
	} else {
		f.event(corev1.EventTypeWarning, opsv1.ReasonCancelUnsupported, "Cancel",
			"The server did not take the cancel of operation %s: %s; the operation is still tracked", f.name(), msg)
	}
	// The confirming read: a cancel that takes effect at once shows as Cancelled in the same
	// write as its answer. When it failed, the close polls that follow will see the result.
	if f.out.Op != nil {
		f.applied(f.out.Op)
	}
	f.settle()
}

// failure records a failed call (a read, or a cancel when cancel is true): the run of
// failures, the problem it amounts to, and when to try again.
func (f *folder) failure(err error, cancel bool) {
	fl := policy.Classify(err)
	s := &f.r.Schedule
	if s.Failures == 0 {
		s.FirstFailure = f.now
	}
	s.Failures++
	s.LastFailure = &fl
	if fl.Kind == policy.Auth {
		s.RefusedCreds = f.o.CredsKey
	}
	name := f.name()
	var p policy.Problem
	switch {
	case errors.As(err, new(*policy.CredentialsError)):
		p = policy.CredentialsProblem(name, err)
	case cancel && fl.Kind == policy.Auth:
		p = policy.CancelProblemFor(name, fl)
	case cancel && fl.Kind.Permanent():
		// Permanent answers to a cancel are answers (policy.CancelOutcome); nothing else here.
	default:
		// A cancel that keeps failing is as much an outage as a read that does: the same run
		// of failures decides RemoteUnavailable, so Ready does not flip between the two.
		p = policy.ProblemFor(name, fl, f.now.Sub(s.FirstFailure) >= f.c.RemoteUnavailableAfter)
	}
	if p.Reason != "" {
		f.r.Problem, f.r.Observed = &p, true
	}
	in := f.pollInput()
	delay := policy.NextPoll(f.c.Poll, in)
	s.NextPollAt = f.now.Add(delay)
	f.r.Requeue = delay
	if cancel {
		s.CancelFailures++
		s.CancelRefused = fl.Kind == policy.Auth
		in.Failures = s.CancelFailures
		s.NextCancelAt = f.now.Add(policy.NextPoll(f.c.Poll, in))
		s.NextPollAt = maxTime(s.NextPollAt, s.NextCancelAt)
		f.r.Requeue = min(delay, s.NextCancelAt.Sub(f.now))
		f.event(corev1.EventTypeWarning, "CancelFailed", "Cancel", "Cancel of operation %s failed and will be retried: %s", name, fl)
	} else if !fl.Kind.Permanent() {
		f.event(corev1.EventTypeWarning, "RemoteError", "Poll", "Reading operation %s failed: %s", name, fl)
	}
	if fl.Kind == policy.Auth && f.c.CredentialsRecheck > 0 {
		// Notice a fixed Secret soon; the remote call waits for the back-off or a new key.
		f.r.Requeue = min(f.r.Requeue, f.c.CredentialsRecheck)
	}
}

func (f *folder) pollInput() policy.PollInput {
	st, s := &f.r.Status, f.r.Schedule
	in := policy.PollInput{
		Now: f.now, Started: f.o.Obj.CreationTimestamp.Time,
		Failure: s.LastFailure, Failures: s.Failures, Jitter: f.o.Jitter, FairShare: f.o.FairShare,
	}
	if st.StartTime != nil {
		in.Started = st.StartTime.Time
	}
	in.SpecCap, _ = PollInterval(f.o.Obj)
	in.CancelAcceptedAt = AcceptedAt(f.obj())
	if e := st.ExpectedEndTime; e != nil {
		in.Deadline = e.Time
	}
	in.Sparse = f.o.Obj.Spec.PollBeforeDeadline == opsv1.PollSparse
	return in
}

// expectEnd records when the solve must end at the latest, once its start is known: from
// spec.solveTimeout counted from the first read.
func (f *folder) expectEnd() {
	st := &f.r.Status
	if st.ExpectedEndTime != nil || st.StartTime == nil || st.Done {
		return
	}
	if timeout, err := SolveTimeout(f.o.Obj); err == nil && timeout > 0 {
		end := metav1.NewTime(st.StartTime.Add(timeout))
		st.ExpectedEndTime = &end
	}
}

// submit records the answer to an attempt to send spec.submit.
func (f *folder) submit() {
	out, method := f.out, f.o.Request.Method
	f.r.Observed = true
	switch {
	case out.Denied:
		p := submit.Waiting(method)
		f.r.Problem, f.r.Requeue = &p, out.Wait
		return
	case out.Conflict:
		// The object changed since it was read: decide again on what it holds now.
		f.r.Requeue = Immediately
		return
	case out.Attempt == nil:
		// Nothing was recorded, so nothing was sent: the credentials could not be loaded.
		f.notStarted(out.SubmitErr)
		return
	}
	st := out.Attempt.DeepCopy()
	f.r.Status.Submit = st
	if out.SubmitErr == nil {
		at := metav1.NewTime(f.now)
		f.r.Status.OperationName = out.Name
		st.Outcome, st.SubmittedAt, st.Message = opsv1.SubmitSubmitted, &at, "The server started operation "+out.Name
		// The answer is the operation, running: its first observation. So it is Running at
		// once, and its first read is a routine one, planned by its age and deadline like
		// every later one: not a read in class first, which would put a thousand submitted
		// solves' reads ahead of the deadlines of others.
		f.r.Status.StartTime = &at
		if out.MetadataType != "" {
			f.r.Status.MetadataType = out.MetadataType
		}
		if timeout := f.o.Request.Timeout; timeout > 0 {
			// The request's own deadline, counted from its answer: the solve started before.
			end := metav1.NewTime(at.Add(timeout))
			f.r.Status.ExpectedEndTime = &end
		} else {
			f.expectEnd() // spec.solveTimeout, for a batch or URI request
		}
		f.answer(out.Name, st)
		f.r.SubmitAnswer.ExpectedEnd = f.r.Status.ExpectedEndTime.DeepCopy()
		s := &f.r.Schedule
		// The spec this answer serves is acted on: the next reconcile keeps to the schedule.
		s.SubmitFailures, s.NextSubmitAt, s.SeenGeneration = 0, time.Time{}, f.o.Obj.Generation
		f.event(corev1.EventTypeNormal, "Submitted", "Submit",
			"Sent the %s request (attempt %d); the server started operation %s", method, st.Attempts, out.Name)
		delay := policy.NextPoll(f.c.Poll, f.pollInput())
		s.NextPollAt = f.now.Add(delay)
		f.r.Problem, f.r.Requeue = &policy.Problem{}, delay
		return
	}
	sf := policy.ClassifySubmit(out.SubmitErr)
	if sf.MaybeStarted {
		st.Outcome, st.Message = opsv1.SubmitUncertain, sf.String()
		f.answer("", st)
		p := submit.Uncertain(f.obj())
		f.r.Problem = &p
		return
	}
	st.Outcome, st.Message = opsv1.SubmitNotStarted, sf.String()
	f.answer("", st)
	f.notStarted(out.SubmitErr)
}

func (f *folder) answer(name string, st *opsv1.SubmitStatus) {
	f.r.SubmitAnswer = &SubmitAnswer{Name: name, Record: *st.DeepCopy()}
	f.r.SubmitOutcome = st.Outcome
	f.r.MustStore = true
}

// notStarted handles a submit that certainly started no solve: an answer that refused it, or
// credentials that could not even be loaded. What may pass by itself (RESOURCE_EXHAUSTED, an
// explicit UNAVAILABLE) is sent again after a back-off; the rest waits for a change of the
// spec, the ConfigMap or the Secret, or for the slow retry of permanent errors (a role granted
// in IAM, a Cloud Storage object created, changes no watch can see).
func (f *folder) notStarted(err error) {
	sf := policy.ClassifySubmit(err)
	s := &f.r.Schedule
	s.SubmitFailures++
	delay := policy.NextPoll(f.c.Poll, policy.PollInput{
		Now: f.now, Failure: &sf.Failure, Failures: s.SubmitFailures, Jitter: f.o.Jitter})
	s.NextSubmitAt = f.now.Add(delay)
	method := f.o.Request.Method
	var attempt int32
	if st := f.r.Status.Submit; st != nil {
		attempt = st.Attempts
	}
	var p policy.Problem
	switch {
	case sf.Retry():
		p = submit.Retrying(method, attempt, sf, delay)
		f.event(corev1.EventTypeWarning, "SubmitFailed", "Submit",
			"Attempt %d of the %s request started no solve: %s; it is sent again in %s", attempt, method, sf, delay.Round(time.Second))
		f.r.Problem, f.r.Requeue = &p, delay
		return
	case errors.As(err, new(*policy.CredentialsError)):
		p = submit.CredentialsRefused(err)
	default:
		p = submit.Refused(f.obj(), method, sf)
	}
	if sf.Kind == policy.Auth {
		s.RefusedCreds = f.o.CredsKey
	}
	f.r.Problem = &p
	f.r.Requeue = recheck(f.c, *s, s.NextSubmitAt, f.now)
}

// cancelOnDelete records deletion's cancel: let the resource go once answered, refused for
// good, or out of time; otherwise try again, backing off as the deletion ages.
func (f *folder) cancelOnDelete() {
	name, deadline := f.name(), f.d.Deadline
	s := &f.r.Schedule
	if f.out.Denied {
		s.NextCancelAt = f.now.Add(min(f.out.Wait, max(deadline.Sub(f.now), 0)))
		f.r.Requeue = max(s.NextCancelAt.Sub(f.now), Immediately)
		return
	}
	err := f.out.CancelErr
	if err == nil {
		f.event(corev1.EventTypeNormal, "CancelledOnDelete", "Delete",
			"Sent a cancel for operation %s before deleting; the server accepted it", name)
		f.r.ReleaseFinalizer = true
		return
	}
	fl := policy.Classify(err)
	// Back off as the deletion ages (2 s, then half the time waited so far, at most 30 s):
	// about a dozen calls within the default timeout, not one every two seconds. A try that
	// would come after the deadline is not made.
	since := f.now.Sub(f.o.Obj.DeletionTimestamp.Time)
	wait := max(fl.RetryAfter, min(max(since/2, 2*time.Second), 30*time.Second))
	if fl.Kind.Permanent() || !f.now.Add(wait).Before(deadline) {
		f.event(corev1.EventTypeWarning, "CancelOnDeleteFailed", "Delete",
			"Deleted without cancelling operation %s: %s", name, fl)
		f.r.ReleaseFinalizer = true
		return
	}
	f.event(corev1.EventTypeWarning, "CancelOnDeleteRetrying", "Delete", "Cancel of operation %s failed, retrying: %s", name, fl)
	s.NextCancelAt = f.now.Add(wait)
	f.r.Requeue = wait
}

// releaseNote tells why a deletion goes on without a cancel.
func (f *folder) releaseNote() {
	switch f.d.Note {
	case NoteUncertain:
		f.event(corev1.EventTypeWarning, "CancelOnDeleteFailed", "Delete",
			"Deleted without cancelling: the request of spec.submit may have started a solve (SubmitUncertain), and the operator never learned its name, so it cannot cancel it")
	case NoteAbandoned:
		f.event(corev1.EventTypeWarning, "CancelOnDeleteAbandoned", "Delete",
			"Deleted without cancelling operation %s: no answer to a cancel within --deletion-cancel-timeout", f.name())
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
