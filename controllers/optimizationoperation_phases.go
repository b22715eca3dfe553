package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// cancelPending reports whether a cancel is asked for and the server has not answered it yet.
func cancelPending(obj *opsv1.OptimizationOperation) bool {
	return obj.Spec.Cancel && !obj.Status.Done && (obj.Status.Cancel == nil || obj.Status.Cancel.Outcome == "")
}

// mayCancel reports whether this reconcile may send a cancel: one the user asked for, or one
// that deletion with deletionPolicy Cancel sends, with no answer recorded yet.
func mayCancel(obj *opsv1.OptimizationOperation) bool {
	return !obj.Status.Done && !cancelAnswered(obj) &&
		(obj.Spec.Cancel || (!obj.DeletionTimestamp.IsZero() && obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel))
}

// forget drops what is remembered of a resource that is gone or finished.
func (r *OptimizationOperationReconciler) forget(key string) {
	r.tracker.forget(key)
	r.recovery.forget(key)
	r.Budget.Forget(key)
	r.submits.forget(key)
}

// followCancelFor is how long after an accepted cancel the reads that confirm it share the
// cancel's priority.
const followCancelFor = time.Minute

// followingCancel reports whether obj's reads are confirming a recently accepted cancel.
func (r *OptimizationOperationReconciler) followingCancel(obj *opsv1.OptimizationOperation, now time.Time) bool {
	at := acceptedAt(obj)
	return obj.Spec.Cancel && !obj.Status.Done && at != nil && now.Sub(*at) < followCancelFor
}

// acceptedAt is when the server accepted obj's cancel (nil when it has not). The reads that
// confirm the cancel follow the answer, not the first attempt, which may be long before it
// when earlier attempts failed.
func acceptedAt(obj *opsv1.OptimizationOperation) *time.Time {
	c := obj.Status.Cancel
	if c == nil || c.Outcome != opsv1.CancelAccepted {
		return nil
	}
	for _, t := range []*metav1.Time{c.AnsweredAt, c.RequestedAt} {
		if t != nil {
			return &t.Time
		}
	}
	return nil
}

// needsCancelOnDelete reports whether deleting obj now must first send a cancel: the policy
// asks for it, or a cancel the user asked for has not been answered yet (deleting the resource
// must not silently drop it).
//
// A resource that starts its own solve has nothing to cancel before an operation name is
// known. With deletionPolicy Cancel it still holds the finalizer while a request may yet be
// sent: a deletion that comes while a submit is in flight then waits for its answer, and
// cancels the operation it started.
func needsCancelOnDelete(obj *opsv1.OptimizationOperation) bool {
	if obj.Status.Done || cancelAnswered(obj) {
		return false
	}
	if policy.Submitting(obj) {
		return obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel && !obj.Spec.Cancel
	}
	return obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel || obj.Spec.Cancel
}

// reconcileFinalizer keeps the finalizer exactly while deletion would have to send a cancel.
// patched says whether it wrote the object.
func (r *OptimizationOperationReconciler) reconcileFinalizer(ctx context.Context, obj *opsv1.OptimizationOperation) (patched bool, err error) {
	want := needsCancelOnDelete(obj)
	if want == controllerutil.ContainsFinalizer(obj, Finalizer) {
		return false, nil
	}
	// The optimistic lock keeps a stale cache from dropping other controllers' finalizers: a
	// merge patch replaces the whole list.
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want {
		controllerutil.AddFinalizer(obj, Finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, Finalizer)
	}
	if err := r.Patch(ctx, obj, patch); err != nil {
		return false, fmt.Errorf("update finalizer: %w", err)
	}
	return true, nil
}

