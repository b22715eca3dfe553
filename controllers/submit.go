package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// maySubmit reports whether a reconcile of obj may send spec.submit: it starts its own solve
// and no operation name is known yet.
func maySubmit(obj *opsv1.OptimizationOperation) bool {
	return policy.Submitting(obj) && !obj.Status.Done
}

// configMapIndex indexes OptimizationOperations by the ConfigMap their request is read from.
const configMapIndex = "spec.submit.optimizeToursLongRunning.configMapKeyRef.name"

func configMapOf(o client.Object) []string {
	obj, ok := o.(*opsv1.OptimizationOperation)
	if !ok {
		return nil
	}
	if ref := submit.ConfigMapRef(obj.Spec.Submit); ref != nil {
		return []string{ref.Name}
	}
	return nil
}

// waitingOn maps a ConfigMap to the resources that read their request from it and have not
// started a solve yet. Resources that did are not woken: what they sent is recorded, and a
// change of the ConfigMap changes nothing for them.
func (r *OptimizationOperationReconciler) waitingOn(ctx context.Context, cm client.Object) []reconcile.Request {
	var list opsv1.OptimizationOperationList
	if err := r.List(ctx, &list, client.InNamespace(cm.GetNamespace()), client.MatchingFields{configMapIndex: cm.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "cannot list the OptimizationOperations that read a ConfigMap", "configMap", keyOf(cm))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if o := &list.Items[i]; maySubmit(o) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return reqs
}

// reconcileSubmit takes spec.submit as far as this reconcile can, on the object read from the
// API server: it ends the resource NotSubmitted, holds it SubmitUncertain, or sends the
// request. track is true once an operation name is known: the caller then tracks it like one
// named by spec.operationName, in the same reconcile and the same status write.
func (r *OptimizationOperationReconciler) reconcileSubmit(ctx context.Context, obj, orig *opsv1.OptimizationOperation, state *pollState) (res ctrl.Result, track bool, err error) {
	step := submit.Decide(obj)
	if step == submit.StepTrack {
		return ctrl.Result{}, true, nil
	}
	obj.Status.ObservedGeneration = obj.Generation
	switch step {
	case submit.StepNotSubmitted:
		submit.NotSubmitted(obj, metav1.NewTime(r.Now()))
		policy.SetConditions(obj, policy.Problem{})
		return ctrl.Result{}, false, nil
	case submit.StepUncertain:
		// Nothing is sent until a person approves it. The approval (the annotation) and a
		// spec change wake the reconciler; nothing else can change this, so no requeue.
		policy.SetConditions(obj, submit.Uncertain(obj))
		return ctrl.Result{}, false, nil
	}
	return r.send(ctx, obj, orig, state)
}

// send observes what the request is built from (the ConfigMap, the credentials), decides
// whether it may go now (a valid request, past any back-off, within the submit cap and the
// call budget), records the attempt, sends it, and records the answer.
func (r *OptimizationOperationReconciler) send(ctx context.Context, obj, orig *opsv1.OptimizationOperation, state *pollState) (ctrl.Result, bool, error) {
	now := r.Now()
	method := submit.MethodOf(obj.Spec.Submit)
	cm, forbidden, err := r.requestConfigMap(ctx, obj)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	if forbidden != nil {
		// A permission fixed in RBAC sends no event: look again soon, it is a local read.
		policy.SetConditions(obj, *forbidden)
		return ctrl.Result{RequeueAfter: r.Options.CredentialsRecheck}, false, nil
	}
	req, err := submit.Build(obj, cm)
	if invalid := (*submit.InvalidRequestError)(nil); errors.As(err, &invalid) {
		// Only a change can fix it, and every change wakes the reconciler: a new generation of
		// the spec, or the ConfigMap through its watch. Nothing was sent.
		policy.SetConditions(obj, submit.Invalid(obj, invalid))
		return ctrl.Result{}, false, nil
	} else if err != nil {
		return ctrl.Result{}, false, fmt.Errorf("build the request of spec.submit: %w", err)
	}

	creds, credsKey, credsErr := r.credentials(ctx, obj)
	if credsErr != nil && credsKey == "" {
		return ctrl.Result{}, false, credsErr // the API server itself failed; the work queue backs off
	}
	if inputs := req.Hash + " " + credsKey; inputs != state.submitInputs {
		// A new request or new credentials: what refused the old ones says nothing of these.
		state.submitFailures, state.nextSubmitAt, state.refusedCreds = 0, time.Time{}, ""
		state.submitInputs = inputs
	}
	if now.Before(state.nextSubmitAt) {
		return ctrl.Result{RequeueAfter: r.submitRecheck(state, now)}, false, nil
	}
	var sub remote.Submitter
	if credsErr == nil {
		sub, credsErr = r.Clients.SubmitterFor(creds)
	}
	if credsErr != nil {
		if errors.As(credsErr, new(*policy.CredentialsError)) {
			return r.notStarted(obj, state, method, credsErr, credsKey, now), false, nil
		}
		return ctrl.Result{}, false, fmt.Errorf("create the client for spec.submit: %w", credsErr)
	}

	slot, res, ok := r.turn(obj, method)
	if !ok {
		return res, false, nil
	}
	if err := r.recordAttempt(ctx, obj, orig, req, now); err != nil {
		r.submits.cancel(slot)
		if apierrors.IsConflict(err) {
			// The object changed since it was read: decide again on what it holds now.
			return ctrl.Result{RequeueAfter: immediately}, false, nil
		}
		return ctrl.Result{}, false, err
	}
	// The call runs to its own deadline (--request-timeout) even when the manager is stopping:
	// cut short, its answer would be lost and the resource left SubmitUncertain for a person;
	// the answer is written by the reconcile's last write, which outlives the shutdown too.
	name, err := sub.Submit(context.WithoutCancel(ctx), req.Message)
	r.submits.done(slot)
	return r.answered(obj, state, req, name, err, credsKey, now)
}

// requestConfigMap reads the ConfigMap the request names, uncached: what is sent is what it
// holds now. It returns nil when the request names none or it does not exist (Build says so),
// and a problem when the operator may not read it.
func (r *OptimizationOperationReconciler) requestConfigMap(ctx context.Context, obj *opsv1.OptimizationOperation) (*corev1.ConfigMap, *policy.Problem, error) {
	ref := submit.ConfigMapRef(obj.Spec.Submit)
	if ref == nil {
		return nil, nil, nil
	}
	cm := &corev1.ConfigMap{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, cm)
	switch {
	case err == nil:
		return cm, nil, nil
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case apierrors.IsForbidden(err):
		return nil, &policy.Problem{Reason: opsv1.ReasonInvalidRequest, Message: fmt.Sprintf(
			"Nothing was sent: the operator may not read ConfigMap %s/%s (spec.submit.optimizeToursLongRunning.configMapKeyRef): %s; it needs get on configmaps in this namespace (docs/rbac.md)",
			obj.Namespace, ref.Name, policy.Truncate(err.Error()))}, nil
	}
	return nil, nil, fmt.Errorf("read ConfigMap %s/%s: %w", obj.Namespace, ref.Name, err)
}

// turn takes a slot of the submit cap and a token of the call budget, or says when to come
// back. A submit is the first call of its resource and goes at the priority of first reads:
// after cancels (a submit never holds one up), before re-reads, and held back like reads by the
// pause that follows RESOURCE_EXHAUSTED, which Urgent calls ignore: quota is per project.
func (r *OptimizationOperationReconciler) turn(obj *opsv1.OptimizationOperation, method string) (slot int, res ctrl.Result, ok bool) {
	key := keyOf(obj)
	slot, wait, ok := r.submits.take(key)
	if ok {
		if wait, ok = r.Budget.Take(key, budget.First); !ok {
			r.submits.cancel(slot)
			metrics.BudgetDeferred.WithLabelValues(budget.First.String()).Inc()
		}
	}
	if !ok {
		policy.SetConditions(obj, submit.Waiting(method))
		return -1, ctrl.Result{RequeueAfter: wait}, false
	}
	return slot, ctrl.Result{}, true
}

// recordAttempt stores the attempt (when, what, the how-many-th) before the request is sent,
// with the resourceVersion the decision was taken on as a precondition: if the object changed
// since (another process recorded or answered an attempt, a person approved one), the write is
// refused and nothing is sent. Once it is stored, whatever happens to this process, the next
// reader finds an attempt without an answer, which is never sent again without a person.
func (r *OptimizationOperationReconciler) recordAttempt(ctx context.Context, obj, orig *opsv1.OptimizationOperation, req submit.Request, now time.Time) error {
	before := obj.Status.DeepCopy()
	var (
		attempts int32
		previous *metav1.Time
	)
	if st := obj.Status.Submit; st != nil {
		attempts, previous = st.Attempts, st.AttemptedAt
	}
	at := submit.AttemptTime(now, previous)
	obj.Status.Submit = &opsv1.SubmitStatus{AttemptedAt: &at, RequestHash: req.Hash, Attempts: attempts + 1}
	policy.SetConditions(obj, submit.Sending(req.Method, attempts+1))
	if err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		// Not stored: the reconcile's last write must not store it either, unlocked, for a
		// request that was never sent.
		obj.Status = *before
		return fmt.Errorf("record the attempt to send spec.submit of %s: %w", keyOf(obj), err)
	}
	*orig = *obj.DeepCopy()
	return nil
}

