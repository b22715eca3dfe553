package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"cloud.google.com/go/longrunning"
	gax "github.com/googleapis/gax-go/v2"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// scheduleResult is what one way of polling costs for one solve: the reads it sends (the
// first read included, and the one that sees the operation done) and how long after the end
// of the solve that last read comes.
type scheduleResult struct {
	calls int
	lag   time.Duration
}

// pollUntilDone follows a poller from a read at time 0 until the first read at or after
// solve; next says how long the poller waits after a read at age t.
func pollUntilDone(solve time.Duration, next func(age time.Duration) time.Duration) scheduleResult {
	var t time.Duration
	calls := 1
	for t < solve {
		t += next(t)
		calls++
	}
	return scheduleResult{calls: calls, lag: t - solve}
}

// operatorSchedule is the operator's quiet-path schedule (policy.NextPoll with no failures and
// no cancel): the operation is first read when its resource is first reconciled, which is
// also when the operator starts counting its age. jitter supplies NextPoll's random number.
func operatorSchedule(cfg policy.PollConfig, solve time.Duration, jitter func() float64) scheduleResult {
	start := time.Unix(0, 0)
	return pollUntilDone(solve, func(age time.Duration) time.Duration {
		return policy.NextPoll(cfg, policy.PollInput{Now: start.Add(age), Started: start, Jitter: jitter()})
	})
}

// googleSchedule is longrunning.Operation.Wait: a read, then gax.Backoff pauses from 1 s
// doubling to DefaultWaitInterval, each drawn uniformly below the current step (full jitter).
// It runs the real gax.Backoff, whose random source is math/rand's.
func googleSchedule(solve time.Duration) scheduleResult {
	bo := gax.Backoff{Initial: time.Second, Max: longrunning.DefaultWaitInterval}
	return pollUntilDone(solve, func(time.Duration) time.Duration { return bo.Pause() })
}

// scheduleSummary is many draws of a randomised schedule.
type scheduleSummary struct {
	meanCalls            float64
	minCalls, maxCalls   int
	meanLag, p99Lag, max time.Duration
}

func summarise(trials int, run func() scheduleResult) scheduleSummary {
	var s scheduleSummary
	lags := make([]time.Duration, 0, trials)
	total := 0
	for i := range trials {
		r := run()
		total += r.calls
		lags = append(lags, r.lag)
		if i == 0 || r.calls < s.minCalls {
			s.minCalls = r.calls
		}
		s.maxCalls = max(s.maxCalls, r.calls)
	}
	slices.Sort(lags)
	var sum time.Duration
	for _, l := range lags {
		sum += l
	}
	s.meanCalls = float64(total) / float64(trials)
	s.meanLag = sum / time.Duration(trials)
	s.p99Lag = percentile(lags, 0.99)
	s.max = lags[len(lags)-1]
	return s
}

