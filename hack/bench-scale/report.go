package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// report is everything the run measured.
type report struct {
	allRead, allStatus time.Time // latest first read (emulator), latest first status (watch)
	readTimedOut       bool
	firstReads         []emulator.OperationInfo // when every operation had been read once
	memTracked, memEnd memSample
	spreadStart        time.Time
	burstStart         time.Time
	end                time.Time
	spread, burst      phaseResult
	before, after      []emulator.OperationInfo // before the cancels, at the end
	calls              emulator.CallHistogram
	counters           emulator.Counters
	metrics            promSamples
	metricsErr         error
	objs               map[string]objState
	events             int
	restarts, resyncs  int
	watchErr           error
	targets            []string
	logErrors          int
	logErrorKinds      []string
}

// polled are the methods the budget pays for.
var polled = []string{emulator.MethodGetOperation, emulator.MethodCancelOperation}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func (b *bench) print(r *report) {
	w := b.out
	when := "before the resources were created (a running operator taking on N new resources)"
	if b.o.managerLater {
		when = "after the resources were created (a restart with N resources to catch up on)"
	}

	fmt.Fprintln(w, "-- first reads --")
	fmt.Fprintf(w, "manager started %s\n", when)
	cd := b.createEnd.Sub(b.createStart)
	fmt.Fprintf(w, "resources created:              %d in %s (%.0f/s, %d workers)\n",
		b.o.n, round(cd), float64(b.o.n)/cd.Seconds(), b.o.workers)
	origin := b.createStart
	if b.o.managerLater {
		origin = b.mgrStart
	}
	read := 0
	var toFirst []time.Duration
	byOp := map[string]emulator.OperationInfo{}
	for _, op := range r.firstReads {
		byOp[op.Name] = op
	}
	var readsTotal int64
	for i, name := range b.ops {
		op, ok := byOp[name]
		if !ok || op.FirstReadTime == nil {
			continue
		}
		read++
		readsTotal += op.Reads
		if s := r.objs[resourceName(i)]; !s.created.IsZero() {
			from := s.created
			if b.o.managerLater {
				from = b.mgrStart
			}
			toFirst = append(toFirst, op.FirstReadTime.Sub(from))
		}
	}
	originName := "the first create"
	if b.o.managerLater {
		originName = "the manager's start"
	}
	if r.readTimedOut {
		fmt.Fprintf(w, "NOT every operation read once:  %d of %d within -read-timeout %s\n", read, b.o.n, b.o.readTimeout)
	} else {
		fmt.Fprintf(w, "every operation read once:      %s after %s (%s after the last create)\n",
			round(r.allRead.Sub(origin)), originName, round(r.allRead.Sub(b.createEnd)))
		fmt.Fprintf(w, "every resource with a status:   %s after %s (seen on the watch)\n",
			round(r.allStatus.Sub(origin)), originName)
	}
	per := "create -> first read"
	if b.o.managerLater {
		per = "manager start -> first read"
	}
	fmt.Fprintf(w, "per operation, %s: %s\n", per, latencies(toFirst))
	fmt.Fprintf(w, "reads until then:               %d (%.2f per operation)\n", readsTotal, float64(readsTotal)/float64(max(read, 1)))
	fmt.Fprintf(w, "manager memory, all %d tracked: %s\n", b.o.n, r.memTracked)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- cancels (patch {\"spec\":{\"cancel\":true}} -> Succeeded reason Cancelled on the watch) --")
	b.printPhase(w, fmt.Sprintf("spread: %d, one every %s", b.o.spread, b.o.spreadEvery), r.spread)
	b.printPhase(w, fmt.Sprintf("burst: %d at once", b.o.burst), r.burst)
	b.printCallsPerCancel(w, r)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- calls at the emulator (GetOperation + CancelOperation) --")
	b.printWindows(w, r.calls, func(t time.Time) string {
		switch {
		case t.Before(r.allRead) || r.readTimedOut && t.Before(r.spreadStart):
			return "first reads"
		case t.Before(r.spreadStart):
			return "quiet"
		case t.Before(r.burstStart):
			return "spread cancels"
		default:
			return "burst cancels"
		}
	})
	total := r.calls.Total(polled...)
	span := r.end.Sub(b.createStart)
	if b.o.managerLater {
		span = r.end.Sub(b.mgrStart)
	}
	fmt.Fprintf(w, "average:                         %.2f/s (%d calls in %s)\n", float64(total)/span.Seconds(), total, round(span))
	fmt.Fprintf(w, "answered calls by method:        %s\n", formatCounters(r.counters))
	fmt.Fprintln(w)

	b.printWrites(w, r)
	fmt.Fprintln(w)

	printManagerEnd(w, r)
	fmt.Fprintln(w, "-- poll schedule of one solve, without contention --")
	printScheduleComparison(w, b.o.solve, b.o.scheduleTrials)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "run time: %s\n", round(time.Since(b.started)))
}