// answered records the server's answer to an attempt.
func (r *OptimizationOperationReconciler) answered(obj *opsv1.OptimizationOperation, state *pollState, req submit.Request, name string, err error, credsKey string, now time.Time) (ctrl.Result, bool, error) {
	st := obj.Status.Submit
	if err == nil {
		at := metav1.NewTime(r.Now())
		obj.Status.OperationName = name
		st.Outcome, st.SubmittedAt, st.Message = opsv1.SubmitSubmitted, &at, "The server started operation "+name
		state.submitted = &submitAnswer{name: name, record: *st.DeepCopy()}
		state.submitFailures, state.nextSubmitAt = 0, time.Time{}
		r.Budget.Recover()
		metrics.Submits.WithLabelValues(req.Method, string(opsv1.SubmitSubmitted)).Inc()
		r.event(obj, corev1.EventTypeNormal, "Submitted", "Submit",
			"Sent the %s request (attempt %d); the server started operation %s", req.Method, st.Attempts, name)
		policy.SetConditions(obj, policy.Problem{}) // Pending: the operation is read next
		return ctrl.Result{}, true, nil
	}
	f := policy.ClassifySubmit(err)
	if f.MaybeStarted {
		st.Outcome, st.Message = opsv1.SubmitUncertain, f.String()
		state.submitted = &submitAnswer{record: *st.DeepCopy()}
		metrics.Submits.WithLabelValues(req.Method, string(opsv1.SubmitUncertain)).Inc()
		policy.SetConditions(obj, submit.Uncertain(obj))
		return ctrl.Result{}, false, nil
	}
	st.Outcome, st.Message = opsv1.SubmitNotStarted, f.String()
	state.submitted = &submitAnswer{record: *st.DeepCopy()}
	metrics.Submits.WithLabelValues(req.Method, string(opsv1.SubmitNotStarted)).Inc()
	return r.notStarted(obj, state, req.Method, err, credsKey, now), false, nil
}

