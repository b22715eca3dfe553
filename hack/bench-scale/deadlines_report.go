package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// budgeted are the methods that take a token of the operator's budget in the deadline run:
// the submits too (class submit, after deadlines), unlike the scale run, which sends none.
var budgeted = []string{emulator.MethodGetOperation, emulator.MethodCancelOperation, emulator.MethodOptimizeToursLongRunning}

// solveObs is what the run saw of one solve: the resource (watch), its request, and the
// operation (emulator).
type solveObs struct {
	resource    string
	op          string
	timeout     time.Duration // of the request
	created     time.Time     // the resource's create returned
	submitted   time.Time     // the emulator created the operation
	end         time.Time     // the emulator ended the solve (planned, while it runs)
	done        bool          // the emulator's operation is done
	seenDone    time.Time     // the watch first saw status.done (zero: never)
	expectedEnd time.Time     // status.expectedEndTime (zero: not shown)
}

// solveAcct is one solve's account: its reads, and how late its end was seen.
type solveAcct struct {
	solveObs
	early      bool          // ended before its timeout
	solve      time.Duration // from the submit to the end
	reads      int           // GetOperation calls from the submit to the read that saw it done (all, if none did)
	doneRead   time.Time     // arrival of the read that saw it done (zero: none)
	readsAfter int           // GetOperation calls after that read
}

// lag is from the solve's end to the watch seeing the resource done.
func (a solveAcct) lag() (time.Duration, bool) {
	if !a.done || a.seenDone.IsZero() {
		return 0, false
	}
	return a.seenDone.Sub(a.end), true
}

// readLag is from the solve's end to the arrival of the read that saw it done.
func (a solveAcct) readLag() (time.Duration, bool) {
	if !a.done || a.doneRead.IsZero() {
		return 0, false
	}
	return a.doneRead.Sub(a.end), true
}

// share is d as a part of the solve's age at its end, counted as at least the shortest poll
// interval: no poller reads faster, so a solve that ends in its first instants says nothing of
// the schedule.
func (a solveAcct) share(d time.Duration) float64 {
	return float64(d) / float64(max(a.solve, policy.DefaultPollConfig.Min))
}

// accountSolves counts each solve's reads in calls (the emulator's records, in order of
// arrival). The read that saw a solve done is the first answered one that arrived at or after
// its end; or the answered one just before it, if that was answered after the end and the
// watch saw the resource done before the later read arrived (the emulator takes the time
// between a call's arrival and its answer).
func accountSolves(obs []solveObs, calls []emulator.CallRecord) []solveAcct {
	reads := map[string][]emulator.CallRecord{}
	for _, c := range calls {
		if c.Method == emulator.MethodGetOperation {
			reads[c.Name] = append(reads[c.Name], c)
		}
	}
	out := make([]solveAcct, 0, len(obs))
	for _, o := range obs {
		a := solveAcct{solveObs: o, solve: o.end.Sub(o.submitted)}
		a.early = a.solve < o.timeout-time.Millisecond
		rs := reads[o.op]
		slices.SortStableFunc(rs, func(x, y emulator.CallRecord) int { return x.Arrived.Compare(y.Arrived) })
		idx := -1
		if o.done {
			for i, c := range rs {
				if c.Status == http.StatusOK && !c.Arrived.Before(o.end) {
					idx = i
					break
				}
			}
			prev := -1
			for i := range rs {
				if idx >= 0 && i >= idx {
					break
				}
				if rs[i].Status == http.StatusOK {
					prev = i
				}
			}
			if prev >= 0 && rs[prev].Ended != nil && !rs[prev].Ended.Before(o.end) &&
				(idx < 0 || !o.seenDone.IsZero() && o.seenDone.Before(rs[idx].Arrived)) {
				idx = prev
			}
		}
		if idx < 0 {
			a.reads = len(rs)
		} else {
			a.reads, a.doneRead, a.readsAfter = idx+1, rs[idx].Arrived, len(rs)-idx-1
		}
		out = append(out, a)
	}
	return out
}

