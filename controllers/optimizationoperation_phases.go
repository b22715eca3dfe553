package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
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
)

// cancelPending reports whether a cancel is asked for and the server has not answered it yet.
func cancelPending(obj *opsv1.OptimizationOperation) bool {
	return obj.Spec.Cancel && !obj.Status.Done && (obj.Status.Cancel == nil || obj.Status.Cancel.Outcome == "")
}

// forget drops what is remembered of a resource that is gone or finished.
func (r *OptimizationOperationReconciler) forget(key string) {
	r.tracker.forget(key)
	r.Budget.Forget(key)
}

// followCancelFor is how long after an accepted cancel the reads that confirm it share the
// cancel's priority.
const followCancelFor = time.Minute

// followingCancel reports whether obj's reads are confirming a recently accepted cancel.
func (r *OptimizationOperationReconciler) followingCancel(obj *opsv1.OptimizationOperation, now time.Time) bool {
	c := obj.Status.Cancel
	return obj.Spec.Cancel && !obj.Status.Done && c != nil && c.Outcome == opsv1.CancelAccepted &&
		c.RequestedAt != nil && now.Sub(c.RequestedAt.Time) < followCancelFor
}

// needsCancelOnDelete reports whether deleting obj now must first send a cancel: the policy
// asks for it, or a cancel the user asked for has not been answered yet (deleting the resource
// must not silently drop it).
func needsCancelOnDelete(obj *opsv1.OptimizationOperation) bool {
	return !obj.Status.Done && !cancelAnswered(obj) &&
		(obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel || obj.Spec.Cancel)
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
func (r *OptimizationOperationReconciler) reconcileDelete(ctx context.Context, obj *opsv1.OptimizationOperation) (ctrl.Result, error) {
	r.tracker.forget(keyOf(obj))
	if !controllerutil.ContainsFinalizer(obj, Finalizer) {
		r.Budget.Forget(keyOf(obj))
		return ctrl.Result{}, nil
	}
	if needsCancelOnDelete(obj) {
		if res, retry := r.cancelOnDelete(ctx, obj); retry {
			return res, nil
		}
	}
	r.Budget.Forget(keyOf(obj))
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, Finalizer)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", client.IgnoreNotFound(err))
	}
	return ctrl.Result{}, nil
}

// closeCancelRecord gives a cancel that will never be sent, because the operation was seen
// done first, its outcome: a record without one would read as a cancel still under way.
func closeCancelRecord(obj *opsv1.OptimizationOperation, now time.Time) {
	if !obj.Status.Done || !obj.Spec.Cancel || cancelAnswered(obj) {
		return
	}
	if obj.Status.Cancel == nil {
		t := metav1.NewTime(now)
		obj.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &t, Outcome: opsv1.CancelAlreadyDone,
			Message: "The operation had already finished; no cancel was sent"}
		return
	}
	// Requested earlier, but every attempt was deferred or failed before an answer came.
	obj.Status.Cancel.Outcome = opsv1.CancelAlreadyDone
	obj.Status.Cancel.Message = "The operation finished before the server answered the cancel"
}

func cancelAnswered(obj *opsv1.OptimizationOperation) bool {
	return obj.Status.Cancel != nil && obj.Status.Cancel.Outcome != ""
}

// cancelOnDelete sends one cancel. retry is true when it failed transiently and the deletion
// timeout has not passed yet.
func (r *OptimizationOperationReconciler) cancelOnDelete(ctx context.Context, obj *opsv1.OptimizationOperation) (res ctrl.Result, retry bool) {
	name := obj.Spec.OperationName
	inTime := r.Now().Sub(obj.DeletionTimestamp.Time) < r.Options.DeletionCancelTimeout
	ops, err := r.opsFor(ctx, obj)
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
	r.forget(keyOf(obj))
	closeCancelRecord(obj, r.Now())
	obj.Status.ObservedGeneration = obj.Generation
	for i := range obj.Status.Conditions {
		obj.Status.Conditions[i].ObservedGeneration = obj.Generation
	}
}

