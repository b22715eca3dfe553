package main

// The fault storm (-storm): N operations whose solves end while GetOperation and
// CancelOperation fail often and answer slowly, cancels asked for in the middle of it, then a
// quiet spell without faults. It asks whether the operator keeps using what the faults leave
// of its budget, sends cancels ahead of routine polls, catches up once the faults clear, and
// ends with every resource agreeing with the emulator. See docs/performance.md, "Fault storm".

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// stormOperations is -n under -storm unless given.
const stormOperations = 300

type stormOptions struct {
	solveMin, solveMax time.Duration
	length             time.Duration // of the storm
	cancelAfter        time.Duration // from the start of the storm to the cancel patches
	cancelEvery        int           // every k-th resource is cancelled
	quiet              time.Duration // without faults, after the storm
	unavailable        float64
	exhausted          float64
	retryDelay         time.Duration
	latency            time.Duration
}

func stormFlags(s *stormOptions) {
	flag.DurationVar(&s.solveMin, "storm-solve-min", 10*time.Second, "with -storm: the shortest solve; the N solves are spread evenly up to -storm-solve-max")
	flag.DurationVar(&s.solveMax, "storm-solve-max", 90*time.Second, "with -storm: the longest solve")
	flag.DurationVar(&s.length, "storm-duration", 240*time.Second, "with -storm: how long the faults last, from just after the remote operations are created")
	flag.DurationVar(&s.cancelAfter, "storm-cancel-after", 30*time.Second, "with -storm: when into the storm the cancels are patched, all at once")
	flag.IntVar(&s.cancelEvery, "storm-cancel-every", 3, "with -storm: cancel every k-th resource")
	flag.DurationVar(&s.quiet, "storm-quiet", 360*time.Second, "with -storm: how long the run goes on without faults before the report")
	flag.Float64Var(&s.unavailable, "storm-unavailable", 0.30, "with -storm: share of GetOperation and CancelOperation calls answered 503 UNAVAILABLE")
	flag.Float64Var(&s.exhausted, "storm-exhausted", 0.10, "with -storm: share answered 429 RESOURCE_EXHAUSTED with RetryInfo -storm-retry-delay")
	flag.DurationVar(&s.retryDelay, "storm-retry-delay", 5*time.Second, "with -storm: the RetryInfo delay of the 429 answers")
	flag.DurationVar(&s.latency, "storm-latency", 2*time.Second, "with -storm: latency added to every GetOperation and CancelOperation call")
}

func (s stormOptions) validate(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("-n %d: the storm needs an operation", n)
	case s.solveMin < 0 || s.solveMax < s.solveMin:
		return fmt.Errorf("-storm-solve-min %s and -storm-solve-max %s: want 0 <= min <= max", s.solveMin, s.solveMax)
	case s.cancelAfter < 0 || s.cancelAfter >= s.length:
		return fmt.Errorf("-storm-cancel-after %s must fall within -storm-duration %s", s.cancelAfter, s.length)
	case s.cancelEvery < 1:
		return fmt.Errorf("-storm-cancel-every %d must be at least 1", s.cancelEvery)
	case s.quiet <= 0:
		return fmt.Errorf("-storm-quiet %s must be positive", s.quiet)
	case s.retryDelay <= 0:
		// The emulator reads 0 as its default of 30 s; the allowance must know the real one.
		return fmt.Errorf("-storm-retry-delay %s must be positive", s.retryDelay)
	}
	return s.faults().Validate()
}

// faults is the storm: the same on both methods the operator calls.
func (s stormOptions) faults() emulator.Faults {
	mf := emulator.MethodFault{Unavailable: s.unavailable, ResourceExhausted: s.exhausted,
		RetryDelay: s.retryDelay, Latency: s.latency}
	return emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: mf, emulator.MethodCancelOperation: mf}}
}

// stormSolves spreads n solve durations evenly over [lo, hi], in a seeded random order, so
// that neither the order of creation nor the cancelled k-th lines up with the solve's length.
func stormSolves(n int, lo, hi time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i, j := range rand.New(rand.NewPCG(3, 3)).Perm(n) {
		out[i] = lo
		if n > 1 {
			out[i] += (hi - lo) * time.Duration(j) / time.Duration(n-1)
		}
	}
	return out
}

