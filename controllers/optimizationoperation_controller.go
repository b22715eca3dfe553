// Package controllers holds the OptimizationOperation reconciler.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
)

// Finalizer holds deletion of a resource with deletionPolicy Cancel until its cancel was sent.
const Finalizer = "ops.routeopt.dev/cancel-on-delete"

// finalWriteTimeout bounds the status write that ends a reconcile once the reconcile's own
// context is cancelled (the manager is stopping); well within the Deployment's 10 s
// terminationGracePeriodSeconds.
const finalWriteTimeout = 5 * time.Second

// ClientSource hands out API clients per credential.
type ClientSource interface {
	For(creds remote.Credentials) (remote.Operations, error)
	SubmitterFor(creds remote.Credentials) (remote.Submitter, error)
}

// Options are the reconciler's tunables, set from the manager's flags.
type Options struct {
	Poll policy.PollConfig
	// RemoteUnavailableAfter is how long transient errors must last before Ready turns False.
	RemoteUnavailableAfter time.Duration
	// DeletionCancelTimeout bounds how long deletion retries a cancel that fails transiently.
	DeletionCancelTimeout time.Duration
	// CredentialsRecheck is how often a resource whose credentials were refused re-reads its
	// Secret (a cheap local read) to notice a fix; the remote call itself stays backed off.
	CredentialsRecheck time.Duration
	// MaxConcurrentReconciles is the number of workers; WorkersFor sizes it from the budget.
	MaxConcurrentReconciles int
	// Selector is the manager's --watch-label-selector (nil: every resource). The cache holds
	// only what it selects; a resource read uncached is checked against it as well.
	Selector labels.Selector
	// CredentialsFromSecrets allows spec.credentialsSecretRef. Off, the operator reads no
	// Secret and needs no access to Secrets: every call uses its own identity.
	CredentialsFromSecrets bool
	// MaxSubmitsPerMinute caps the requests of spec.submit sent in any minute
	// (--max-submits-per-minute), on top of the call budget; 0 sets no cap.
	MaxSubmitsPerMinute int
	// SubmitWindow is the window of that cap, a minute when zero. Tests shorten it to see the
	// cap at work within seconds.
	SubmitWindow time.Duration
}

// MaxAutoWorkers caps WorkersFor: past it, an installation is better served by shards.
const MaxAutoWorkers = 256

// WorkersFor is how many workers keep a budget of qps calls a second in use when every call
// takes as long as timeout (Little's law: calls in flight = rate x time per call). A worker
// holds its resource for the whole remote call, so a count sized for fast answers would cap the
// call rate far below the budget exactly when the API is slow; the extra workers cost a
// goroutine each while idle.
func WorkersFor(qps float64, timeout time.Duration) int {
	n := int(math.Ceil(qps * timeout.Seconds()))
	return min(max(n, 4), MaxAutoWorkers)
}

// DefaultOptions are the flags' defaults.
var DefaultOptions = Options{
	Poll:                    policy.DefaultPollConfig,
	RemoteUnavailableAfter:  3 * time.Minute,
	DeletionCancelTimeout:   2 * time.Minute,
	CredentialsRecheck:      10 * time.Second,
	MaxConcurrentReconciles: 0, // the manager sizes it with WorkersFor; unsized, 4
	CredentialsFromSecrets:  true,
	// The default quota of BatchOptimizeTours and OptimizeTours: 60 requests a minute per project.
	MaxSubmitsPerMinute: 60,
}

// OptimizationOperationReconciler tracks remote operations and sends the cancels users ask for.
type OptimizationOperationReconciler struct {
	client.Client
	// APIReader reads Secrets uncached, so the operator never caches the cluster's Secrets.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clients   ClientSource
	Budget    *budget.Budget
	Options   Options

	// Now and Rand are the clock and jitter source; tests may replace them.
	Now  func() time.Time
	Rand func() float64

	tracker  *tracker
	recovery *recovery
	// submits keeps the requests of spec.submit within MaxSubmitsPerMinute (nil: no cap).
	submits *submitCap
	// saturated is whether the budget could not keep --max-poll-interval when last asked.
	saturated atomic.Bool
}

