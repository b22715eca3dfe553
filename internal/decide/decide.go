// Package decide holds the reconciler's two pure steps. Decide says, from one observation of a
// resource, the single thing to do now; Fold turns what that action brought back into the
// resource's new status, schedule, events and the time to come back. Neither does I/O: the
// controller observes before them, acts between them and records after them
// (docs/architecture.md has the whole picture and the state table).
package decide

import (
	"time"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// Config holds the operator-wide settings the decisions depend on.
type Config struct {
	Poll policy.PollConfig
	// RemoteUnavailableAfter is how long transient failures must last before Ready turns False.
	RemoteUnavailableAfter time.Duration
	// DeletionCancelTimeout bounds how long deletion tries to cancel.
	DeletionCancelTimeout time.Duration
	// CredentialsRecheck is how often a resource with refused credentials re-reads its Secret.
	CredentialsRecheck time.Duration
	// Burst is the most tokens the budget can grant at once.
	Burst int
}

// Schedule is what the reconciler remembers of one resource between reconciles, in memory
// only: when each kind of call is due and how the last ones went. Losing it (a restart) makes
// every resource due at once and forgets back-offs; nothing a user relies on lives here. What
// must survive a restart is in the object's status.
type Schedule struct {
	// SeenGeneration is the spec generation last acted on; a new one is acted on at once.
	SeenGeneration int64
	// NextPollAt is when the operation is due to be read again.
	NextPollAt time.Time
	// ReadForCancel: a read found the operation running (or failed) while a cancel was due,
	// so the next turn goes to the cancel without reading first: reading again could take the
	// only token every time and starve it.
	ReadForCancel bool
	// CancelFailures counts cancels in a row that got no answer; NextCancelAt is when the
	// cancel (or deletion's cancel) may be sent again. CancelRefused: the last one was refused
	// for its credentials, which a successful read does not cure.
	CancelFailures int
	NextCancelAt   time.Time
	CancelRefused  bool
	// CancelRequestedAt is when this process first acted on spec.cancel, to the nanosecond
	// (status keeps seconds), for the cancel latency metric.
	CancelRequestedAt time.Time
	// Failures counts remote calls in a row that failed; FirstFailure is when the run began.
	Failures     int
	FirstFailure time.Time
	LastFailure  *policy.Failure
	// RefusedCreds is the credentials key the server refused (or that failed to load): another
	// key, after the Secret changed, is tried at once instead of after the back-off.
	RefusedCreds string
	// SubmitFailures counts attempts in a row answered without starting a solve;
	// NextSubmitAt is when the request may be sent again; SubmitInputs identifies what they
	// sent (request hash and credentials key): new inputs are sent at once.
	SubmitFailures int
	NextSubmitAt   time.Time
	SubmitInputs   string
	// Result is the schedule of spec.resultTo's write and of reconcile.fluxcd.io/requestedAt.
	Result ResultSchedule
}

// Request is what observing spec.submit's request found, when it may be sent.
type Request struct {
	// Method and Hash identify the request built; Timeout is its solve's deadline (0: not
	// known: batch and URI requests keep their models, and timeouts, in Cloud Storage).
	Method  string
	Hash    string
	Timeout time.Duration
	// Problem says why it cannot be built (nothing is sent); Recheck: look again after
	// Config.CredentialsRecheck (a permission, which no watch shows), else only on a change.
	Problem *policy.Problem
	Recheck bool
}

// Observation is everything one decision depends on.
type Observation struct {
	// Obj is the resource as stored, with the answers this process received but could not
	// store yet laid over its status.
	Obj *opsv1.OptimizationOperation
	Now time.Time
	// Schedule is the resource's in-memory schedule (zero after a restart).
	Schedule Schedule
	// CredsKey identifies the credentials calls would use; CredsErr says why they cannot be
	// loaded (the call then fails without being sent).
	CredsKey string
	CredsErr error
	// Request is the request of spec.submit, observed only when it may be sent.
	Request Request
	// Woken: the API answers again after an outage; a resource backing off is due now.
	Woken bool
	// ResponseHeld: this process holds the response of the finished operation, for
	// spec.resultTo (the read that found it done is the only one that brings it).
	ResponseHeld bool
	// FairShare and Jitter shape the poll schedule (policy.PollInput).
	FairShare time.Duration
	Jitter    float64
}

// Action is the one thing a reconcile does.
type Action int

const (
	// None: no call now; come back after Decision.After (0: only when something changes).
	None Action = iota
	// AddFinalizer / RemoveFinalizer keep the finalizer exactly while deleting would have to
	// send a cancel.
	AddFinalizer
	RemoveFinalizer
	// Read is a GetOperation.
	Read
	// RecordCancelRequest stores status.cancel.requestedAt before the first cancel is sent:
	// after a crash, the record says a cancel may have gone out; without it, none did.
	RecordCancelRequest
	// SendCancel is a CancelOperation, with the read that confirms it when the budget allows.
	SendCancel
	// Submit records the attempt (locked to the version decided on), then sends spec.submit.
	Submit
	// NotSubmitted ends a resource cancelled before its request could have started a solve.
	NotSubmitted
	// Finish settles a resource whose operation is done: nothing is read again.
	Finish
	// CancelOnDelete sends deletion's one cancel, bounded by Config.DeletionCancelTimeout.
	CancelOnDelete
	// Release removes the finalizer of a resource being deleted, and forgets it.
	Release
	// Forget drops the memory of a resource being deleted that holds no finalizer.
	Forget
	// WriteResult creates spec.resultTo's ConfigMap with the response of the finished
	// operation, read again first when this process does not hold it (after a restart).
	WriteResult
)

var actionNames = [...]string{"None", "AddFinalizer", "RemoveFinalizer", "Read", "RecordCancelRequest",
	"SendCancel", "Submit", "NotSubmitted", "Finish", "CancelOnDelete", "Release", "Forget", "WriteResult"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "Unknown"
}

// Calls reports whether the action may call the API (and so take from the budget); WriteResult
// calls it only when the response is not held.
func (a Action) Calls() bool {
	return a == Read || a == SendCancel || a == Submit || a == CancelOnDelete || a == WriteResult
}

// Decision is what Decide says.
type Decision struct {
	Action Action
	// Priority is the budget class of the action's call, and the work queue's priority.
	Priority budget.Priority
	// Tokens is how many calls the action takes from the budget at once.
	Tokens int
	// After is when to come back if nothing else wakes the resource (None only; 0: never).
	After time.Duration
	// Problem is what the decision itself establishes without a call (InvalidSpec, a request
	// that cannot be built, SubmitUncertain); nil keeps the standing one.
	Problem *policy.Problem
	// SendCancel: a cancel is due; a Read then serves it (a running operation goes on to the
	// cancel at once, a finished one closes the request without sending).
	SendCancel bool
	// Deadline bounds CancelOnDelete's call.
	Deadline time.Time
	// Note says why a Release comes without a cancel, for its event ("" : nothing to tell).
	Note string
	// Request is the value of reconcile.fluxcd.io/requestedAt this action serves ("": none).
	Request string
	// Schedule is the observed schedule with the resets the observation calls for (a new
	// spec or new credentials retry at once).
	Schedule Schedule
}

// Decide says what to do about o.Obj now. It is a pure function of its arguments.
func Decide(c Config, o Observation) Decision {
	obj := o.Obj
	d := Decision{Schedule: o.Schedule, Priority: budget.Poll, Tokens: 1}
	if !obj.DeletionTimestamp.IsZero() {
		return decideDelete(c, o, d)
	}
	if want := NeedsCancelOnDelete(obj); want != HasFinalizer(obj) {
		d.Action = RemoveFinalizer
		if want {
			d.Action = AddFinalizer
		}
		return d
	}
	if obj.Status.Done {
		return decideDone(c, o, d)
	}
	if policy.Submitting(obj) {
		return decideSubmit(c, o, d)
	}
	return decideTrack(c, o, d)
}

// decideDelete sends the cancel deletionPolicy Cancel (or an unanswered spec.cancel) asks
// for, within the deletion timeout, then lets the resource go. It never waits for the
// operation to end, and never holds deletion for errors a retry cannot fix.
func decideDelete(c Config, o Observation, d Decision) Decision {
	obj, now := o.Obj, o.Now
	d.Priority = budget.Urgent
	switch {
	case !HasFinalizer(obj):
		d.Action = Forget
	case !NeedsCancelOnDelete(obj):
		d.Action = Release
	case policy.Submitting(obj):
		// No operation name: nothing to cancel, and nothing is sent.
		d.Action = Release
		if submit.Decide(obj) == submit.StepUncertain {
			d.Note = NoteUncertain
		}
	case !now.Before(obj.DeletionTimestamp.Add(c.DeletionCancelTimeout)):
		d.Action, d.Note = Release, NoteAbandoned
	case now.Before(d.Schedule.NextCancelAt):
		d.After = d.Schedule.NextCancelAt.Sub(now)
	default:
		d.Action = CancelOnDelete
		d.Deadline = obj.DeletionTimestamp.Add(c.DeletionCancelTimeout)
	}
	return d
}

// Notes of a Release without a cancel.
const (
	NoteUncertain = "uncertain"
	NoteAbandoned = "abandoned"
)

// decideSubmit takes spec.submit one step: end it NotSubmitted, hold it SubmitUncertain, or
// send it when it may go (a valid request, past any back-off).
func decideSubmit(c Config, o Observation, d Decision) Decision {
	obj, now, s := o.Obj, o.Now, &d.Schedule
	d.Priority = budget.Submit
	d.Request = RequestedAt(obj, s.Result.HandledRequest)
	switch submit.Decide(obj) {
	case submit.StepNotSubmitted:
		d.Action = NotSubmitted
		return d
	case submit.StepUncertain:
		// Nothing is sent until a person approves it; the approval and a spec change wake
		// the reconciler, so there is nothing to come back for.
		p := submit.Uncertain(obj)
		d.Problem = &p
		return d
	}
	if r := o.Request; r.Problem != nil {
		d.Problem = r.Problem
		if r.Recheck {
			d.After = c.CredentialsRecheck
		}
		return d
	}
	if inputs := o.Request.Hash + " " + o.CredsKey; inputs != s.SubmitInputs {
		// A new request or new credentials: what refused the old ones says nothing of these.
		s.SubmitFailures, s.NextSubmitAt, s.RefusedCreds = 0, time.Time{}, ""
		s.SubmitInputs = inputs
	}
	if d.Request != "" {
		// Asked to try now: the last attempt certainly started nothing (StepSend), so sending
		// again before its back-off ends cannot start a second solve.
		s.NextSubmitAt = time.Time{}
	}
	if now.Before(s.NextSubmitAt) {
		d.After = recheck(c, *s, s.NextSubmitAt, now)
		return d
	}
	d.Action = Submit
	return d
}

// decideTrack reads the operation when it is due, and sends a pending cancel.
func decideTrack(c Config, o Observation, d Decision) Decision {
	obj, now, s := o.Obj, o.Now, &d.Schedule
	if _, err := PollInterval(obj); err != nil {
		// Only an object stored before the API validated the field gets here. Nothing is sent
		// for it until it is fixed; the fix is a spec change, which wakes the reconciler.
		s.SeenGeneration = obj.Generation
		p := policy.InvalidPollInterval(policy.TrackedName(obj), err)
		d.Problem = &p
		d.Request = RequestedAt(obj, s.Result.HandledRequest) // served: nothing can be read
		return d
	}
	specChanged := obj.Generation != s.SeenGeneration
	credsChanged := s.RefusedCreds != "" && o.CredsKey != s.RefusedCreds
	if specChanged || credsChanged || o.Woken {
		// A new spec, a new key or an API answering again is a new chance for a refused or
		// failing cancel as well.
		s.CancelFailures, s.NextCancelAt, s.CancelRefused = 0, time.Time{}, false
	}
	d.SendCancel = CancelPending(obj) && !now.Before(s.NextCancelAt)
	d.Priority = PriorityOf(c, obj, d.SendCancel, now)
	// A read asked for through the annotation comes now, whatever the schedule or a back-off
	// says, ahead of routine polls; handled once, it asks for nothing more.
	requested := RequestedAt(obj, s.Result.HandledRequest)
	if requested != "" && d.Priority < budget.First {
		d.Priority = budget.First
	}
	if now.Before(s.NextPollAt) && !specChanged && !credsChanged && !o.Woken && requested == "" {
		d.After = recheck(c, *s, s.NextPollAt, now)
		return d
	}
	s.SeenGeneration = obj.Generation
	switch {
	case d.SendCancel && s.ReadForCancel && o.CredsErr == nil && !CancelRequested(obj):
		d.Action = RecordCancelRequest
	case d.SendCancel && s.ReadForCancel && o.CredsErr == nil:
		// The cancel takes the token of the read that confirms it along (unless the bucket
		// holds only one): that read then never waits behind other cancels.
		d.Action, d.Tokens = SendCancel, min(2, max(c.Burst, 1))
	default:
		d.Action, d.Request = Read, requested
	}
	return d
}

// recheck is when to look again at something not due before at: then, or sooner to re-read a
// refused Secret (a local read; the remote call itself stays backed off).
func recheck(c Config, s Schedule, at, now time.Time) time.Duration {
	d := at.Sub(now)
	if s.RefusedCreds != "" && c.CredentialsRecheck > 0 {
		d = min(d, c.CredentialsRecheck)
	}
	return max(d, time.Millisecond)
}

// PriorityOf is the budget class of obj's next call: a cancel and the reads that confirm it
// first, then operations never read, then reads of operations whose deadline passed, then
// routine polls.
func PriorityOf(c Config, obj *opsv1.OptimizationOperation, sendCancel bool, now time.Time) budget.Priority {
	switch {
	case sendCancel || FollowingCancel(obj, now):
		return budget.Urgent
	case obj.Status.StartTime == nil:
		return budget.First
	case obj.Status.ExpectedEndTime != nil && !now.Before(obj.Status.ExpectedEndTime.Time) &&
		!policy.IsReason(obj, opsv1.ReasonPastExpectedEnd):
		// Its answer is due: deadlines go before routine polls, in the order they came, for
		// as long as they wait. Once a read found the solve running past its deadline's close
		// reads, it is read by its age again as a routine poll, and holds back no deadline.
		return budget.Due
	}
	return budget.Poll
}

// SolveTimeout returns spec.solveTimeout (0 when unset).
func SolveTimeout(obj *opsv1.OptimizationOperation) (time.Duration, error) {
	if obj.Spec.SolveTimeout == nil {
		return 0, nil
	}
	return obj.Spec.SolveTimeout.Parse()
}

// PollInterval returns spec.pollInterval (0 when unset).
func PollInterval(obj *opsv1.OptimizationOperation) (time.Duration, error) {
	if obj.Spec.PollInterval == nil {
		return 0, nil
	}
	return obj.Spec.PollInterval.Parse()
}