// percentileF is the nearest-rank percentile of sorted values (p in [0,1]); zero when empty.
func percentileF(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// maxInSliding is the most times within any window [t, t+w) and where the first such window
// starts; times need not be sorted.
func maxInSliding(times []time.Time, w time.Duration) (int, time.Time) {
	s := slices.SortedFunc(slices.Values(times), time.Time.Compare)
	best, at, j := 0, time.Time{}, 0
	for i := range s {
		for j < len(s) && s[j].Sub(s[i]) < w {
			j++
		}
		if j-i > best {
			best, at = j-i, s[i]
		}
	}
	return best, at
}

// pollerRow is one way of polling the same solves: reads and lags per solve.
type pollerRow struct {
	name   string
	reads  []int
	lags   []time.Duration
	shares []float64 // lag / the solve's age at its end
}

func (p *pollerRow) add(reads int, lag time.Duration, ok bool, a solveAcct) {
	p.reads = append(p.reads, reads)
	if ok {
		p.lags = append(p.lags, lag)
		p.shares = append(p.shares, a.share(lag))
	}
}

func (p pollerRow) print(w io.Writer) {
	maxReads := 0
	if len(p.reads) > 0 {
		maxReads = slices.Max(p.reads)
	}
	lags := slices.Sorted(slices.Values(p.lags))
	shares := slices.Sorted(slices.Values(p.shares))
	fmt.Fprintf(w, "  %-40s %6d %7.2f %5d %9s %9s %9s %7s %7s %7s\n", p.name, len(p.reads), mean(p.reads), maxReads,
		durCell(lags, 0.5), durCell(lags, 0.99), durCell(lags, 1), pctCell(shares, 0.5), pctCell(shares, 0.99), pctCell(shares, 1))
}

func durCell(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	return round(percentile(sorted, p)).String()
}

func pctCell(sorted []float64, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*percentileF(sorted, p))
}

// solveGroup is a part of the solves reported on its own.
type solveGroup struct {
	name string
	in   func(solveAcct) bool
}

