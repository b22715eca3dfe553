package controllers

import (
	"time"

	"context"
	"errors"
	"fmt"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// observation is decide.Observation with what act and record need besides.
type observation struct {
	decide.Observation
	// orig is the resource as stored: status writes are computed against it.
	orig *opsv1.OptimizationOperation
	key  string
	memo *memo
	// creds and request are what a call would send.
	creds   remote.Credentials
	request submit.Request
}

// observe builds the one value every decision is taken on: the resource (read from the API
// server when it may send a cancel or a submit), the answers not stored yet laid over it, the
// credentials, the request of spec.submit when it may be sent, and the schedule. It returns
// nil when there is nothing to reconcile.
func (r *OptimizationOperationReconciler) observe(ctx context.Context, req ctrl.Request) (*observation, error) {
	obj := &opsv1.OptimizationOperation{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.String())
		}
		return nil, client.IgnoreNotFound(err)
	}
	if decide.MayCancel(obj) || decide.MaySubmit(obj) || r.memos.holdsResponse(req.String(), obj.UID) {
		// Whether to send a cancel or a submit is decided on the stored record, never on a
		// cache that may lag this process's writes or another process's: sending twice, or
		// writing over an answer, are exactly the mistakes a lagging copy invites. For a
		// submit, twice means a second solve, billed, that no name will ever point to. A
		// resource whose response this process holds for spec.resultTo was just written done:
		// a cache without that write would read the operation again.
		if err := r.APIReader.Get(ctx, req.NamespacedName, obj); err != nil {
			if apierrors.IsNotFound(err) {
				r.forget(req.String())
			}
			return nil, client.IgnoreNotFound(err)
		}
		if r.Options.Selector != nil && !r.Options.Selector.Matches(labels.Set(obj.Labels)) {
			// Relabelled to another shard since the cache saw it: that shard's manager now
			// owns the cancel or the submit, and both sending it would send it twice.
			r.forget(req.String())
			return nil, nil
		}
	}
	key := keyOf(obj)
	m := r.memos.get(key, obj.UID)
	ob := &observation{orig: obj.DeepCopy(), key: key, memo: m}
	// An answer this process received but could not store yet (a cancel's, or a submit's and
	// the operation name it brought) is laid over what the server holds, so that this
	// reconcile decides on it and its write carries it.
	m.overlay(&obj.Status)
	if obj.Status.OperationName == "" {
		// Columns, docs and dashboards read the tracked name from status, whichever form the
		// spec has. (A resource that finished under an earlier release keeps its status as
		// it is: one write each for all of them at an upgrade would buy only a column.)
		if !obj.Status.Done {
			obj.Status.OperationName = obj.Spec.OperationName
		}
	}
	ob.Observation = decide.Observation{Obj: obj, Now: r.Now(), Schedule: m.schedule, Jitter: r.Rand(), ResponseHeld: m.response != nil}
	if obj.Status.Done && (m.response != nil || !decide.ResultToWrite(obj)) {
		// Nothing more is called for, except the read that brings back a response to store.
		return ob, nil
	}
	creds, credsKey, credsErr := r.credentials(ctx, obj)
	if credsErr != nil && credsKey == "" {
		return nil, credsErr // the API server itself failed; the work queue backs off
	}
	ob.creds, ob.CredsKey, ob.CredsErr = creds, credsKey, credsErr
	if obj.DeletionTimestamp.IsZero() && decide.MaySubmit(obj) && submit.Decide(obj) == submit.StepSend {
		if err := r.observeRequest(ctx, ob); err != nil {
			return nil, err
		}
	}
	ob.Woken = r.recovery.woken(key)
	ob.FairShare = r.fairShare()
	return ob, nil
}

// observeRequest builds the request of spec.submit from what it names now.
func (r *OptimizationOperationReconciler) observeRequest(ctx context.Context, ob *observation) error {
	obj := ob.Obj
	ob.Request.Method = submit.MethodOf(obj.Spec.Submit)
	cm, forbidden, err := r.requestConfigMap(ctx, obj)
	if err != nil {
		return err
	}
	if forbidden != nil {
		// A permission fixed in RBAC sends no event: look again soon, it is a local read.
		ob.Request.Problem, ob.Request.Recheck = forbidden, true
		return nil
	}
	req, err := submit.Build(obj, cm)
	if invalid := (*submit.InvalidRequestError)(nil); errors.As(err, &invalid) {
		// Only a change can fix it, and every change wakes the reconciler: a new generation of
		// the spec, or the ConfigMap through its watch. Nothing was sent.
		p := submit.Invalid(obj, invalid)
		ob.Request.Problem = &p
		return nil
	} else if err != nil {
		return fmt.Errorf("build the request of spec.submit: %w", err)
	}
	ob.request, ob.Request.Hash = req, req.Hash
	if tours, ok := req.Message.(*rpb.OptimizeToursRequest); ok && tours.GetTimeout() != nil {
		ob.Request.Timeout = tours.GetTimeout().AsDuration()
	}
	return nil
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
// change of the ConfigMap changes nothing for them. It also maps it to the resources whose
// response waits for that name to be free (spec.resultTo).
func (r *OptimizationOperationReconciler) waitingOn(ctx context.Context, cm client.Object) []reconcile.Request {
	var list opsv1.OptimizationOperationList
	if err := r.List(ctx, &list, client.InNamespace(cm.GetNamespace()), client.MatchingFields{configMapIndex: cm.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "cannot list the OptimizationOperations that read a ConfigMap", "configMap", keyOf(cm))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if o := &list.Items[i]; decide.MaySubmit(o) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	blocked, err := r.blockedBy(ctx, cm)
	if err != nil {
		logf.FromContext(ctx).Error(err, "cannot list the OptimizationOperations that write a ConfigMap", "configMap", keyOf(cm))
	}
	for _, key := range blocked {
		reqs = append(reqs, reconcile.Request{NamespacedName: key})
	}
	return reqs
}

// pollShare is the part of the call budget that routine polls may plan to use; the rest stays
// free for what cannot wait for a poll's turn: cancels, the reads that confirm them, and the
// first reads of new resources.
const pollShare = 0.8

// fairShare is how often the shared budget can read each tracked operation with pollShare of
// its rate. Crossing --max-poll-interval either way is logged: past it, reads come later
// than configured.
func (r *OptimizationOperationReconciler) fairShare() time.Duration {
	d := time.Duration(float64(r.memos.size()) / (pollShare * r.Budget.Rate()) * float64(time.Second))
	metrics.PollFairShare.Set(d.Seconds())
	if saturated := policy.Saturated(r.Options.Poll, d); r.saturated.Swap(saturated) != saturated {
		log := logf.Log.WithName("budget")
		if saturated {
			log.Info("The API budget cannot read every operation within --max-poll-interval: each is read about every fairShare; raise --api-qps (within the project's quota) or shard the operator",
				"fairShare", d.String(), "maxPollInterval", r.Options.Poll.Max.String(), "tracked", r.memos.size(), "apiQPS", r.Budget.Rate())
		} else {
			log.Info("The API budget again reads every operation within --max-poll-interval", "fairShare", d.String())
		}
	}
	return d
}

// forget drops what is remembered of a resource that is gone or finished.
func (r *OptimizationOperationReconciler) forget(key string) {
	r.memos.forget(key)
	r.recovery.forget(key)
	r.Budget.Forget(key)
	r.submits.Forget(key)
}

// keyOf is the work queue's key of obj (namespace/name).
func keyOf(obj client.Object) string { return client.ObjectKeyFromObject(obj).String() }