// notStarted handles a submit that certainly started no solve: an answer that refused it, or
// credentials that could not even be loaded. What may pass by itself (RESOURCE_EXHAUSTED, an
// explicit UNAVAILABLE) is sent again after a back-off; the rest waits for a change of the
// spec, the ConfigMap or the Secret, or for the slow retry of permanent errors (a role granted
// in IAM, a Cloud Storage object created, changes no watch can see).
func (r *OptimizationOperationReconciler) notStarted(obj *opsv1.OptimizationOperation, state *pollState, method string, err error, credsKey string, now time.Time) ctrl.Result {
	f := policy.ClassifySubmit(err)
	state.submitFailures++
	r.quotaBackoff(f.Failure)
	delay := policy.NextPoll(r.Options.Poll, policy.PollInput{
		Now: now, Failure: &f.Failure, Failures: state.submitFailures, Jitter: r.Rand()})
	state.nextSubmitAt = now.Add(delay)
	var attempt int32
	if st := obj.Status.Submit; st != nil {
		attempt = st.Attempts
	}
	switch {
	case f.Retry():
		policy.SetConditions(obj, submit.Retrying(method, attempt, f, delay))
		r.event(obj, corev1.EventTypeWarning, "SubmitFailed", "Submit",
			"Attempt %d of the %s request started no solve: %s; it is sent again in %s", attempt, method, f, delay.Round(time.Second))
		return ctrl.Result{RequeueAfter: delay}
	case errors.As(err, new(*policy.CredentialsError)):
		policy.SetConditions(obj, submit.CredentialsRefused(err))
	default:
		policy.SetConditions(obj, submit.Refused(obj, method, f))
	}
	if f.Kind == policy.Auth {
		// Notice a fixed Secret soon; the server is asked again after the back-off or for a
		// new key.
		state.refusedCreds = credsKey
	}
	return ctrl.Result{RequeueAfter: r.submitRecheck(state, now)}
}

// submitRecheck is when to look again at a request that may not be sent before nextSubmitAt:
// then, or sooner to re-read a refused Secret.
func (r *OptimizationOperationReconciler) submitRecheck(state *pollState, now time.Time) time.Duration {
	d := state.nextSubmitAt.Sub(now)
	if state.refusedCreds != "" {
		d = min(d, r.Options.CredentialsRecheck)
	}
	return max(d, time.Millisecond)
}
