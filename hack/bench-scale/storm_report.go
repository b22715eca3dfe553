package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// The storm's acceptance targets, printed next to its figures (docs/performance.md).
const (
	stormUsageTarget = 0.80             // calls / allowance during the storm
	stormReadBound   = 90 * time.Second // from the clear to the first read of each unfinished resource
)

// allowance is what the operator's own budget lets it spend during the storm, given the 429
// answers it got.
type allowance struct {
	open    time.Duration // storm time outside every RetryInfo pause
	flat    float64       // qps x open: what the pauses alone leave, in the simplest terms
	granted float64       // what internal/budget would grant: the allowance
}

// budgetAllowance replays internal/budget's token bucket over [from, to) for the 429 answers
// at exhausted (sorted). Every 429 of the storm carries RetryInfo, to which the budget answers
// with Pause: reads wait until the 429's time plus pause, and the rate stays at qps. The
// bucket holds burst tokens, full at the start; what fills during a pause is spent after it,
// up to the bucket's size. So this is the most the budget could have granted; the tokens a
// pause still holds when the storm ends are not counted.
func budgetAllowance(qps float64, burst int, from, to time.Time, exhausted []time.Time, pause time.Duration) allowance {
	a := allowance{granted: float64(burst)}
	t, until := from, from
	held := 0.0 // filled during the current pause
	advance := func(end time.Time) {
		for t.Before(end) {
			next := end
			paused := t.Before(until)
			if paused && until.Before(next) {
				next = until
			}
			if d := next.Sub(t); paused {
				held += qps * d.Seconds()
			} else {
				a.open += d
				a.granted += qps * d.Seconds()
			}
			t = next
			if paused && !t.Before(until) {
				a.granted += min(held, float64(burst))
				held = 0
			}
		}
	}
	for _, e := range exhausted {
		if e.Before(from) || !e.Before(to) {
			continue
		}
		advance(e)
		until = later(until, e.Add(pause))
	}
	advance(to)
	a.flat = qps * a.open.Seconds()
	return a
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func verdict(ok bool, target string) string {
	if ok {
		return fmt.Sprintf("(target %s: met)", target)
	}
	return fmt.Sprintf("(target %s: NOT MET)", target)
}

// opOf is the remote operation of a resource, "" for a name the run did not create.
func (b *bench) opOf(resource string) string {
	if i := opIndex(resource); i >= 0 && i < len(b.ops) {
		return b.ops[i]
	}
	return ""
}

func (b *bench) printStorm(r *stormRun) {
	w, st := b.out, b.o.st
	calls := byOperation(r.log)
	emu := map[string]emulator.OperationInfo{}
	for _, op := range r.after {
		emu[op.Name] = op
	}
	final := map[string]*opsv1.OptimizationOperation{}
	for i := range r.final {
		final[r.final[i].Name] = &r.final[i]
	}

	fmt.Fprintln(w, "-- storm --")
	fmt.Fprintf(w, "operations:                      %d, solves %s to %s from their creation; resources created in %s\n",
		b.o.n, st.solveMin, st.solveMax, round(b.createEnd.Sub(b.createStart)))
	fmt.Fprintf(w, "storm:                           %s from %s: GetOperation and CancelOperation %.0f%% 503, %.0f%% 429 (RetryInfo %s), +%s each\n",
		round(r.clear.Sub(r.start)), b.since(r.start), 100*st.unavailable, 100*st.exhausted, st.retryDelay, st.latency)
	fmt.Fprintf(w, "quiet:                           %s from %s, no faults\n", round(r.end.Sub(r.clear)), b.since(r.clear))
	fmt.Fprintln(w)
	b.printStormBudget(w, r)
	b.printCatchUp(w, r, calls)
	b.printStormCancels(w, r, calls, emu, final)
	b.printFinalStates(w, emu, final)

	fmt.Fprintln(w, "-- 5. budget kept: calls at the emulator (GetOperation + CancelOperation) --")
	b.printWindows(w, r.calls, func(t time.Time) string {
		switch {
		case t.Before(r.start):
			return "before the storm"
		case t.Before(r.cancelAt):
			return "storm"
		case t.Before(r.clear):
			return "storm, after the cancels"
		default:
			return "quiet"
		}
	})
	fmt.Fprintf(w, "answered calls by method:        %s\n", formatCounters(r.counters))
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- 6. manager memory --")
	fmt.Fprintf(w, "when the faults cleared:         %s\n", r.memClear)
	printManagerEnd(w, &r.report)
	fmt.Fprintf(w, "run time: %s\n", round(time.Since(b.started)))
}

// printStormBudget compares the calls that arrived during the storm with the allowance.
func (b *bench) printStormBudget(w io.Writer, r *stormRun) {
	fmt.Fprintln(w, "-- 1. calls during the storm against the budget the faults leave --")
	during := func(t time.Time) bool { return !t.Before(r.start) && t.Before(r.clear) }
	answers := emulator.Counters{}
	n := 0
	var exhausted []time.Time
	for _, c := range r.log {
		if !slices.Contains(polled, c.method) {
			continue
		}
		if during(c.arrived) {
			n++
			if answers[c.method] == nil {
				answers[c.method] = map[int]int64{}
			}
			answers[c.method][c.status]++
		}
		// The operator throttles when the answer reaches it.
		if c.status == http.StatusTooManyRequests && during(c.answered) {
			exhausted = append(exhausted, c.answered)
		}
	}
	slices.SortFunc(exhausted, time.Time.Compare)
	span := r.clear.Sub(r.start)
	a := budgetAllowance(b.qps, b.burst, r.start, r.clear, exhausted, b.o.st.retryDelay)
	fmt.Fprintf(w, "calls (arrivals, any answer):    %d in %s = %.2f/s; %s\n", n, round(span), float64(n)/span.Seconds(), formatCounters(answers))
	fmt.Fprintf(w, "429 answers:                     %d; their RetryInfo pauses cover %s of the storm\n", len(exhausted), round(span-a.open))
	fmt.Fprintf(w, "allowance:                       %.0f calls = %.2f/s: what internal/budget would grant given those 429s\n",
		a.granted, a.granted/span.Seconds())
	fmt.Fprintf(w, "  (a bucket of %d, full at the start, filling at --api-qps %g; reads held during the RetryInfo pauses,\n"+
		"  what fills meanwhile kept up to the bucket's size)\n", b.burst, b.qps)
	use := float64(n) / a.granted
	fmt.Fprintf(w, "usage = calls / allowance:       %.0f%% %s\n", 100*use, verdict(use >= stormUsageTarget, fmt.Sprintf(">= %.0f%%", 100*stormUsageTarget)))
	if a.flat > 0 {
		fmt.Fprintf(w, "  for reference, qps x unpaused time: %.0f calls, usage %.0f%%\n", a.flat, 100*float64(n)/a.flat)
	}
	fmt.Fprintln(w)
}

// firstRead is when the first GetOperation answered 200 at or after t was answered.
func firstRead(calls []call, t time.Time) (time.Time, bool) {
	var first time.Time
	for _, c := range calls {
		if c.method == emulator.MethodGetOperation && c.status == http.StatusOK && !c.answered.Before(t) &&
			(first.IsZero() || c.answered.Before(first)) {
			first = c.answered
		}
	}
	return first, !first.IsZero()
}

// printCatchUp measures, for each resource not done when the faults cleared, the time until
// its operation was next read.
func (b *bench) printCatchUp(w io.Writer, r *stormRun, calls map[string][]call) {
	fmt.Fprintln(w, "-- 2. after the faults cleared --")
	var delays []time.Duration
	never := 0
	for _, name := range r.unfinished {
		if t, ok := firstRead(calls[b.opOf(name)], r.clear); ok {
			delays = append(delays, t.Sub(r.clear))
		} else {
			never++
		}
	}
	worst := time.Duration(0)
	if len(delays) > 0 {
		worst = slices.Max(delays)
	}
	fmt.Fprintf(w, "not done when they cleared:      %d resources (on the watch)\n", len(r.unfinished))
	if r.budgetRate >= 0 {
		fmt.Fprintf(w, "the manager's budget then:       %.2f calls/s (routeopt_api_budget_qps), %.0f resources waiting for a token\n", r.budgetRate, r.waiting)
	}
	after := 0
	for _, c := range r.log {
		if slices.Contains(polled, c.method) && !c.arrived.Before(r.clear) {
			after++
		}
	}
	quiet := r.end.Sub(r.clear)
	fmt.Fprintf(w, "calls from then to the end:      %d in %s = %.2f/s\n", after, round(quiet), float64(after)/quiet.Seconds())
	fmt.Fprintf(w, "clear -> first read (answered):  %s\n", latencies(delays))
	fmt.Fprintf(w, "max %s, never read after it: %d %s\n", round(worst), never,
		verdict(never == 0 && worst <= stormReadBound, fmt.Sprintf("all within %s", stormReadBound)))
	fmt.Fprintln(w)
}

// cancelTrace is what the emulator saw of one operation from its cancel patch on.
type cancelTrace struct {
	first    *call // the first CancelOperation, whatever its answer
	accepted *call // the first CancelOperation answered 200
	reads    int   // GetOperation calls that arrived after the patch, before first
}

// traceCancel follows calls (in order of arrival) from the patch.
func traceCancel(calls []call, patch time.Time) cancelTrace {
	var tr cancelTrace
	for i := range calls {
		c := &calls[i]
		if c.arrived.Before(patch) {
			continue
		}
		switch {
		case c.method == emulator.MethodGetOperation && tr.first == nil:
			tr.reads++
		case c.method == emulator.MethodCancelOperation:
			if tr.first == nil {
				tr.first = c
			}
			if tr.accepted == nil && c.status == http.StatusOK {
				tr.accepted = c
			}
		}
	}
	return tr
}

// succeededReason is the reason of a resource's Succeeded condition.
func succeededReason(o *opsv1.OptimizationOperation) string {
	if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded); c != nil {
		return c.Reason
	}
	return "no condition"
}

