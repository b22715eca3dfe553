// Package metrics defines the operator's Prometheus metrics. They are served on the manager's
// metrics endpoint next to controller-runtime's own; docs/metrics.md lists them.
package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

var (
	// RemoteRequests counts calls to the Route Optimization API by method and google.rpc code.
	RemoteRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routeopt_remote_requests_total",
		Help: "Requests to the Route Optimization API, by method and google.rpc code (OK on success).",
	}, []string{"method", "code"})

	// RemoteDuration is the latency of those calls.
	RemoteDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "routeopt_remote_request_duration_seconds",
		Help:    "Latency of requests to the Route Optimization API.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"method"})

	// CancelLatency is the time from the operator first acting on spec.cancel to the operation's
	// terminal status, by how it ended.
	CancelLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "routeopt_cancel_latency_seconds",
		Help:    "Seconds from a cancel request being seen to the operation's terminal status, by final state.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
	}, []string{"state"})

	// PollLag is how late a poll ran compared to when it was scheduled.
	PollLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "routeopt_poll_lag_seconds",
		Help:    "Seconds between when a poll was due and when it was sent (budget waits and queueing).",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300},
	})

	// PollFairShare is how often the budget can read each tracked operation.
	PollFairShare = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "routeopt_poll_fair_share_seconds",
		Help: "Tracked operations divided by 80 % of the API budget's rate: the shortest interval at which every running operation can be read. Above --max-poll-interval the budget is saturated and reads come this far apart.",
	})

	// UnselectedOperations is how many resources carry a shard label that no known shard
	// selects (internal/shard); set only by the leader of a manager given --known-shards.
	UnselectedOperations = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "routeopt_unselected_operations",
		Help: "OptimizationOperations whose ops.routeopt.dev/shard label names no shard of --known-shards: no manager tracks them. Counted every minute by the leader of the manager given --known-shards; 0 elsewhere.",
	})

	// CancelTokenWait is how long a cancel waited for the budget.
	CancelTokenWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "routeopt_cancel_token_wait_seconds",
		Help:    "Seconds from the operator acting on spec.cancel to its first attempt getting a token of the shared API budget.",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300},
	})

	// Submits counts the requests of spec.submit sent, by method and by what the operator knows
	// of each: a solve started (Submitted), certainly none (NotStarted), or maybe one
	// (Uncertain: the answer was lost, see SubmitUncertain).
	Submits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routeopt_submits_total",
		Help: "Requests of spec.submit sent to the Route Optimization API, by method and outcome: Submitted (a solve started), NotStarted (refused, nothing started) or Uncertain (the answer was lost; a solve may have started).",
	}, []string{"method", "outcome"})

	// BudgetDeferred counts calls that the shared budget postponed.
	BudgetDeferred = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routeopt_api_budget_deferred_total",
		Help: "Remote calls postponed because the shared API budget had no token, by priority.",
	}, []string{"priority"})
)

// ObserveRemote records one remote request; it matches remote.Observer.
func ObserveRemote(method string, err error, elapsed time.Duration) {
	code := "OK"
	if err != nil {
		code = policy.CodeName(int32(policy.Classify(err).Code))
	}
	RemoteRequests.WithLabelValues(method, code).Inc()
	RemoteDuration.WithLabelValues(method).Observe(elapsed.Seconds())
}

// BudgetView is what the budget gauges read.
type BudgetView interface {
	Rate() float64
	Waiting() int
	WaitingFor(budget.Priority) int
}

// States are the values of the Ready condition's reason, the state label of routeopt_operations.
// Every state is exported, zeros included, so dashboards show a flat line rather than a gap.
var States = []string{
	opsv1.ReasonPending, opsv1.ReasonRunning, opsv1.ReasonPastExpectedEnd, opsv1.ReasonCancelling, opsv1.ReasonCancelUnsupported,
	opsv1.ReasonSucceeded, opsv1.ReasonCompletedDespiteCancel, opsv1.ReasonCancelled,
	opsv1.ReasonFailed, opsv1.ReasonNotFound,
	opsv1.ReasonAuthFailed, opsv1.ReasonRequestRejected, opsv1.ReasonRemoteUnavailable, opsv1.ReasonInvalidSpec,
	opsv1.ReasonSubmitting, opsv1.ReasonSubmitUncertain, opsv1.ReasonInvalidRequest,
}