// printWindows writes the most calls in any 1 s and any 10 s against what the budget allows;
// phase names the part of the run a window starts in.
func (b *bench) printWindows(w io.Writer, calls emulator.CallHistogram, phase func(time.Time) string) {
	one := b.qps + float64(b.burst)
	ten := 10*b.qps + float64(b.burst)
	fmt.Fprintf(w, "budget --api-qps %g --api-burst %d: at most %.0f calls in any 1 s, %.0f in any 10 s (%.1f/s)\n",
		b.qps, b.burst, one, ten, ten/10)
	n1, at1 := calls.MaxInWindow(time.Second, polled...)
	n10, at10 := calls.MaxInWindow(10*time.Second, polled...)
	fmt.Fprintf(w, "max in any 1 s (whole seconds):  %d at %s (%s) %s\n", n1, b.since(at1), phase(at1), within(float64(n1), one))
	fmt.Fprintf(w, "max in any 10 s:                 %d = %.1f/s at %s (%s) %s\n", n10, float64(n10)/10, b.since(at10), phase(at10), within(float64(n10), ten))
}

// since is t as seconds into the run.
func (b *bench) since(t time.Time) string { return fmt.Sprintf("+%.1fs", t.Sub(b.started).Seconds()) }

// printManagerEnd writes the manager's memory, counters and error log at the end of a run.
func printManagerEnd(w io.Writer, r *report) {
	fmt.Fprintln(w, "-- manager at the end --")
	fmt.Fprintf(w, "memory:                          %s\n", r.memEnd)
	if r.metricsErr != nil {
		fmt.Fprintf(w, "metrics: %v\n", r.metricsErr)
	} else {
		fmt.Fprintf(w, "apiserver requests by verb:      %s\n", formatFloats(r.metrics.by("rest_client_requests_total", "method")))
		fmt.Fprintf(w, "reconciles by result:            %s\n", formatFloats(r.metrics.by("controller_runtime_reconcile_total", "result")))
		// What a reconcile costs beside the calls it makes: one per resource to start it, one
		// per call. Denied calls that come back before their token add more.
		var calls int64
		for _, byCode := range r.counters {
			for _, n := range byCode {
				calls += n
			}
		}
		reconciles := r.metrics.sum("controller_runtime_reconcile_total", nil)
		if base := float64(calls + int64(len(r.objs))); base > 0 {
			fmt.Fprintf(w, "reconciles / (calls + resources): %.0f / (%d + %d) = %.2f\n", reconciles, calls, len(r.objs), reconciles/base)
		}
		fmt.Fprintf(w, "calls deferred by the budget:    %.0f\n", r.metrics.sum("routeopt_api_budget_deferred_total", nil))
	}
	fmt.Fprintf(w, "error log lines:                 %d\n", r.logErrors)
	for _, k := range r.logErrorKinds {
		fmt.Fprintf(w, "  %s\n", k)
	}
	fmt.Fprintln(w)
}

func (m memSample) String() string {
	return fmt.Sprintf("RSS %s (peak %s; anonymous %s, the binary's mapped pages %s), Go heap in use %s, heap live %s, %0.f goroutines%s",
		mib(m.rss), mib(m.hwm), mib(m.anon), mib(m.file), mib(m.heapInuse), mib(m.heapLive), m.goroutines, errNote(m.err))
}

func errNote(err error) string {
	if err != nil {
		return fmt.Sprintf(" (incomplete: %v)", err)
	}
	return ""
}

func within(n, limit float64) string {
	if n <= limit {
		return "(within the budget)"
	}
	return fmt.Sprintf("(ABOVE the budget of %.0f)", limit)
}

func (b *bench) printPhase(w io.Writer, title string, p phaseResult) {
	fmt.Fprintf(w, "%-32s %s", title+":", latencies(p.latencies))
	fmt.Fprintf(w, "; not Cancelled within %s: %d; cancel sent (patch -> CancelOperation) %s", b.o.cancelBound, p.late, latencies(p.sent))
	if p.patchErrs > 0 {
		fmt.Fprintf(w, "; failed patches: %d", p.patchErrs)
	}
	fmt.Fprintln(w)
}

