package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// act carries out d: it is the only step that takes from the call budget or the submit cap,
// calls the API, and makes the writes that must come before a call (the finalizer, the record
// of a submit attempt). done is true when the action was a write of its own and there is
// nothing to record: its watch event brings the next reconcile.
func (r *OptimizationOperationReconciler) act(ctx context.Context, ob *observation, d decide.Decision) (out decide.Outcome, done bool, err error) {
	switch d.Action {
	case decide.AddFinalizer, decide.RemoveFinalizer:
		return out, true, r.setFinalizer(ctx, ob.Obj, d.Action == decide.AddFinalizer)
	case decide.Forget:
		r.forget(ob.key)
		return out, true, nil
	case decide.Read:
		out = r.read(ctx, ob, d)
	case decide.SendCancel:
		out = r.sendCancel(ctx, ob, d)
	case decide.Submit:
		if out, err = r.submit(ctx, ob, d); err != nil {
			return out, true, err
		}
	case decide.CancelOnDelete:
		out = r.cancelOnDelete(ctx, ob, d)
	case decide.WriteResult:
		out = r.writeResult(ctx, ob, d)
	}
	out.At = r.Now()
	return out, false, nil
}

// setFinalizer adds or removes the finalizer. The optimistic lock keeps a stale cache from
// dropping other controllers' finalizers: a merge patch replaces the whole list.
func (r *OptimizationOperationReconciler) setFinalizer(ctx context.Context, obj *opsv1.OptimizationOperation, want bool) error {
	if want == controllerutil.ContainsFinalizer(obj, Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want {
		controllerutil.AddFinalizer(obj, Finalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, Finalizer)
	}
	if err := r.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("update finalizer: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// ops is the client for ob's credentials; the error is the call's when it cannot be sent.
func (r *OptimizationOperationReconciler) ops(ob *observation) (remote.Operations, error) {
	if ob.CredsErr != nil {
		return nil, ob.CredsErr
	}
	return r.Clients.For(ob.creds)
}

// take asks the budget for n calls of ob's project at priority p.
func (r *OptimizationOperationReconciler) take(ob *observation, p budget.Priority, n int) (time.Duration, bool) {
	wait, ok := r.Budget.TakeFor(ob.key, projectOf(ob.Obj), p, n)
	if !ok {
		metrics.BudgetDeferred.WithLabelValues(p.String()).Inc()
	}
	return wait, ok
}

func (r *OptimizationOperationReconciler) read(ctx context.Context, ob *observation, d decide.Decision) decide.Outcome {
	ops, err := r.ops(ob)
	if err != nil {
		return decide.Outcome{ReadErr: err}
	}
	if wait, ok := r.take(ob, d.Priority, 1); !ok {
		return decide.Outcome{Denied: true, Wait: wait}
	}
	if next := ob.Schedule.NextPollAt; !next.IsZero() {
		metrics.PollLag.Observe(max(r.Now().Sub(next), 0).Seconds())
	}
	op, err := r.get(ctx, ob, ops)
	return decide.Outcome{Op: op, ReadErr: err}
}

func (r *OptimizationOperationReconciler) get(ctx context.Context, ob *observation, ops remote.Operations) (*longrunningpb.Operation, error) {
	op, err := ops.Get(ctx, policy.TrackedName(ob.Obj))
	r.called(ob, ops, err)
	return op, err
}

// sendCancel sends the pending cancel, then the read that confirms it.
func (r *OptimizationOperationReconciler) sendCancel(ctx context.Context, ob *observation, d decide.Decision) decide.Outcome {
	ops, err := r.ops(ob)
	if err != nil {
		return decide.Outcome{CancelSent: true, CancelErr: err}
	}
	wait, ok := r.take(ob, budget.Urgent, d.Tokens)
	if !ok {
		return decide.Outcome{Denied: true, Wait: wait}
	}
	if s := ob.Schedule; s.CancelFailures == 0 && ob.Obj.Status.Cancel != nil && ob.Obj.Status.Cancel.RequestedAt != nil {
		start := ob.Obj.Status.Cancel.RequestedAt.Time
		if !s.CancelRequestedAt.IsZero() {
			start = s.CancelRequestedAt
		}
		metrics.CancelTokenWait.Observe(max(r.Now().Sub(start), 0).Seconds())
	}
	err = ops.Cancel(ctx, policy.TrackedName(ob.Obj))
	r.called(ob, ops, err)
	out := decide.Outcome{CancelSent: true, CancelErr: err}
	if _, _, answered := policy.CancelOutcome(err); !answered {
		return out
	}
	// The operation was just told to stop: read it again at once, so a cancel that takes
	// effect immediately shows as Cancelled in the same status write as its answer. The
	// cancel took this read's token along when the bucket could hold two.
	if d.Tokens < 2 {
		if _, ok := r.take(ob, budget.Urgent, 1); !ok {
			return out
		}
	}
	out.Op, out.ReadErr = r.get(ctx, ob, ops)
	return out
}

// called records a call's result where the whole operator sees it: the outage tracker that
// wakes resources when the API answers again, the budget's reaction to RESOURCE_EXHAUSTED,
// and the client that last worked for deletion's fallback.
func (r *OptimizationOperationReconciler) called(ob *observation, ops remote.Operations, err error) {
	now := r.Now()
	if err == nil {
		ob.memo.lastWorking = ops
		r.Budget.Recover()
		r.recovery.succeeded(ob.key, now, r.memos.size())
		return
	}
	f := policy.Classify(err)
	r.recovery.failed(ob.key, now, f.Kind.Permanent())
	r.quotaBackoff(projectOf(ob.Obj), f)
}

// projectOf is the project obj's calls go to, and count against the quota of: the tracked
// operation's, or, before a submit is answered, the request's parent's.
func projectOf(obj *opsv1.OptimizationOperation) string {
	if policy.Submitting(obj) {
		return policy.ProjectOf(obj.Spec.Submit.Parent)
	}
	return policy.ProjectOf(policy.TrackedName(obj))
}

// quotaBackoff holds calls to a project back after RESOURCE_EXHAUSTED: quota is per project,
// so one resource's 429 is every call's to that project, and none of another's. The server's
// RetryInfo says how long; without it the budget slows down as well as pausing.
func (r *OptimizationOperationReconciler) quotaBackoff(project string, f policy.Failure) {
	if f.Kind != policy.RateLimited {
		return
	}
	if f.RetryAfter > 0 {
		r.Budget.PauseProject(project, f.RetryAfter)
	} else {
		r.Budget.ThrottleProject(project, policy.MinRateLimitedDelay)
	}
}

// submit sends spec.submit once: a slot of the submit cap and a token of the budget, the
// attempt recorded with the resourceVersion the decision was taken on (if the object changed
// since, nothing is sent), then the call.
func (r *OptimizationOperationReconciler) submit(ctx context.Context, ob *observation, d decide.Decision) (decide.Outcome, error) {
	if ob.CredsErr != nil {
		return decide.Outcome{SubmitErr: ob.CredsErr}, nil
	}
	sub, err := r.Clients.SubmitterFor(ob.creds)
	if err != nil {
		if errors.As(err, new(*policy.CredentialsError)) {
			return decide.Outcome{SubmitErr: err}, nil
		}
		return decide.Outcome{}, fmt.Errorf("create the client for spec.submit: %w", err)
	}
	project := projectOf(ob.Obj)
	slot, wait, ok := r.submits.Take(ob.key, project)
	if ok {
		if wait, ok = r.take(ob, d.Priority, 1); !ok {
			r.submits.Cancel(slot)
		}
	}
	if !ok {
		return decide.Outcome{Denied: true, Wait: wait}, nil
	}
	attempt, err := r.recordAttempt(ctx, ob)
	if err != nil {
		r.submits.Cancel(slot)
		if apierrors.IsConflict(err) {
			return decide.Outcome{Conflict: true}, nil
		}
		return decide.Outcome{}, err
	}
	// The call runs to its own deadline (--request-timeout) even when the manager is stopping:
	// cut short, its answer would be lost and the resource left SubmitUncertain for a person;
	// the answer is stored by the write that follows, which outlives the shutdown too.
	started, err := sub.Submit(context.WithoutCancel(ctx), ob.request.Message)
	r.submits.Done(slot)
	if err == nil {
		r.Budget.Recover()
	} else {
		r.quotaBackoff(project, policy.Classify(err))
	}
	return decide.Outcome{Attempt: attempt, Name: started.Name, MetadataType: started.MetadataType, SubmitErr: err}, nil
}

// recordAttempt stores the attempt (when, what, the how-many-th) before the request is sent,
// with the resourceVersion the decision was taken on as a precondition: if the object changed
// since (another process recorded or answered an attempt, a person approved one), the write is
// refused and nothing is sent. Once it is stored, whatever happens to this process, the next
// reader finds an attempt without an answer, which is never sent again without a person.
func (r *OptimizationOperationReconciler) recordAttempt(ctx context.Context, ob *observation) (*opsv1.SubmitStatus, error) {
	obj := ob.Obj.DeepCopy()
	var (
		attempts int32
		previous *metav1.Time
	)
	if st := obj.Status.Submit; st != nil {
		attempts, previous = st.Attempts, st.AttemptedAt
	}
	at := submit.AttemptTime(r.Now(), previous)
	st := &opsv1.SubmitStatus{AttemptedAt: &at, RequestHash: ob.request.Hash, Attempts: attempts + 1}
	res := decide.Result{Status: *obj.Status.DeepCopy(), Observed: true}
	res.Status.Submit = st
	sending := submit.Sending(ob.request.Method, attempts+1)
	res.Problem = &sending
	decide.Record(obj, res, false, true)
	if err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(ob.orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, fmt.Errorf("record the attempt to send spec.submit of %s: %w", ob.key, err)
	}
	// What is stored now is the base of the write that records the answer.
	ob.orig = obj.DeepCopy()
	ob.Obj.Status = *obj.Status.DeepCopy()
	return st, nil
}

// cancelOnDelete sends deletion's one cancel, within its deadline: a call that hangs is cut
// there, and none is sent after it.
func (r *OptimizationOperationReconciler) cancelOnDelete(ctx context.Context, ob *observation, d decide.Decision) decide.Outcome {
	ops, err := r.ops(ob)
	if errors.As(err, new(*policy.CredentialsError)) && ob.memo.lastWorking != nil {
		// The Secret went first (a GitOps prune deletes both together): the key that last
		// worked for this resource still may send its cancel.
		ops, err = ob.memo.lastWorking, nil
	}
	if err != nil {
		return decide.Outcome{CancelSent: true, CancelErr: err}
	}
	if wait, ok := r.take(ob, budget.Urgent, 1); !ok {
		return decide.Outcome{Denied: true, Wait: wait}
	}
	cctx, cancel := context.WithDeadline(ctx, d.Deadline)
	defer cancel()
	err = ops.Cancel(cctx, policy.TrackedName(ob.Obj))
	r.called(ob, ops, err)
	return decide.Outcome{CancelSent: true, CancelErr: err}
}