// printScheduleComparison writes the comparison of the two pollers for one solve. The random
// draws are seeded so the operator's figures repeat; gax draws from math/rand, so Google's
// vary in the last digit between runs.
func printScheduleComparison(w io.Writer, solve time.Duration, trials int) {
	cfg := policy.DefaultPollConfig
	nominal := operatorSchedule(cfg, solve, func() float64 { return 0.5 }) // jitter factor 1.0
	rng := rand.New(rand.NewPCG(1, 2))
	op := summarise(trials, func() scheduleResult { return operatorSchedule(cfg, solve, rng.Float64) })
	g := summarise(trials, func() scheduleResult { return googleSchedule(solve) })

	fmt.Fprintf(w, "Reads of one operation whose solve takes %s (%d random draws each, no failures, no budget wait):\n", solve, trials)
	fmt.Fprintf(w, "  %-52s %8s %11s %9s %9s %9s\n", "poller", "calls", "calls range", "mean lag", "p99 lag", "max lag")
	fmt.Fprintf(w, "  %-52s %8.1f %5d-%-5d %9s %9s %9s\n",
		fmt.Sprintf("Google longrunning Wait (1s x2 to %s, full jitter)", longrunning.DefaultWaitInterval),
		g.meanCalls, g.minCalls, g.maxCalls, g.meanLag.Round(100*time.Millisecond), g.p99Lag.Round(100*time.Millisecond), g.max.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  %-52s %8.1f %5d-%-5d %9s %9s %9s\n",
		fmt.Sprintf("operator (min %s, max %s, %.1f x age, +-10%% jitter)", cfg.Min, cfg.Max, cfg.AgeFactor),
		op.meanCalls, op.minCalls, op.maxCalls, op.meanLag.Round(100*time.Millisecond), op.p99Lag.Round(100*time.Millisecond), op.max.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  %-52s %8d %11s %9s\n", "operator without jitter", nominal.calls, "", nominal.lag.Round(100*time.Millisecond))
	worst := min(max(time.Duration(float64(solve)*cfg.AgeFactor), cfg.Min), cfg.Max)
	fmt.Fprintf(w, "  The operator's lag is bounded by its interval at the end of the solve, %s; Google's by %s.\n",
		worst, longrunning.DefaultWaitInterval)
}

// deadlineSchedule is the operator's schedule for a solve it submitted, whose deadline it
// knows (the request's timeout). The answer to the request at 0 is the operation, running: it
// is the first observation, and no read. Google's Wait reads at 0 all the same.
// sparse is spec.pollBeforeDeadline: Sparse.
func deadlineSchedule(cfg policy.PollConfig, timeout, solve time.Duration, sparse bool, jitter func() float64) scheduleResult {
	start := time.Unix(0, 0)
	r := pollUntilDone(solve, func(age time.Duration) time.Duration {
		return policy.NextPoll(cfg, policy.PollInput{Now: start.Add(age), Started: start, Deadline: start.Add(timeout), Sparse: sparse, Jitter: jitter()})
	})
	r.calls--
	return r
}

// printDeadlineComparison compares the pollers for solves with a known deadline: ones that end
// at it (large problems use most of their timeout), and ones that end early, at a uniformly
// drawn point of it.
func printDeadlineComparison(w io.Writer, trials int) {
	cfg := policy.DefaultPollConfig
	rng := rand.New(rand.NewPCG(3, 4))
	fmt.Fprintf(w, "\nSolves with a known deadline (the request's timeout), %d random draws each, no failures, no budget wait:\n", trials)
	fmt.Fprintf(w, "  %-9s %-22s %8s %9s %9s %9s\n", "timeout", "poller", "calls", "mean lag", "p99 lag", "max lag")
	for _, timeout := range []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour} {
		g := summarise(trials, func() scheduleResult { return googleSchedule(timeout) })
		op := summarise(trials, func() scheduleResult { return operatorSchedule(cfg, timeout, rng.Float64) })
		dl := summarise(trials, func() scheduleResult { return deadlineSchedule(cfg, timeout, timeout, false, rng.Float64) })
		sp := summarise(trials, func() scheduleResult { return deadlineSchedule(cfg, timeout, timeout, true, rng.Float64) })
		for _, row := range []struct {
			name string
			s    scheduleSummary
		}{{"Google Wait", g}, {"operator, by age", op}, {"deadline, Age", dl}, {"deadline, Sparse", sp}} {
			fmt.Fprintf(w, "  %-9s %-22s %8.1f %9s %9s %9s\n", timeout, row.name, row.s.meanCalls,
				row.s.meanLag.Round(100*time.Millisecond), row.s.p99Lag.Round(100*time.Millisecond), row.s.max.Round(100*time.Millisecond))
		}
		fmt.Fprintf(w, "  %-9s %-22s %7.1f%% of Google's calls (at most %d)\n", "", "deadline, Age", 100*dl.meanCalls/g.meanCalls, dl.maxCalls)
		fmt.Fprintf(w, "  %-9s %-22s %7.1f%% of Google's calls (at most %d)\n", "", "deadline, Sparse", 100*sp.meanCalls/g.meanCalls, sp.maxCalls)
		earlyFinish(w, cfg, timeout, trials, false, rng)
		earlyFinish(w, cfg, timeout, trials, true, rng)
	}
}

// earlyFinish measures solves that end at a uniformly drawn point of their timeout: the lag
// against the solve's age at its end. Below Min/AgeFactor (5 s) the floor of
// --min-poll-interval, not the age, sets the interval, so those solves are left out of the
// ratio.
func earlyFinish(w io.Writer, cfg policy.PollConfig, timeout time.Duration, trials int, sparse bool, rng *rand.Rand) {
	floor := time.Duration(float64(cfg.Min) / cfg.AgeFactor)
	var ratios []float64
	var lags []time.Duration
	var calls int
	for range trials {
		end := time.Duration(rng.Float64() * float64(timeout))
		r := deadlineSchedule(cfg, timeout, end, sparse, rng.Float64)
		calls += r.calls
		lags = append(lags, r.lag)
		if end >= floor {
			ratios = append(ratios, float64(r.lag)/float64(end))
		}
	}
	slices.Sort(ratios)
	slices.Sort(lags)
	var sum float64
	for _, x := range ratios {
		sum += x
	}
	name := "early finish, Age"
	if sparse {
		name = "early finish, Sparse"
	}
	fmt.Fprintf(w, "  %-9s %-22s %8.1f  lag p99 %s; lag / age at the end (ends after %s): mean %.1f%%, p99 %.1f%%, max %.1f%%\n", "", name,
		float64(calls)/float64(trials), percentile(lags, 0.99).Round(100*time.Millisecond), floor,
		100*sum/float64(len(ratios)), 100*ratios[len(ratios)*99/100], 100*ratios[len(ratios)-1])
}