// opIndex is the index in b.ops of a resource name.
func opIndex(name string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "op-"))
	if err != nil {
		return -1
	}
	return i
}

func (b *bench) printCallsPerCancel(w io.Writer, r *report) {
	before := map[string]emulator.OperationInfo{}
	for _, op := range r.before {
		before[op.Name] = op
	}
	after := map[string]emulator.OperationInfo{}
	for _, op := range r.after {
		after[op.Name] = op
	}
	var cancels, reads []int
	extra := 0
	for _, name := range r.targets {
		i := opIndex(name)
		if i < 0 || i >= len(b.ops) {
			continue
		}
		a, bf := after[b.ops[i]], before[b.ops[i]]
		c := int(a.CancelCalls - bf.CancelCalls)
		cancels = append(cancels, c)
		if c > 1 {
			extra++
		}
		reads = append(reads, int(a.Reads-bf.Reads))
	}
	fmt.Fprintf(w, "calls per cancelled operation:   CancelOperation %.2f (%s); GetOperation from the patch to the end %.2f (%s)\n",
		mean(cancels), countDistribution(cancels, "cancel"), mean(reads), countDistribution(reads, "read"))
	if extra > 0 {
		fmt.Fprintf(w, "operations sent more than one cancel: %d\n", extra)
	}
}

func (b *bench) printWrites(w io.Writer, r *report) {
	fmt.Fprintln(w, "-- writes per resource (each new resourceVersion on the watch is one write) --")
	cancelled := map[string]bool{}
	for _, n := range r.targets {
		cancelled[n] = true
	}
	var qStatus, qMeta, qOther, cBefore, cStatus, cMeta, cSpec, cOther []int
	for name, s := range r.objs {
		if cancelled[name] {
			cBefore = append(cBefore, s.quiet.status)
			cStatus = append(cStatus, s.cancelPath.status)
			cMeta = append(cMeta, s.cancelPath.metadata+s.quiet.metadata)
			cSpec = append(cSpec, s.cancelPath.spec)
			cOther = append(cOther, s.cancelPath.other+s.quiet.other)
			continue
		}
		qStatus = append(qStatus, s.quiet.status)
		qMeta = append(qMeta, s.quiet.metadata)
		qOther = append(qOther, s.quiet.other+s.quiet.spec)
	}
	fmt.Fprintf(w, "quiet path (%d resources, still running at the end):\n", len(qStatus))
	fmt.Fprintf(w, "  status writes:   %.2f each (%s)\n", mean(qStatus), countDistribution(qStatus, "write"))
	fmt.Fprintf(w, "  metadata writes: %.2f each (%s)\n", mean(qMeta), countDistribution(qMeta, "write"))
	if sum(qOther) > 0 {
		fmt.Fprintf(w, "  other writes:    %d\n", sum(qOther))
	}
	fmt.Fprintf(w, "cancel path (%d resources):\n", len(cStatus))
	fmt.Fprintf(w, "  status writes before the patch: %.2f each (%s)\n", mean(cBefore), countDistribution(cBefore, "write"))
	fmt.Fprintf(w, "  status writes from the patch:   %.2f each (%s)\n", mean(cStatus), countDistribution(cStatus, "write"))
	fmt.Fprintf(w, "  metadata (finalizer) writes:    %.2f each (%s)\n", mean(cMeta), countDistribution(cMeta, "write"))
	fmt.Fprintf(w, "  spec writes (the cancel patch): %d\n", sum(cSpec))
	if sum(cOther) > 0 {
		fmt.Fprintf(w, "  other writes:                   %d\n", sum(cOther))
	}
	fmt.Fprintf(w, "watch: %d events, %d re-opened, %d resynced from a fresh list%s\n",
		r.events, r.restarts, r.resyncs, errNote(r.watchErr))
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

func formatCounters(c emulator.Counters) string {
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(c)) {
		var st []string
		for _, code := range slices.Sorted(maps.Keys(c[m])) {
			st = append(st, fmt.Sprintf("%d:%d", code, c[m][code]))
		}
		parts = append(parts, fmt.Sprintf("%s {%s}", m, strings.Join(st, " ")))
	}
	return strings.Join(parts, ", ")
}

func formatFloats(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
