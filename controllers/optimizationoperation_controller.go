// Package controllers holds the OptimizationOperation reconciler.
package controllers

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submitcap"
)

// Finalizer holds deletion of a resource with deletionPolicy Cancel until its cancel was sent.
const Finalizer = decide.Finalizer

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

	memos    *memos
	recovery *recovery
	// submits keeps the requests of spec.submit within MaxSubmitsPerMinute (nil: no cap).
	submits *submitcap.Cap
	// saturated is whether the budget could not keep --max-poll-interval when last asked.
	saturated atomic.Bool
}

// +kubebuilder:rbac:groups=ops.routeopt.dev,resources=optimizationoperations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=ops.routeopt.dev,resources=optimizationoperations/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads as four steps: observe the resource, decide the one thing to do, act on it,
// record what it brought back (docs/architecture.md).
func (r *OptimizationOperationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ob, err := r.observe(ctx, req)
	if ob == nil || err != nil {
		return ctrl.Result{}, err
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("operation", policy.TrackedName(ob.Obj)))
	d := decide.Decide(r.config(), ob.Observation)
	out, done, err := r.act(ctx, ob, d)
	if done || err != nil {
		return ctrl.Result{}, err
	}
	return r.record(ctx, ob, d, out)
}

// config is what the decisions need of the options.
func (r *OptimizationOperationReconciler) config() decide.Config {
	return decide.Config{
		Poll:                   r.Options.Poll,
		RemoteUnavailableAfter: r.Options.RemoteUnavailableAfter,
		DeletionCancelTimeout:  r.Options.DeletionCancelTimeout,
		CredentialsRecheck:     r.Options.CredentialsRecheck,
		Burst:                  r.Budget.Burst(),
	}
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
	r.memos = newMemos()
	if n := r.Options.MaxSubmitsPerMinute; n > 0 {
		window := r.Options.SubmitWindow
		if window <= 0 {
			window = time.Minute
		}
		r.submits = submitcap.New(submitcap.Config{N: n, Window: window, Now: r.Now, Seed: r.submitAttempts})
	}
	r.recovery = newRecovery()
	workers := r.Options.MaxConcurrentReconciles
	if workers == 0 {
		workers = 4
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &opsv1.OptimizationOperation{}, configMapIndex, configMapOf); err != nil {
		return fmt.Errorf("index OptimizationOperations by ConfigMap: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &opsv1.OptimizationOperation{}, resultToIndex, resultToOf); err != nil {
		return fmt.Errorf("index OptimizationOperations by spec.resultTo: %w", err)
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

// submitAttempts rebuilds the submit cap's window of a project after a restart from the record:
// every attempt is stored (status.submit.attemptedAt) before its request is sent, so the
// cache's copy of every resource says what the processes before this one sent.
func (r *OptimizationOperationReconciler) submitAttempts(project string, since time.Time) ([]time.Time, error) {
	var list opsv1.OptimizationOperationList
	if err := r.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list the attempts to send spec.submit: %w", err)
	}
	return submitcap.Attempts(list.Items, project, since), nil
}

func specOrDeletionChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetGeneration() != n.GetGeneration() ||
			!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
			len(o.GetFinalizers()) != len(n.GetFinalizers()) ||
			// The approval of another attempt after SubmitUncertain: metadata, not spec.
			o.GetAnnotations()[opsv1.AnnotationResubmit] != n.GetAnnotations()[opsv1.AnnotationResubmit] ||
			// A read asked for now: metadata too. The same value again is no change.
			o.GetAnnotations()[opsv1.AnnotationRequestedAt] != n.GetAnnotations()[opsv1.AnnotationRequestedAt] ||
			answerArrived(o, n)
	}}
}

// answerArrived reports whether a status write stored the answer to a submit: the name of the
// operation it started, or its outcome. This process wakes for its own such writes too (it
// requeues for them anyway); what matters is another process's: a resource relabelled to
// this shard while the old one's submit was in flight learns the name only from that write.
func answerArrived(o, n client.Object) bool {
	oo, ok1 := o.(*opsv1.OptimizationOperation)
	no, ok2 := n.(*opsv1.OptimizationOperation)
	if !ok1 || !ok2 || no.Spec.Submit == nil {
		// A resource that names its operation gets status.operationName copied from its spec
		// on its first write: no answer, and no reason to reconcile.
		return false
	}
	outcome := func(x *opsv1.OptimizationOperation) opsv1.SubmitOutcome {
		if x.Status.Submit == nil {
			return ""
		}
		return x.Status.Submit.Outcome
	}
	return oo.Status.OperationName != no.Status.OperationName || outcome(oo) != outcome(no)
}