func (b *bench) printDeadlines(r *deadlineRun) {
	w, d := b.out, b.o.dl
	ops := map[string]emulator.OperationInfo{}
	for _, op := range r.after {
		ops[op.Name] = op
	}
	var obs []solveObs
	notSubmitted, notFound := 0, 0
	var toSubmit []time.Duration
	for i := range b.o.n {
		name := resourceName(i)
		s := r.objs[name]
		o := solveObs{resource: name, timeout: r.timeouts[i], created: s.created, seenDone: s.doneAt}
		if s.last != nil {
			o.op = s.last.Status.OperationName
			if e := s.last.Status.ExpectedEndTime; e != nil {
				o.expectedEnd = e.Time
			}
		}
		if o.op == "" {
			notSubmitted++
			continue
		}
		info, ok := ops[o.op]
		if !ok {
			notFound++
			continue
		}
		o.submitted, o.end, o.done = info.CreateTime, info.EndTime, info.Done
		if !o.created.IsZero() {
			toSubmit = append(toSubmit, o.submitted.Sub(o.created))
		}
		obs = append(obs, o)
	}
	acct := accountSolves(obs, r.records)

	var firstSubmit, lastSubmit, firstEnd, lastEnd time.Time
	var ends []time.Time
	var offsets []time.Duration
	early, shown := 0, 0
	for i, a := range acct {
		if i == 0 || a.submitted.Before(firstSubmit) {
			firstSubmit = a.submitted
		}
		lastSubmit = later(lastSubmit, a.submitted)
		if i == 0 || a.end.Before(firstEnd) {
			firstEnd = a.end
		}
		lastEnd = later(lastEnd, a.end)
		ends = append(ends, a.end)
		if a.early {
			early++
		}
		if !a.expectedEnd.IsZero() {
			shown++
			offsets = append(offsets, a.expectedEnd.Sub(a.submitted.Add(a.timeout)))
		}
	}

	fmt.Fprintln(w, "-- deadlines: solves started through spec.submit (OptimizeToursLongRunning, inline model, request timeout) --")
	cd := b.createEnd.Sub(b.createStart)
	fmt.Fprintf(w, "resources created:               %d in %s (%.0f/s, %d workers), the manager started before them\n",
		b.o.n, round(cd), float64(b.o.n)/cd.Seconds(), b.o.workers)
	if d.shared {
		fmt.Fprintf(w, "request timeouts:                all %s (-shared-deadline): the solves end as close together as the budget let the submits go\n", d.timeouts.hi)
	} else {
		fmt.Fprintf(w, "request timeouts:                uniform over %s (seeded)\n", d.timeouts.String())
	}
	if d.sparse {
		fmt.Fprintf(w, "before the deadline:             spec.pollBeforeDeadline: Sparse (-sparse)\n")
	} else {
		fmt.Fprintf(w, "before the deadline:             spec.pollBeforeDeadline: Age, the default\n")
	}
	if limit := lastFlag(b.managerArgs(), "max-submits-per-minute"); limit == fmt.Sprint(b.o.n) {
		fmt.Fprintf(w, "submit cap:                      --max-submits-per-minute=%d, raised to N: the cap is the project quota's business, not the schedule's;\n", b.o.n)
		fmt.Fprintf(w, "                                 submits still take tokens of the budget (class submit), which alone paces them here\n")
	} else {
		fmt.Fprintf(w, "submit cap:                      --max-submits-per-minute=%s (from -manager-args), as well as the budget\n", limit)
	}
	if len(acct) > 0 {
		span := lastSubmit.Sub(firstSubmit)
		fmt.Fprintf(w, "submitted:                       %d of %d, from %s to %s (%s, %.2f/s); create -> submit %s\n",
			len(acct), b.o.n, b.since(firstSubmit), b.since(lastSubmit), round(span), float64(len(acct))/max(span.Seconds(), 1e-9), latencies(toSubmit))
	}
	if notSubmitted > 0 || r.submitTimeout {
		fmt.Fprintf(w, "NOT submitted:                   %d (no status.operationName at the end)\n", notSubmitted)
	}
	if notFound > 0 {
		fmt.Fprintf(w, "operations the emulator lacks:   %d\n", notFound)
	}
	if len(offsets) > 0 {
		s := slices.Sorted(slices.Values(offsets))
		fmt.Fprintf(w, "deadlines known:                 %d of %d show status.expectedEndTime; minus (the emulator's create + timeout): %s to %s, p50 %s\n",
			shown, len(acct), round(s[0]), round(s[len(s)-1]), round(percentile(s, 0.5)))
		fmt.Fprintf(w, "                                 (counted from the submit's answer, stored to the second)\n")
	} else {
		fmt.Fprintf(w, "deadlines known:                 NONE of %d resources shows status.expectedEndTime\n", len(acct))
	}
	if len(ends) > 0 {
		e1, at1 := maxInSliding(ends, time.Second)
		e10, at10 := maxInSliding(ends, 10*time.Second)
		fmt.Fprintf(w, "solve ends:                      from %s to %s; most in any 1 s: %d (at %s), in any 10 s: %d (at %s)\n",
			b.since(firstEnd), b.since(lastEnd), e1, b.since(at1), e10, b.since(at10))
	}
	fmt.Fprintf(w, "solves:                          %d ended at their deadline, %d before it (-early-finish %g)\n", len(acct)-early, early, d.earlyFinish)
	var unseen []string
	for _, a := range acct {
		if a.seenDone.IsZero() {
			unseen = append(unseen, a.resource)
		}
	}
	if len(unseen) > 0 || notSubmitted > 0 || r.doneTimeout {
		fmt.Fprintf(w, "NOT seen done within the bound:  %d (last deadline + -deadline-margin %s) %s\n", len(unseen)+notSubmitted, d.margin, firstFew(unseen, 5))
	}
	if r.allSubmitted.IsZero() {
		fmt.Fprintf(w, "manager memory, after the submit bound: %s\n", r.memTracked)
	} else {
		fmt.Fprintf(w, "manager memory, all %d tracked: %s\n", b.o.n, r.memTracked)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- lag and reads per solve --")
	fmt.Fprintln(w, "lag: from the solve's end (emulator) to its resource first showing status.done (watch), or to the arrival of the read that saw it done;")
	fmt.Fprintln(w, "reads: GetOperation calls of the operation from its submit to the read that saw it done. The computed rows run the same solves")
	fmt.Fprintln(w, "(same timeouts and ends) through each poller's schedule from the submit, without a budget or any other solve.")
	fmt.Fprintf(w, "lag/age: the lag over the solve's age at its end (at least %s, the shortest poll interval).\n", policy.DefaultPollConfig.Min)
	groups := []solveGroup{{"all solves", func(solveAcct) bool { return true }}}
	if early > 0 {
		groups = append(groups,
			solveGroup{"ended at their deadline", func(a solveAcct) bool { return !a.early }},
			solveGroup{"ended early", func(a solveAcct) bool { return a.early }})
	}
	// Google's gax draws from math/rand; the operator's jitter is seeded here.
	rng := rand.New(rand.NewPCG(9, 9))
	cfg := policy.DefaultPollConfig
	fmt.Fprintf(w, "  %-40s %6s %7s %5s %9s %9s %9s %7s %7s %7s\n", "", "solves", "reads", "max", "lag p50", "p99", "max", "lag/age", "p99", "max")
	readsAfter := 0
	for _, g := range groups {
		fmt.Fprintf(w, " %s:\n", g.name)
		seen := pollerRow{name: "operator, this run: status done (watch)"}
		read := pollerRow{name: "operator, this run: the read that saw it"}
		google := pollerRow{name: "Google Operation.Wait (computed)"}
		alone := pollerRow{name: "operator's schedule alone (computed)"}
		for _, a := range acct {
			if !g.in(a) {
				continue
			}
			l, ok := a.lag()
			seen.add(a.reads, l, ok, a)
			l, ok = a.readLag()
			read.add(a.reads, l, ok, a)
			if !a.done {
				continue
			}
			gr := googleSchedule(a.solve)
			google.add(gr.calls, gr.lag, true, a)
			or := deadlineSchedule(cfg, a.timeout, a.solve, d.sparse, rng.Float64)
			alone.add(or.calls, or.lag, true, a)
		}
		for _, p := range []pollerRow{seen, read, google, alone} {
			p.print(w)
		}
	}
	total := 0
	for _, a := range acct {
		total += a.reads
		readsAfter += a.readsAfter
	}
	fmt.Fprintf(w, "reads in all: %d to see the solves done; %d after a read had seen one done\n", total, readsAfter)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- calls at the emulator (GetOperation + CancelOperation + OptimizeToursLongRunning: all take the budget's tokens) --")
	phase := func(t time.Time) string {
		switch {
		case !t.After(lastSubmit):
			return "submits"
		case t.Before(firstEnd):
			return "solving"
		case !t.After(lastEnd):
			return "deadlines"
		default:
			return "after the last end"
		}
	}
	b.printBudgetWindows(w, r, phase)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "-- writes --")
	var status []int
	for _, s := range r.objs {
		status = append(status, s.quiet.status)
	}
	fmt.Fprintf(w, "status writes per resource:      %.2f (%s)\n", mean(status), countDistribution(status, "write"))
	fmt.Fprintf(w, "watch: %d events, %d re-opened, %d resynced from a fresh list%s\n", r.events, r.restarts, r.resyncs, errNote(r.watchErr))
	fmt.Fprintln(w)

	printManagerEnd(w, &r.report)
	if r.metricsErr == nil {
		fmt.Fprintf(w, "calls deferred by priority:      %s\n", formatFloats(r.metrics.by("routeopt_api_budget_deferred_total", "priority")))
		fmt.Fprintf(w, "submits by outcome:              %s\n", formatFloats(r.metrics.by("routeopt_submits_total", "outcome")))
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "run time: %s\n", round(time.Since(b.started)))
}

// printBudgetWindows writes the most budgeted calls in any 1 s and any 10 s against what the
// budget allows: in whole seconds of the emulator's histogram, and sliding over the arrivals
// in the call records.
func (b *bench) printBudgetWindows(w io.Writer, r *deadlineRun, phase func(time.Time) string) {
	one := b.qps + float64(b.burst)
	ten := 10*b.qps + float64(b.burst)
	fmt.Fprintf(w, "budget --api-qps %g --api-burst %d: at most %.0f calls in any 1 s, %.0f in any 10 s (%.1f/s)\n",
		b.qps, b.burst, one, ten, ten/10)
	n1, at1 := r.calls.MaxInWindow(time.Second, budgeted...)
	n10, at10 := r.calls.MaxInWindow(10*time.Second, budgeted...)
	fmt.Fprintf(w, "max in any 1 s (whole seconds):  %d at %s (%s) %s\n", n1, b.since(at1), phase(at1), within(float64(n1), one))
	fmt.Fprintf(w, "max in any 10 s (whole seconds): %d = %.1f/s at %s (%s) %s\n", n10, float64(n10)/10, b.since(at10), phase(at10), within(float64(n10), ten))
	var arrivals []time.Time
	for _, c := range r.records {
		if slices.Contains(budgeted, c.Method) {
			arrivals = append(arrivals, c.Arrived)
		}
	}
	s1, sat1 := maxInSliding(arrivals, time.Second)
	s10, sat10 := maxInSliding(arrivals, 10*time.Second)
	fmt.Fprintf(w, "max in any 1 s (sliding):        %d at %s (%s) %s\n", s1, b.since(sat1), phase(sat1), within(float64(s1), one))
	fmt.Fprintf(w, "max in any 10 s (sliding):       %d = %.1f/s at %s (%s) %s\n", s10, float64(s10)/10, b.since(sat10), phase(sat10), within(float64(s10), ten))
	if r.lostRecords > 0 {
		fmt.Fprintf(w, "call records: %d calls dropped by the emulator before a fetch saw them (reads per solve undercounted)\n", r.lostRecords)
	}
	total := r.calls.Total(budgeted...)
	span := r.end.Sub(b.createStart)
	fmt.Fprintf(w, "average:                         %.2f/s (%d calls in %s, from the first create to the end)\n", float64(total)/span.Seconds(), total, round(span))
	fmt.Fprintf(w, "answered calls by method:        %s\n", formatCounters(r.counters))
}

func firstFew(names []string, n int) string {
	if len(names) == 0 {
		return ""
	}
	s := fmt.Sprint(names[:min(n, len(names))])
	if len(names) > n {
		s += " ..."
	}
	return s
}

// lastFlag is the value of the last --name=value or --name value in args ("" if none).
func lastFlag(args []string, name string) string {
	v := ""
	for i := 0; i < len(args); i++ {
		k, val, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if k != name {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			val = args[i]
		}
		v = val
	}
	return v
}