// cancelEnding is how a cancelled resource ended: AlreadyDone when the operator saw the
// operation done before it had an answer to a cancel, otherwise its Succeeded reason.
func cancelEnding(o *opsv1.OptimizationOperation) string {
	switch {
	case o == nil:
		return "missing"
	case o.Status.Cancel != nil && o.Status.Cancel.Outcome == opsv1.CancelAlreadyDone:
		return "AlreadyDone"
	}
	return succeededReason(o)
}

// printStormCancels follows every patched cancel to its CancelOperation at the emulator.
func (b *bench) printStormCancels(w io.Writer, r *stormRun, calls map[string][]call,
	emu map[string]emulator.OperationInfo, final map[string]*opsv1.OptimizationOperation) {
	fmt.Fprintln(w, "-- 3. cancels (patch {\"spec\":{\"cancel\":true}} -> CancelOperation at the emulator) --")
	var sent, accepted []time.Duration
	var reads []int
	over, extraReads := 0, 0
	ended, unsent := map[string]float64{}, map[string]float64{}
	for name, patch := range r.patched {
		op := b.opOf(name)
		if end := emu[op].CreateTime.Add(r.solves[opIndex(name)]); end.Before(patch) {
			over++
		}
		ended[cancelEnding(final[name])]++
		tr := traceCancel(calls[op], patch)
		if tr.first == nil {
			unsent[cancelEnding(final[name])]++
			continue
		}
		sent = append(sent, tr.first.arrived.Sub(patch))
		reads = append(reads, tr.reads)
		if tr.reads > 1 {
			extraReads++
		}
		if tr.accepted != nil {
			accepted = append(accepted, tr.accepted.answered.Sub(patch))
		}
	}
	fmt.Fprintf(w, "patched:                         %d at %s (failed patches: %d); solve already over at the patch: %d\n",
		len(r.patched), b.since(r.cancelAt), r.patchErrs, over)
	fmt.Fprintf(w, "patch -> first CancelOperation arrives (any answer): %s (%d sent)\n", latencies(sent), len(sent))
	fmt.Fprintf(w, "patch -> first CancelOperation answered 200:         %s (%d accepted)\n", latencies(accepted), len(accepted))
	fmt.Fprintf(w, "GetOperation between the patch and the cancel: %s\n", countDistribution(reads, "read"))
	fmt.Fprintf(w, "more than one read before the cancel: %d %s\n", extraReads, verdict(extraReads == 0, "0"))
	fmt.Fprintf(w, "never sent:                      %d (ended: %s)\n", len(r.patched)-len(sent), formatFloats(unsent))
	fmt.Fprintf(w, "ended:                           %s\n", formatFloats(ended))
	fmt.Fprintln(w)
}