// reconcileDelete sends the cancel deletionPolicy Cancel asks for, then lets the resource go.
// It never waits for the remote operation to end, and never holds deletion for errors a retry
// cannot fix (UNIMPLEMENTED, NOT_FOUND, bad credentials).
func (r *OptimizationOperationReconciler) reconcileDelete(ctx context.Context, obj *opsv1.OptimizationOperation, state *pollState) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, Finalizer) {
		r.forget(keyOf(obj))
		return ctrl.Result{}, nil
	}
	switch {
	case needsCancelOnDelete(obj) && policy.Submitting(obj):
		// Deleted before an operation name was known: nothing to cancel, and nothing is sent.
		if submit.Decide(obj) == submit.StepUncertain {
			r.event(obj, corev1.EventTypeWarning, "CancelOnDeleteFailed", "Delete",
				"Deleted without cancelling: the request of spec.submit may have started a solve (SubmitUncertain), and the operator never learned its name, so it cannot cancel it")
		}
	case needsCancelOnDelete(obj):
		if res, retry := r.cancelOnDelete(ctx, obj, state); retry {
			return res, nil
		}
	}
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, Finalizer)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", client.IgnoreNotFound(err))
	}
	r.forget(keyOf(obj))
	return ctrl.Result{}, nil
}

// closeCancelRecord gives a cancel that will never be sent, because the operation was seen
// done first, its outcome: a record without one would read as a cancel still under way.
// Whether a cancel went out is told only as far as it is known: the request is stored before
// the first cancel is sent, so without it none was; with it, an answer may have been lost to
// a restart.
func closeCancelRecord(obj *opsv1.OptimizationOperation, now time.Time) {
	if !obj.Status.Done || !obj.Spec.Cancel || cancelAnswered(obj) {
		return
	}
	if obj.Status.Cancel == nil || obj.Status.Cancel.RequestedAt == nil {
		t := metav1.NewTime(now)
		obj.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &t, Outcome: opsv1.CancelAlreadyDone,
			Message: "The operation had already finished; no cancel was sent"}
		return
	}
	obj.Status.Cancel.Outcome = opsv1.CancelAlreadyDone
	obj.Status.Cancel.Message = "The operation finished before an answer to the cancel was recorded"
	if e := obj.Status.Error; e != nil && e.Code == int32(codes.Canceled) {
		obj.Status.Cancel.Message += "; it ended CANCELLED, so a cancel sent before a restart of the operator was most likely taken"
	}
}

func cancelAnswered(obj *opsv1.OptimizationOperation) bool {
	return obj.Status.Cancel != nil && obj.Status.Cancel.Outcome != ""
}

// cancelOnDelete sends one cancel. retry is true when it failed transiently and the deletion
// timeout has not passed yet.
func (r *OptimizationOperationReconciler) cancelOnDelete(ctx context.Context, obj *opsv1.OptimizationOperation, state *pollState) (res ctrl.Result, retry bool) {
	name := policy.TrackedName(obj)
	inTime := r.Now().Sub(obj.DeletionTimestamp.Time) < r.Options.DeletionCancelTimeout
	ops, err := r.opsFor(ctx, obj)
	if credsErr := (*policy.CredentialsError)(nil); errors.As(err, &credsErr) && state.lastWorking != nil {
		// The Secret went first (a GitOps prune deletes both together): the key that last
		// worked for this resource still may send its cancel.
		ops, err = state.lastWorking, nil
	}
	if err == nil {
		if wait, ok := r.Budget.Take(keyOf(obj), budget.Urgent); !ok {
			metrics.BudgetDeferred.WithLabelValues(budget.Urgent.String()).Inc()
			if inTime {
				return ctrl.Result{RequeueAfter: wait}, true
			}
			r.event(obj, corev1.EventTypeWarning, "CancelOnDeleteAbandoned", "Delete",
				"Deleted without cancelling operation %s: the API budget had no room within --deletion-cancel-timeout", name)
			return ctrl.Result{}, false
		}
		err = ops.Cancel(ctx, name)
	}
	if err == nil {
		r.event(obj, corev1.EventTypeNormal, "CancelledOnDelete", "Delete",
			"Sent a cancel for operation %s before deleting; the server accepted it", name)
		return ctrl.Result{}, false
	}
	f := policy.Classify(err)
	if !f.Kind.Permanent() && inTime {
		r.event(obj, corev1.EventTypeWarning, "CancelOnDeleteRetrying", "Delete",
			"Cancel of operation %s failed, retrying: %s", name, f)
		// Back off as the deletion ages (2 s, then half the time waited so far, at most 30 s):
		// about a dozen calls within the default timeout, not one every two seconds.
		// The last try comes at the timeout, not after it.
		since := r.Now().Sub(obj.DeletionTimestamp.Time)
		wait := max(f.RetryAfter, min(max(since/2, 2*time.Second), 30*time.Second))
		return ctrl.Result{RequeueAfter: max(min(wait, r.Options.DeletionCancelTimeout-since), 10*time.Millisecond)}, true
	}
	r.event(obj, corev1.EventTypeWarning, "CancelOnDeleteFailed", "Delete",
		"Deleted without cancelling operation %s: %s", name, f)
	return ctrl.Result{}, false
}

