package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/metrics"
)

// record folds the outcome into the resource, writes its status once (only when it changed),
// then emits the events and metrics of what was written, and says when to come back.
func (r *OptimizationOperationReconciler) record(ctx context.Context, ob *observation, d decide.Decision, out decide.Outcome) (ctrl.Result, error) {
	res := decide.Fold(r.config(), ob.Observation, d, out)
	obj, m := ob.Obj, ob.memo
	wasDone := obj.Status.Done
	decide.Record(obj, res, wasDone, m.visited)
	m.schedule, m.visited = res.Schedule, true
	if res.CancelAnswer != nil {
		m.cancelAnswer = res.CancelAnswer
	}
	if res.SubmitAnswer != nil {
		m.submitAnswer = res.SubmitAnswer
	}
	if res.Response != nil {
		m.response = res.Response
	}
	if res.DropResponse {
		m.response = nil
	}
	written := obj.DeepCopy()
	if err := r.writeStatus(ctx, ob.orig, written, res.MustStore); err != nil {
		// What this reconcile learned is not stored, and the schedule says the operation was
		// just read: without this, the retry would find nothing due and the object would keep
		// its old status until the next poll, minutes away under a saturated budget. (Answers
		// are kept in the memo apart.) Not when the API server refuses the object's writes as
		// invalid: a read would spend a call on a status that cannot be stored either.
		if !apierrors.IsInvalid(err) {
			m.schedule.NextPollAt = time.Time{}
		}
		return ctrl.Result{}, err
	}
	r.tell(ob.orig, obj, res.Events)
	r.measure(ob, obj, res)

	var err error
	switch {
	case res.ReleaseFinalizer:
		err = r.setFinalizer(ctx, written, false)
		r.forget(ob.key)
	case obj.Status.Done:
		// Only now that the terminal status, with any cancel answer, is stored may the memory
		// of the resource go (unless a response waits there to be written to spec.resultTo);
		// and a finished operation needs no cancel on deletion, so the finalizer goes too.
		if !decide.ResultToWrite(obj) || decide.ResultBlocked(obj) {
			r.forget(ob.key)
		}
		if obj.DeletionTimestamp.IsZero() {
			err = r.setFinalizer(ctx, written, false)
		}
	}
	prio := int(d.Priority)
	return ctrl.Result{RequeueAfter: res.Requeue, Priority: &prio}, err
}

// FinalWriteTimeout bounds the status write that ends a reconcile once the reconcile's own
// context is cancelled (the manager is stopping). The Deployment's grace period covers a call
// in flight (DefaultRequestTimeout) and this write.
const FinalWriteTimeout = 5 * time.Second

// DefaultRequestTimeout is --request-timeout's default: the bound of one call to the API.
const DefaultRequestTimeout = 15 * time.Second

// maxWriteAttempts bounds the retries of one status write through conflicts and, for one
// that carries an answer, transient failures.
const maxWriteAttempts = 6

// writeStatus writes the change from orig to obj with one merge patch, when there is one.
// Every write carries the resourceVersion it was computed against: when the object changed
// since, it is read again, and the same change is applied to it only if it is still the same
// object (its UID), so what was learned about a deleted resource never lands on a new one of
// the same name. A write that carries an answer (mustStore) is also retried through transient
// failures. It outlives a shutdown's cancelled context, bounded, so that an answer received
// just before a rolling update is stored and not asked for again.
func (r *OptimizationOperationReconciler) writeStatus(ctx context.Context, orig, obj *opsv1.OptimizationOperation, mustStore bool) error {
	if equality.Semantic.DeepEqual(orig.Status, obj.Status) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalWriteTimeout)
	defer cancel()
	change, err := client.MergeFrom(orig).Data(obj)
	if err != nil {
		return fmt.Errorf("compute the status patch of %s: %w", keyOf(obj), err)
	}
	version := orig.ResourceVersion
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		data, err := withVersion(change, version)
		if err != nil {
			return err
		}
		err = r.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, data))
		switch {
		case err == nil || apierrors.IsNotFound(err):
			return nil
		case apierrors.IsInvalid(err):
			// The API server refuses this object's writes (a schema stricter than the stored
			// object, for one): say so on the object itself, where its owner looks.
			r.event(orig, "Warning", "StatusRejected", "Observe", "The API server refused the status update: %v", err)
		case attempt >= maxWriteAttempts:
		case apierrors.IsConflict(err):
			current := &opsv1.OptimizationOperation{}
			if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(orig), current); gerr != nil {
				if apierrors.IsNotFound(gerr) {
					return nil
				}
				return fmt.Errorf("read %s again after a conflict: %w", keyOf(orig), gerr)
			}
			if current.UID != orig.UID {
				return nil // deleted and created anew: nothing learned here is about it
			}
			version = current.ResourceVersion
			continue
		case mustStore && ctx.Err() == nil:
			time.Sleep(backoff)
			backoff *= 2
			continue
		}
		return fmt.Errorf("patch status of %s/%s: %w", obj.Namespace, obj.Name, err)
	}
}

// withVersion adds the resourceVersion precondition to a merge patch.
func withVersion(change []byte, version string) ([]byte, error) {
	var patch map[string]any
	if err := json.Unmarshal(change, &patch); err != nil {
		return nil, fmt.Errorf("decode the status patch: %w", err)
	}
	md, _ := patch["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md["resourceVersion"] = version
	patch["metadata"] = md
	return json.Marshal(patch)
}

// measure observes the metrics of what was just written.
func (r *OptimizationOperationReconciler) measure(ob *observation, obj *opsv1.OptimizationOperation, res decide.Result) {
	if res.SubmitOutcome != "" {
		metrics.Submits.WithLabelValues(ob.Request.Method, string(res.SubmitOutcome)).Inc()
	}
	if ob.orig.Status.Done || !obj.Status.Done {
		return
	}
	if c := obj.Status.Cancel; c != nil && c.RequestedAt != nil && c.Outcome != opsv1.CancelAlreadyDone && c.Outcome != opsv1.CancelNotSubmitted {
		// The stored requestedAt has whole seconds; this process's own record is exact.
		start := c.RequestedAt.Time
		if t := res.Schedule.CancelRequestedAt; !t.IsZero() {
			start = t
		}
		metrics.CancelLatency.WithLabelValues(metrics.State(obj)).Observe(max(r.Now().Sub(start), 0).Seconds())
	}
}