// reconcileRemote reads the operation when it is due, sends a pending cancel, and schedules
// the next read.
func (r *OptimizationOperationReconciler) reconcileRemote(ctx context.Context, obj *opsv1.OptimizationOperation) (ctrl.Result, error) {
	state := r.tracker.get(keyOf(obj), obj.UID)
	now := r.Now()
	if len(obj.Status.Conditions) == 0 && state.seenGeneration == 0 {
		// First visit: say so at once, so a fresh object never looks finished or healthy.
		// (A copy without conditions after a visit is a cache that lags this process's own
		// writes: it must not overwrite them with Pending.)
		policy.SetConditions(obj, policy.Problem{})
	}

	creds, credsKey, credsErr := r.credentials(ctx, obj)
	if credsErr != nil && credsKey == "" {
		return ctrl.Result{}, credsErr // the API server itself failed; the work queue backs off
	}
	credsChanged := state.refusedCreds != "" && credsKey != state.refusedCreds
	specChanged := obj.Generation != state.seenGeneration
	if !state.due(now) && !credsChanged && !specChanged {
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
	prio := budget.Poll
	if sendCancel || r.followingCancel(obj, now) {
		prio = budget.Urgent
	}
	// When the last reconcile read the operation running and then found no room in the budget
	// for the cancel, this token goes to the cancel: reading first again could take the only
	// token every time and starve the cancel.
	skipRead := sendCancel && state.readForCancel
	state.readForCancel = false
	if !skipRead {
		op, res, err := r.get(ctx, ops, obj, state, prio)
		if op == nil {
			if err != nil {
				return r.failed(obj, state, now, credsKey, err), nil
			}
			return res, nil // the budget said wait
		}
		r.succeeded(obj, state, op, now)
	}

	if sendCancel && cancelPending(obj) {
		if res, done := r.sendCancel(ctx, ops, obj, state, credsKey); done {
			return res, nil
		}
		// The operation was just told to stop: read it again at once, so a cancel that takes
		// effect immediately shows as Cancelled in the same reconcile.
		if op, _, err := r.get(ctx, ops, obj, state, budget.Urgent); op != nil {
			r.succeeded(obj, state, op, now)
		} else if err != nil {
			// The cancel was answered; the fast polls that follow will see the result.
			logf.FromContext(ctx).Info("read after cancel failed", "error", err.Error())
		}
	}
	return r.settle(obj, state, now), nil
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
	op, err := ops.Get(ctx, obj.Spec.OperationName)
	return op, ctrl.Result{}, err
}

// succeeded records a successful read.
func (r *OptimizationOperationReconciler) succeeded(obj *opsv1.OptimizationOperation, state *pollState, op *longrunningpb.Operation, now time.Time) {
	state.succeeded()
	r.Budget.Recover()
	policy.ApplyOperation(&obj.Status, op, metav1.NewTime(now))
}

// sendCancel sends the pending cancel and records the server's answer. done is true when the
// reconcile should return res without reading the operation again.
func (r *OptimizationOperationReconciler) sendCancel(ctx context.Context, ops remote.Operations, obj *opsv1.OptimizationOperation, state *pollState, credsKey string) (res ctrl.Result, done bool) {
	now := r.Now()
	if obj.Status.Cancel == nil {
		t := metav1.NewTime(now)
		obj.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &t}
		state.cancelRequestedAt = now
	}
	wait, ok := r.Budget.Take(keyOf(obj), budget.Urgent)
	if !ok {
		metrics.BudgetDeferred.WithLabelValues(budget.Urgent.String()).Inc()
		policy.SetConditions(obj, policy.Problem{})
		state.nextPollAt = now.Add(wait) // come back for the cancel as soon as there is room
		state.readForCancel = true
		return ctrl.Result{RequeueAfter: wait}, true
	}
	err := ops.Cancel(ctx, obj.Spec.OperationName)
	outcome, msg, answered := policy.CancelOutcome(err)
	if answered {
		obj.Status.Cancel.Outcome, obj.Status.Cancel.Message = outcome, msg
		state.cancelOutcome, state.cancelMessage = outcome, msg
		state.cancelFailures, state.nextCancelAt = 0, time.Time{}
		if err == nil {
			r.event(obj, corev1.EventTypeNormal, "CancelSent", "Cancel",
				"Sent a cancel for operation %s; the server accepted it", obj.Spec.OperationName)
		} else {
			r.event(obj, corev1.EventTypeWarning, "CancelUnsupported", "Cancel",
				"The server did not take the cancel of operation %s: %s; the operation is still tracked", obj.Spec.OperationName, msg)
		}
		return ctrl.Result{}, false
	}
	// Transient, rate limited or refused credentials: no answer yet, so the cancel stays
	// pending and is sent again after a backoff of its own. The state already says a cancel is
	// under way.
	policy.SetConditions(obj, policy.Problem{})
	res, f := r.recordFailure(obj, state, now, credsKey, err, true)
	r.event(obj, corev1.EventTypeWarning, "CancelFailed", "Cancel",
		"Cancel of operation %s failed and will be retried: %s", obj.Spec.OperationName, f)
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
		r.event(obj, corev1.EventTypeWarning, "RemoteError", "Poll", "Reading operation %s failed: %s", obj.Spec.OperationName, f)
	}
	return res
}

// recordFailure records a failed call (a read, or a cancel when cancel is true) in the
// conditions and the poll state, and decides when to try again.
func (r *OptimizationOperationReconciler) recordFailure(obj *opsv1.OptimizationOperation, state *pollState, now time.Time, credsKey string, err error, cancel bool) (ctrl.Result, policy.Failure) {
	f := policy.Classify(err)
	state.failed(now, f)
	name := obj.Spec.OperationName
	if f.Kind == policy.RateLimited {
		pause := f.RetryAfter
		if pause <= 0 {
			pause = policy.MinRateLimitedDelay
		}
		r.Budget.Throttle(pause)
	}
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
		r.forget(keyOf(obj))
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
	if obj.Spec.PollInterval != nil {
		in.SpecCap = obj.Spec.PollInterval.Duration
	}
	if c := obj.Status.Cancel; c != nil && c.Outcome == opsv1.CancelAccepted && c.RequestedAt != nil {
		t := c.RequestedAt.Time
		in.CancelRequestedAt = &t
	}
	return in
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

// keyOf is the work queue's key of obj (namespace/name).
func keyOf(obj client.Object) string { return client.ObjectKeyFromObject(obj).String() }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