// reconcileDone handles a resource whose operation has finished: it is never read again. A
// cancel asked for only now changes nothing but the record of the request.
func (r *OptimizationOperationReconciler) reconcileDone(obj *opsv1.OptimizationOperation) {
	closeCancelRecord(obj, r.Now())
	obj.Status.ObservedGeneration = obj.Generation
	for i := range obj.Status.Conditions {
		obj.Status.Conditions[i].ObservedGeneration = obj.Generation
	}
}

// immediately is the requeue delay of a reconcile that must run again at once, after its
// status write (RequeueAfter, unlike an error, skips the work queue's backoff).
const immediately = time.Millisecond

// reconcileRemote reads the operation when it is due, sends a pending cancel, and schedules
// the next read.
func (r *OptimizationOperationReconciler) reconcileRemote(ctx context.Context, obj *opsv1.OptimizationOperation, state *pollState) (ctrl.Result, error) {
	now := r.Now()
	if len(obj.Status.Conditions) == 0 && state.seenGeneration == 0 {
		// First visit: say so at once, so a fresh object never looks finished or healthy.
		// (A copy without conditions after a visit is a cache that lags this process's own
		// writes: it must not overwrite them with Pending.)
		policy.SetConditions(obj, policy.Problem{})
	}
	specChanged := obj.Generation != state.seenGeneration
	if _, err := pollIntervalOf(obj); err != nil {
		// Only an object stored before the API validated the field gets here. Nothing is
		// sent for it until it is fixed; the fix is a spec change, which wakes the reconciler.
		state.seenGeneration = obj.Generation
		policy.SetConditions(obj, policy.Problem{Reason: opsv1.ReasonInvalidSpec, Message: policy.Truncate(fmt.Sprintf(
			"Nothing is sent for operation %s: spec.pollInterval cannot be used: %v; set a Go duration of at most 24h, or remove it",
			policy.TrackedName(obj), err))})
		obj.Status.ObservedGeneration = obj.Generation
		return ctrl.Result{}, nil
	}

	creds, credsKey, credsErr := r.credentials(ctx, obj)
	if credsErr != nil && credsKey == "" {
		return ctrl.Result{}, credsErr // the API server itself failed; the work queue backs off
	}
	credsChanged := state.refusedCreds != "" && credsKey != state.refusedCreds
	if credsChanged || specChanged {
		// A new key or a new spec is a new chance for a refused or failing cancel as well.
		state.cancelFailures, state.nextCancelAt = 0, time.Time{}
	}
	// Woken after an outage: read now, whatever the backoff says (the budget still paces it).
	woken := r.recovery.woken(keyOf(obj))
	if woken {
		state.nextCancelAt = time.Time{} // a cancel that failed in the outage goes at once, too
	}
	if !state.due(now) && !credsChanged && !specChanged && !woken {
		return r.requeue(state, now), nil
	}
	state.seenGeneration = obj.Generation
	if credsErr != nil {
		return r.failed(obj, state, now, credsKey, credsErr), nil
	}
	ops, err := r.Clients.For(creds)
	if err != nil {
		return r.failed(obj, state, now, credsKey, err), nil
	}

	sendCancel := cancelPending(obj) && !now.Before(state.nextCancelAt)
	prio := r.priority(obj, sendCancel, now)
	// When the last reconcile read the operation running and then could not send the cancel
	// (no room in the budget, or its request had to be stored first), this token goes to the
	// cancel: reading first again could take the only token every time and starve it.
	skipRead := sendCancel && state.readForCancel
	state.readForCancel = false
	if !skipRead {
		op, res, err := r.get(ctx, ops, obj, state, prio)
		if op == nil {
			if err != nil {
				// A read that failed says nothing against sending the cancel: the next try goes
				// straight to it instead of reading first again (in an outage, every read it
				// waits for may fail too).
				state.readForCancel = sendCancel
				return r.failed(obj, state, now, credsKey, err), nil
			}
			return res, nil // the budget said wait
		}
		r.succeeded(obj, state, ops, op, now)
	}

	if sendCancel && cancelPending(obj) {
		if obj.Status.Cancel == nil || obj.Status.Cancel.RequestedAt == nil {
			return r.recordCancelRequest(obj, state, now), nil
		}
		if res, done := r.sendCancel(ctx, ops, obj, state, credsKey); done {
			return res, nil
		}
		// The operation was just told to stop: read it again at once, so a cancel that takes
		// effect immediately shows as Cancelled in the same reconcile and the same status
		// write as its answer.
		if op, err := r.readAfterCancel(ctx, ops, obj, state); op != nil {
			r.succeeded(obj, state, ops, op, now)
		} else if err != nil {
			// The cancel was answered; the fast polls that follow will see the result.
			logf.FromContext(ctx).Info("read after cancel failed", "error", err.Error())
		}
	}
	return r.settle(obj, state, now), nil
}