// expectedReasons are the Succeeded reasons that agree with the emulator's record of an
// operation, for a resource that asked (cancel) or did not ask for a cancel.
func expectedReasons(op emulator.OperationInfo, cancel bool) []string {
	switch {
	case !op.Done && cancel:
		return []string{opsv1.ReasonCancelling}
	case !op.Done:
		return []string{opsv1.ReasonRunning, opsv1.ReasonPastExpectedEnd}
	case op.ErrorCode == 0 && cancel:
		return []string{opsv1.ReasonSucceeded, opsv1.ReasonCompletedDespiteCancel}
	case op.ErrorCode == 0:
		return []string{opsv1.ReasonSucceeded}
	case op.ErrorCode == 1:
		return []string{opsv1.ReasonCancelled}
	default:
		return []string{opsv1.ReasonFailed}
	}
}

// stateMismatch says how a resource's status disagrees with the emulator's record of its
// operation (done, error code, and the Succeeded reason these call for); "" if it agrees.
func stateMismatch(o *opsv1.OptimizationOperation, op emulator.OperationInfo, found bool) string {
	switch {
	case o == nil:
		return "no resource"
	case !found:
		return "the operation is gone from the emulator"
	}
	code := int32(0)
	if o.Status.Error != nil {
		code = o.Status.Error.Code
	}
	reason := succeededReason(o)
	if o.Status.Done == op.Done && code == op.ErrorCode && slices.Contains(expectedReasons(op, o.Spec.Cancel), reason) {
		return ""
	}
	return fmt.Sprintf("resource done=%t code=%d %s; emulator done=%t code=%d", o.Status.Done, code, reason, op.Done, op.ErrorCode)
}

// printFinalStates compares every resource with the emulator's record of its operation.
func (b *bench) printFinalStates(w io.Writer, emu map[string]emulator.OperationInfo, final map[string]*opsv1.OptimizationOperation) {
	fmt.Fprintln(w, "-- 4. final states: status (done, error code, Succeeded reason) against the emulator --")
	var bad []string
	reasons := map[string]float64{}
	for i, opName := range b.ops {
		name := resourceName(i)
		op, found := emu[opName]
		if o := final[name]; o != nil {
			reasons[succeededReason(o)]++
		}
		if d := stateMismatch(final[name], op, found); d != "" {
			bad = append(bad, name+": "+d)
		}
	}
	fmt.Fprintf(w, "Succeeded reasons:               %s\n", formatFloats(reasons))
	fmt.Fprintf(w, "mismatches:                      %d of %d %s\n", len(bad), len(b.ops), verdict(len(bad) == 0, "0"))
	for _, l := range bad[:min(len(bad), 10)] {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintln(w)
}