// +kubebuilder:rbac:groups=ops.routeopt.dev,resources=optimizationoperations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=ops.routeopt.dev,resources=optimizationoperations/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile fetches the resource, runs the ordered steps, and writes status once at the end,
// only when it changed.
func (r *OptimizationOperationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	obj := &opsv1.OptimizationOperation{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.String())
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mayCancel(obj) || maySubmit(obj) {
		// Whether to send a cancel or a submit is decided on the stored record, never on a
		// cache that may lag this process's writes or another process's: sending twice, or
		// writing over an answer, are exactly the mistakes a lagging copy invites. For a
		// submit, twice means a second solve, billed, that no name will ever point to.
		if err := r.APIReader.Get(ctx, req.NamespacedName, obj); err != nil {
			if apierrors.IsNotFound(err) {
				r.forget(req.String())
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if r.Options.Selector != nil && !r.Options.Selector.Matches(labels.Set(obj.Labels)) {
			// Relabelled to another shard since the cache saw it: that shard's manager now
			// owns the cancel or the submit, and both sending it would send it twice.
			r.forget(req.String())
			return ctrl.Result{}, nil
		}
	}
	state := r.tracker.get(keyOf(obj), obj.UID)

	// orig is what the server holds; an answer this process received but could not store yet
	// (a cancel's, or a submit's and the operation name it brought) is added after it, so that
	// this reconcile's write carries it.
	orig := obj.DeepCopy()
	state.restoreCancel(&obj.Status)
	state.restoreSubmit(&obj.Status)
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("operation", policy.TrackedName(obj)))
	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, obj, state)
	}
	if patched, err := r.reconcileFinalizer(ctx, obj); err != nil || patched {
		// The finalizer patch comes back as a watch event at once; working on now would
		// race the cache, which may not hold this reconcile's status writes yet.
		return ctrl.Result{}, err
	}
	defer func() {
		// Status holds what this reconcile learned from the API, a cancel's answer above all.
		// A shutdown cancels ctx, often in the middle of a remote call; the write must still
		// land, or the next leader would send the cancel again. Bounded, so it cannot hold the
		// shutdown for long.
		writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
		defer cancel()
		if err := r.patchStatus(writeCtx, orig, obj); err != nil {
			// What this reconcile learned is not stored, and the schedule says the operation
			// was just read: without this, the retry would find nothing due and the object
			// would keep its old status until the next poll, minutes away under a saturated
			// budget. (A cancel's answer is kept in memory apart; see pollState.answer.)
			// (Not when the API server refuses the object's writes as invalid: a read would
			// spend a call on a status that cannot be stored either.)
			if !apierrors.IsInvalid(err) {
				state.nextPollAt = time.Time{}
			}
			retErr = errors.Join(retErr, err)
			return
		}
		if obj.Status.Done {
			// Only now that the terminal status, with any cancel answer, is stored may the
			// memory of the resource go; and a finished operation needs no cancel on
			// deletion, so the finalizer goes too.
			r.forget(keyOf(obj))
			_, err := r.reconcileFinalizer(writeCtx, obj)
			retErr = errors.Join(retErr, err)
		}
	}()

	if obj.Status.Done {
		r.reconcileDone(obj)
		return ctrl.Result{}, nil
	}
	// Columns, docs and dashboards read the tracked name from status, whichever form the spec
	// has. (A resource that finished under an earlier release keeps its status as it is: one
	// write each for all of them at an upgrade would buy only a column.)
	if obj.Status.OperationName == "" {
		obj.Status.OperationName = obj.Spec.OperationName
	}
	if obj.Spec.Submit != nil {
		res, track, err := r.reconcileSubmit(ctx, obj, orig, state)
		if !track || err != nil {
			return res, err
		}
	}
	res, err := r.reconcileRemote(ctx, obj, state)
	// When workers are busy, the queue hands out ready resources by this priority: the
	// budget's order, so a cancel is not stuck behind polls before it even asks for a token.
	now := r.Now()
	prio := int(r.priority(obj, cancelPending(obj) && !now.Before(state.nextCancelAt), now))
	res.Priority = &prio
	return res, err
}

// patchStatus writes status with one merge patch when it changed, then tells what changed in
// events. Nothing in status changes on a poll that learned nothing new, so a quiet operation
// causes no writes (every write refreshes GitOps tools watching the object).
func (r *OptimizationOperationReconciler) patchStatus(ctx context.Context, orig, obj *opsv1.OptimizationOperation) error {
	if equality.Semantic.DeepEqual(orig.Status, obj.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, obj, client.MergeFrom(orig)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsInvalid(err) {
			// The API server refuses this object's writes (a schema stricter than the stored
			// object, for one): say so on the object itself, where its owner looks.
			r.event(orig, corev1.EventTypeWarning, "StatusRejected", "Observe",
				"The API server refused the status update: %v", err)
		}
		return fmt.Errorf("patch status of %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	r.recordTransitions(orig, obj)
	return nil
}

// SetupWithManager registers the reconciler. Only spec and deletion changes wake it: its own
// status writes would otherwise trigger a reconcile each, and polling is driven by the schedule.
func (r *OptimizationOperationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
	r.tracker = newTracker()
	if n := r.Options.MaxSubmitsPerMinute; n > 0 {
		window := r.Options.SubmitWindow
		if window <= 0 {
			window = time.Minute
		}
		r.submits = newSubmitCap(n, window, r.Now)
	}
	r.recovery = newRecovery()
	workers := r.Options.MaxConcurrentReconciles
	if workers == 0 {
		workers = 4
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &opsv1.OptimizationOperation{}, configMapIndex, configMapOf); err != nil {
		return fmt.Errorf("index OptimizationOperations by ConfigMap: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&opsv1.OptimizationOperation{}, builder.WithPredicates(specOrDeletionChanged())).
		// A request read from a ConfigMap that is missing or invalid waits for the ConfigMap to
		// change, and is sent the moment it does. Only metadata is cached: the request itself is
		// read uncached just before it is sent, and models can be close to a MiB each.
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.waitingOn)).
		WatchesRawSource(r.recovery.source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("optimizationoperation").
		Complete(r)
}

func specOrDeletionChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetGeneration() != n.GetGeneration() ||
			!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
			len(o.GetFinalizers()) != len(n.GetFinalizers()) ||
			// The approval of another attempt after SubmitUncertain: metadata, not spec.
			o.GetAnnotations()[opsv1.AnnotationResubmit] != n.GetAnnotations()[opsv1.AnnotationResubmit]
	}}
}