// priority is the budget class of obj's next read: a cancel and the reads that confirm it
// first, then operations never read, then routine polls.
func (r *OptimizationOperationReconciler) priority(obj *opsv1.OptimizationOperation, sendCancel bool, now time.Time) budget.Priority {
	switch {
	case sendCancel || r.followingCancel(obj, now):
		return budget.Urgent
	case obj.Status.StartTime == nil:
		return budget.First
	}
	return budget.Poll
}

// confirmPaid is how many tokens a cancel takes: its own and, when the bucket can hold two,
// the confirming read's.
func (r *OptimizationOperationReconciler) confirmPaid() int { return min(2, r.Budget.Burst()) }

// readAfterCancel reads the operation right after its cancel was answered, with the token
// the cancel took along when it could.
func (r *OptimizationOperationReconciler) readAfterCancel(ctx context.Context, ops remote.Operations, obj *opsv1.OptimizationOperation, state *pollState) (*longrunningpb.Operation, error) {
	if r.confirmPaid() == 2 {
		return ops.Get(ctx, policy.TrackedName(obj))
	}
	op, _, err := r.get(ctx, ops, obj, state, budget.Urgent)
	return op, err
}

// recordCancelRequest stores the cancel request before the first cancel is sent, and comes
// back at once to send it. A process that dies after sending then leaves a record that says
// a cancel may have gone out; without the record, none did.
func (r *OptimizationOperationReconciler) recordCancelRequest(obj *opsv1.OptimizationOperation, state *pollState, now time.Time) ctrl.Result {
	t := metav1.NewTime(now)
	obj.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &t}
	state.cancelRequestedAt = now
	state.readForCancel = true
	state.nextPollAt = now
	obj.Status.ObservedGeneration = obj.Generation
	policy.SetConditions(obj, policy.Problem{})
	return ctrl.Result{RequeueAfter: immediately}
}