// stormTargets are the resources to cancel: every k-th, from the first.
func stormTargets(n, k int) []string {
	var out []string
	for i := 0; i < n; i += k {
		out = append(out, resourceName(i))
	}
	return out
}

// stormRun is what the storm measured; report holds what the scale run collects as well.
type stormRun struct {
	report
	solves     []time.Duration // of resource i's operation
	start      time.Time       // the faults took effect
	cancelAt   time.Time       // the patches started
	clear      time.Time       // the faults were gone
	patched    map[string]time.Time
	patchErrs  int
	unfinished []string // resources not done on the watch when the faults cleared
	memClear   memSample
	budgetRate float64                       // the manager's budget rate when the faults cleared, -1 if unknown
	waiting    float64                       // resources waiting for a token then
	final      []opsv1.OptimizationOperation // listed at the end
	log        []call                        // every /v1 call
}

// runStorm runs the storm on the started emulator, control plane and watch. The manager starts
// first, so the solves, which run from the operations' creation, do not wait for it.
func (b *bench) runStorm(ctx context.Context, manager, kubeconfig string) error {
	st := b.o.st
	if err := b.startManager(ctx, manager, kubeconfig); err != nil {
		return err
	}
	r := &stormRun{solves: stormSolves(b.o.n, st.solveMin, st.solveMax)}
	if err := b.createOperations(ctx, func(i int) time.Duration { return r.solves[i] }); err != nil {
		return err
	}
	if err := b.admin.SetFaults(ctx, st.faults()); err != nil {
		return err
	}
	r.start = time.Now()
	b.logf("storm on for %s: %.0f%% 503, %.0f%% 429 (RetryInfo %s), +%s on every GetOperation and CancelOperation",
		st.length, 100*st.unavailable, 100*st.exhausted, st.retryDelay, st.latency)
	if err := b.createResources(ctx); err != nil {
		return err
	}
	if err := b.waitUntil(ctx, r.start.Add(st.cancelAfter), "storm"); err != nil {
		return err
	}
	r.targets = stormTargets(b.o.n, st.cancelEvery)
	r.cancelAt = time.Now()
	var err error
	if r.patched, r.patchErrs, err = b.patchCancels(ctx, r.targets, 0); err != nil {
		return err
	}
	b.logf("storm: %d cancels patched in %s", len(r.patched), round(time.Since(r.cancelAt)))
	if err := b.waitUntil(ctx, r.start.Add(st.length), "storm"); err != nil {
		return err
	}
	if err := b.admin.SetFaults(ctx, emulator.Faults{}); err != nil {
		return err
	}
	r.clear = time.Now()
	r.unfinished = b.w.unfinished()
	r.memClear = b.memory(ctx)
	r.budgetRate, r.waiting = -1, -1
	if m, err := b.scrape(ctx); err == nil {
		r.budgetRate, r.waiting = m.sum("routeopt_api_budget_qps", nil), m.sum("routeopt_api_budget_waiting", nil)
	}
	b.logf("faults cleared: %d resources not done; quiet for %s", len(r.unfinished), st.quiet)
	if err := b.waitUntil(ctx, r.clear.Add(st.quiet), "quiet"); err != nil {
		return err
	}
	r.end = time.Now()
	return b.finishStorm(ctx, r)
}

// finishStorm collects what the storm left and prints the report.
func (b *bench) finishStorm(ctx context.Context, r *stormRun) error {
	if err := b.collect(ctx, &r.report, nil, r.targets); err != nil {
		return err
	}
	var l opsv1.OptimizationOperationList
	if err := b.cl.List(ctx, &l, client.InNamespace(b.ns)); err != nil {
		return fmt.Errorf("list resources: %w", err)
	}
	r.final = l.Items
	r.log = b.rec.snapshot()
	b.printStorm(r)
	return nil
}

// waitUntil sleeps until t, saying every 30 s how many resources are done, and stops early
// when the manager exits.
func (b *bench) waitUntil(ctx context.Context, t time.Time, phase string) error {
	for {
		left := time.Until(t)
		if left <= 0 {
			return nil
		}
		if err := b.wait(ctx, min(left, 30*time.Second)); err != nil {
			return err
		}
		if left = time.Until(t); left > 0 {
			b.logf("%s: %d of %d resources done, %s to go", phase, b.o.n-len(b.w.unfinished()), b.o.n, round(left))
		}
	}
}