// stateCounter counts resources by state from the informer's events, so that a scrape reads a
// few counters: a list of the cache at every scrape was a copy of every resource (10 MiB at
// 10,000 resources), the peak of the manager's memory. The informer replays every resource
// after a restart, so the counts need no bookkeeping in the reconciler.
type stateCounter struct {
	mu    sync.Mutex
	byKey map[string]string
	count map[string]float64
	desc  *prometheus.Desc
}

func newStateCounter() *stateCounter {
	c := &stateCounter{byKey: map[string]string{}, count: map[string]float64{}, desc: prometheus.NewDesc(
		"routeopt_operations", "OptimizationOperations by state (the Ready condition's reason: the problem when there is one, otherwise the operation's state).",
		[]string{"state"}, nil)}
	for _, s := range States {
		c.count[s] = 0
	}
	return c
}

func (c *stateCounter) set(obj any) {
	o, ok := obj.(*opsv1.OptimizationOperation)
	if !ok {
		return
	}
	key, state := o.Namespace+"/"+o.Name, State(o)
	c.mu.Lock()
	defer c.mu.Unlock()
	if was, ok := c.byKey[key]; ok {
		if was == state {
			return
		}
		c.count[was]--
	}
	c.byKey[key] = state
	c.count[state]++
}

func (c *stateCounter) remove(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(*opsv1.OptimizationOperation)
	if !ok {
		return
	}
	key := o.Namespace + "/" + o.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	if was, ok := c.byKey[key]; ok {
		c.count[was]--
		delete(c.byKey, key)
	}
}

// handler keeps the counts from an informer of OptimizationOperations.
func (c *stateCounter) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.set(obj) },
		UpdateFunc: func(_, obj any) { c.set(obj) },
		DeleteFunc: c.remove,
	}
}

func (c *stateCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCounter) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, n := range c.count {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, s)
	}
}

// State is the resource's state label, the State column of kubectl get: the Ready condition's
// reason, Pending before the first one. Ready's reason names the problem that keeps the
// operation from being read (AuthFailed, RemoteUnavailable ...), where Succeeded's keeps the
// last state read (Running): a count by Succeeded's reason would hide every blocked resource
// among the running ones. Once the operation is done both reasons are the same.
func State(o *opsv1.OptimizationOperation) string {
	for _, c := range o.Status.Conditions {
		if c.Type == opsv1.ConditionReady {
			return c.Reason
		}
	}
	return opsv1.ReasonPending
}

// Register adds the metrics to controller-runtime's registry. informers is the manager's
// cache, whose informer of OptimizationOperations feeds the state counts; budget feeds the
// budget gauges.
func Register(ctx context.Context, informers cache.Informers, b BudgetView) error {
	states := newStateCounter()
	inf, err := informers.GetInformer(ctx, &opsv1.OptimizationOperation{})
	if err != nil {
		return fmt.Errorf("informer of OptimizationOperations for routeopt_operations: %w", err)
	}
	if _, err := inf.AddEventHandler(states.handler()); err != nil {
		return fmt.Errorf("count OptimizationOperations by state: %w", err)
	}
	crmetrics.Registry.MustRegister(
		RemoteRequests, RemoteDuration, CancelLatency, CancelTokenWait, PollLag, PollFairShare, BudgetDeferred, UnselectedOperations, Submits,
		states,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "routeopt_api_budget_qps",
			Help: "Current rate of the shared API budget in calls a second; below --api-qps after RESOURCE_EXHAUSTED.",
		}, b.Rate),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "routeopt_api_budget_waiting",
			Help: "Resources waiting for a token of the shared API budget.",
		}, func() float64 { return float64(b.Waiting()) }),
		&queueCollector{budget: b, desc: prometheus.NewDesc(
			"routeopt_api_budget_queue", "Resources waiting for a token of the shared API budget, by priority: urgent (cancels and the reads that confirm them), first (operations never read), due (past their deadline), poll.",
			[]string{"priority"}, nil)},
	)
	return nil
}

// queueCollector reports the budget's waiting callers by class at scrape time.
type queueCollector struct {
	budget BudgetView
	desc   *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range budget.Priorities {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.budget.WaitingFor(p)), p.String())
	}
}