// get reads the operation when the budget has room. With no room it returns neither an
// operation nor an error, and a Result that waits for the budget.
func (r *OptimizationOperationReconciler) get(ctx context.Context, ops remote.Operations, obj *opsv1.OptimizationOperation, state *pollState, prio budget.Priority) (*longrunningpb.Operation, ctrl.Result, error) {
	wait, ok := r.Budget.Take(keyOf(obj), prio)
	if !ok {
		metrics.BudgetDeferred.WithLabelValues(prio.String()).Inc()
		// Due again as soon as the budget has room, not at the old schedule: the spec
		// change or cancel this read serves was already marked as seen.
		state.nextPollAt = r.Now().Add(wait)
		return nil, ctrl.Result{RequeueAfter: wait}, nil
	}
	if !state.nextPollAt.IsZero() {
		metrics.PollLag.Observe(max(r.Now().Sub(state.nextPollAt), 0).Seconds())
	}
	op, err := ops.Get(ctx, policy.TrackedName(obj))
	return op, ctrl.Result{}, err
}

// succeeded records a successful read.
func (r *OptimizationOperationReconciler) succeeded(obj *opsv1.OptimizationOperation, state *pollState, ops remote.Operations, op *longrunningpb.Operation, now time.Time) {
	state.succeeded()
	state.lastWorking = ops
	r.Budget.Recover()
	r.recovery.succeeded(keyOf(obj), now, r.tracker.size())
	policy.ApplyOperation(&obj.Status, op, metav1.NewTime(now))
}

// sendCancel sends the pending cancel and records the server's answer. done is true when the
// reconcile should return res without reading the operation again.
func (r *OptimizationOperationReconciler) sendCancel(ctx context.Context, ops remote.Operations, obj *opsv1.OptimizationOperation, state *pollState, credsKey string) (res ctrl.Result, done bool) {
	now := r.Now()
	if state.cancelRequestedAt.IsZero() {
		state.cancelRequestedAt = obj.Status.Cancel.RequestedAt.Time
	}
	// The cancel takes the token of the read that confirms it along (unless the bucket holds
	// only one): that read then never waits behind other cancels, and the answer and its
	// effect go into one status write.
	wait, ok := r.Budget.TakeN(keyOf(obj), budget.Urgent, r.confirmPaid())
	if !ok {
		metrics.BudgetDeferred.WithLabelValues(budget.Urgent.String()).Inc()
		policy.SetConditions(obj, policy.Problem{})
		state.nextPollAt = now.Add(wait) // come back for the cancel as soon as there is room
		state.readForCancel = true
		return ctrl.Result{RequeueAfter: wait}, true
	}
	if state.cancelFailures == 0 && !state.cancelRequestedAt.IsZero() {
		metrics.CancelTokenWait.Observe(max(now.Sub(state.cancelRequestedAt), 0).Seconds())
	}
	name := policy.TrackedName(obj)
	err := ops.Cancel(ctx, name)
	outcome, msg, answered := policy.CancelOutcome(err)
	if answered {
		at := metav1.NewTime(r.Now())
		c := obj.Status.Cancel
		c.Outcome, c.Message, c.AnsweredAt = outcome, msg, &at
		state.answer = c.DeepCopy()
		state.cancelFailures, state.nextCancelAt = 0, time.Time{}
		if err == nil {
			r.event(obj, corev1.EventTypeNormal, "CancelSent", "Cancel",
				"Sent a cancel for operation %s; the server accepted it", name)
		} else {
			r.event(obj, corev1.EventTypeWarning, "CancelUnsupported", "Cancel",
				"The server did not take the cancel of operation %s: %s; the operation is still tracked", name, msg)
		}
		return ctrl.Result{}, false
	}
	// Transient, rate limited or refused credentials: no answer yet, so the cancel stays
	// pending and is sent again after a backoff of its own. The state already says a cancel is
	// under way.
	policy.SetConditions(obj, policy.Problem{})
	res, f := r.recordFailure(obj, state, now, credsKey, err, true)
	r.event(obj, corev1.EventTypeWarning, "CancelFailed", "Cancel",
		"Cancel of operation %s failed and will be retried: %s", name, f)
	state.cancelFailures++
	in := r.pollInput(obj, state, now)
	in.Failure, in.Failures = &f, state.cancelFailures
	state.nextCancelAt = now.Add(policy.NextPoll(r.Options.Poll, in))
	state.nextPollAt = maxTime(state.nextPollAt, state.nextCancelAt)
	return ctrl.Result{RequeueAfter: min(res.RequeueAfter, state.nextCancelAt.Sub(now))}, true
}

// failed records a failed read, tells about a transient one in an event (a permanent one is
// on the Ready condition already), and decides when to try again.
func (r *OptimizationOperationReconciler) failed(obj *opsv1.OptimizationOperation, state *pollState, now time.Time, credsKey string, err error) ctrl.Result {
	res, f := r.recordFailure(obj, state, now, credsKey, err, false)
	if !f.Kind.Permanent() {
		r.event(obj, corev1.EventTypeWarning, "RemoteError", "Poll", "Reading operation %s failed: %s", policy.TrackedName(obj), f)
	}
	return res
}

// recordFailure records a failed call (a read, or a cancel when cancel is true) in the
// conditions and the poll state, and decides when to try again.
func (r *OptimizationOperationReconciler) recordFailure(obj *opsv1.OptimizationOperation, state *pollState, now time.Time, credsKey string, err error, cancel bool) (ctrl.Result, policy.Failure) {
	f := policy.Classify(err)
	state.failed(now, f)
	r.recovery.failed(keyOf(obj), now, f.Kind.Permanent())
	name := policy.TrackedName(obj)
	r.quotaBackoff(f)
	if f.Kind == policy.Auth {
		state.refusedCreds = credsKey
	}
	var p policy.Problem
	switch credsErr := (*policy.CredentialsError)(nil); {
	case errors.As(err, &credsErr):
		p = policy.CredentialsProblem(name, err)
	case cancel:
		p = policy.CancelProblemFor(name, f)
	default:
		p = policy.ProblemFor(name, f, now.Sub(state.firstFailure) >= r.Options.RemoteUnavailableAfter)
	}
	if p.Reason != "" {
		policy.SetConditions(obj, p)
		obj.Status.ObservedGeneration = obj.Generation
	}
	delay := policy.NextPoll(r.Options.Poll, r.pollInput(obj, state, now))
	state.nextPollAt = now.Add(delay)
	if f.Kind == policy.Auth {
		// Notice a fixed Secret soon; the remote call waits for the backoff or a new key.
		return ctrl.Result{RequeueAfter: min(delay, r.Options.CredentialsRecheck)}, f
	}
	return ctrl.Result{RequeueAfter: delay}, f
}

// quotaBackoff holds the whole budget back after RESOURCE_EXHAUSTED: quota is per project, so
// one resource's 429 is every call's. The server's RetryInfo says how long; without it the
// budget slows down as well as pausing.
func (r *OptimizationOperationReconciler) quotaBackoff(f policy.Failure) {
	if f.Kind != policy.RateLimited {
		return
	}
	if f.RetryAfter > 0 {
		r.Budget.Pause(f.RetryAfter)
	} else {
		r.Budget.Throttle(policy.MinRateLimitedDelay)
	}
}

// settle finishes a reconcile whose reads succeeded: conditions, metrics, next poll.
func (r *OptimizationOperationReconciler) settle(obj *opsv1.OptimizationOperation, state *pollState, now time.Time) ctrl.Result {
	obj.Status.ObservedGeneration = obj.Generation
	closeCancelRecord(obj, now)
	policy.SetConditions(obj, policy.Problem{})
	if obj.Status.Done {
		if c := obj.Status.Cancel; c != nil && c.RequestedAt != nil && c.Outcome != opsv1.CancelAlreadyDone {
			// The stored requestedAt has whole seconds; this process's own record is exact.
			start := c.RequestedAt.Time
			if !state.cancelRequestedAt.IsZero() {
				start = state.cancelRequestedAt
			}
			metrics.CancelLatency.WithLabelValues(metrics.State(obj)).Observe(max(r.Now().Sub(start), 0).Seconds())
		}
		return ctrl.Result{}
	}
	delay := policy.NextPoll(r.Options.Poll, r.pollInput(obj, state, now))
	state.nextPollAt = now.Add(delay)
	return ctrl.Result{RequeueAfter: delay}
}

func (r *OptimizationOperationReconciler) pollInput(obj *opsv1.OptimizationOperation, state *pollState, now time.Time) policy.PollInput {
	in := policy.PollInput{
		Now: now, Started: obj.CreationTimestamp.Time,
		Failure: state.lastFailure, Failures: state.failures, Jitter: r.Rand(),
	}
	if obj.Status.StartTime != nil {
		in.Started = obj.Status.StartTime.Time
	}
	in.SpecCap, _ = pollIntervalOf(obj)
	in.CancelAcceptedAt = acceptedAt(obj)
	in.FairShare = r.fairShare()
	return in
}

// pollShare is the part of the call budget that routine polls may plan to use; the rest stays
// free for what cannot wait for a poll's turn: cancels, the reads that confirm them, and the
// first reads of new resources.
const pollShare = 0.8

// fairShare is how often the shared budget can read each tracked operation with pollShare of
// its rate. Crossing --max-poll-interval either way is logged: past it, reads come later
// than configured.
func (r *OptimizationOperationReconciler) fairShare() time.Duration {
	d := time.Duration(float64(r.tracker.size()) / (pollShare * r.Budget.Rate()) * float64(time.Second))
	metrics.PollFairShare.Set(d.Seconds())
	if saturated := policy.Saturated(r.Options.Poll, d); r.saturated.Swap(saturated) != saturated {
		log := logf.Log.WithName("budget")
		if saturated {
			log.Info("The API budget cannot read every operation within --max-poll-interval: each is read about every fairShare; raise --api-qps (within the project's quota) or shard the operator",
				"fairShare", d.String(), "maxPollInterval", r.Options.Poll.Max.String(), "tracked", r.tracker.size(), "apiQPS", r.Budget.Rate())
		} else {
			log.Info("The API budget again reads every operation within --max-poll-interval", "fairShare", d.String())
		}
	}
	return d
}

// requeue waits for the resource's next due time.
func (r *OptimizationOperationReconciler) requeue(state *pollState, now time.Time) ctrl.Result {
	d := state.nextPollAt.Sub(now)
	if state.refusedCreds != "" {
		d = min(d, r.Options.CredentialsRecheck)
	}
	return ctrl.Result{RequeueAfter: max(d, time.Millisecond)}
}

// opsFor returns the client for obj's credentials.
func (r *OptimizationOperationReconciler) opsFor(ctx context.Context, obj *opsv1.OptimizationOperation) (remote.Operations, error) {
	creds, _, err := r.credentials(ctx, obj)
	if err != nil {
		return nil, err
	}
	return r.Clients.For(creds)
}

// pollIntervalOf returns spec.pollInterval (0 when unset).
func pollIntervalOf(obj *opsv1.OptimizationOperation) (time.Duration, error) {
	if obj.Spec.PollInterval == nil {
		return 0, nil
	}
	return obj.Spec.PollInterval.Parse()
}

// keyOf is the work queue's key of obj (namespace/name).
func keyOf(obj client.Object) string { return client.ObjectKeyFromObject(obj).String() }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
