package policy_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

var pollStart = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func failure(k policy.FailureKind, retryAfter time.Duration) *policy.Failure {
	code := map[policy.FailureKind]codes.Code{
		policy.Transient: codes.Unavailable, policy.RateLimited: codes.ResourceExhausted, policy.Auth: codes.PermissionDenied,
		policy.NotFound: codes.NotFound, policy.Unimplemented: codes.Unimplemented, policy.Rejected: codes.InvalidArgument,
	}[k]
	return &policy.Failure{Kind: k, Code: code, Message: k.String(), RetryAfter: retryAfter}
}

func ago(d time.Duration) *time.Time {
	t := pollStart.Add(-d)
	return &t
}

// in builds a PollInput for an operation of the given age, read at pollStart.
func in(age time.Duration, jitter float64) policy.PollInput {
	return policy.PollInput{Now: pollStart, Started: pollStart.Add(-age), Jitter: jitter}
}

// TestNextPollExact covers the schedule with Jitter 0.5, where the jitter factor is exactly 1.
func TestNextPollExact(t *testing.T) {
	def := policy.DefaultPollConfig
	custom := policy.PollConfig{Min: 5 * time.Second, Max: time.Minute, AgeFactor: 0.1}
	with := func(p policy.PollInput, f func(*policy.PollInput)) policy.PollInput { f(&p); return p }

	cases := []struct {
		name string
		c    policy.PollConfig
		in   policy.PollInput
		want time.Duration
	}{
		// Age-proportional schedule.
		{"new operation", def, in(0, 0.5), time.Second},
		{"age 2s", def, in(2*time.Second, 0.5), time.Second},
		{"age 5s", def, in(5*time.Second, 0.5), time.Second},
		{"age 10s", def, in(10*time.Second, 0.5), 2 * time.Second},
		{"age 100s", def, in(100*time.Second, 0.5), 20 * time.Second},
		{"age 10m", def, in(10*time.Minute, 0.5), 2 * time.Minute},
		{"age 25m: at Max", def, in(25*time.Minute, 0.5), 5 * time.Minute},
		{"age 1h: capped at Max", def, in(time.Hour, 0.5), 5 * time.Minute},
		{"age 30d: capped at Max", def, in(30*24*time.Hour, 0.5), 5 * time.Minute},
		{"started in the future", def, in(-time.Hour, 0.5), time.Second},
		{"custom: young", custom, in(10*time.Second, 0.5), 5 * time.Second},
		{"custom: age 100s", custom, in(100*time.Second, 0.5), 10 * time.Second},
		{"custom: age 1h", custom, in(time.Hour, 0.5), time.Minute},
		{"zero AgeFactor", policy.PollConfig{Min: 2 * time.Second, Max: time.Minute}, in(time.Hour, 0.5), 2 * time.Second},

		// spec.pollInterval lowers the ceiling, never below Min.
		{"spec cap 30s, age 1h", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.SpecCap = 30 * time.Second }), 30 * time.Second},
		{"spec cap 30s, age 100s", def, with(in(100*time.Second, 0.5), func(p *policy.PollInput) { p.SpecCap = 30 * time.Second }), 20 * time.Second},
		{"spec cap above Max", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.SpecCap = time.Hour }), 5 * time.Minute},
		{"spec cap below Min", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.SpecCap = 100 * time.Millisecond }), time.Second},
		{"spec cap below custom Min", custom, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.SpecCap = 2 * time.Second }), 5 * time.Second},

		// Following a cancel: about 1s, 2s, 4s ... after it was sent.
		{"cancel just sent", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(0) }), time.Second},
		{"cancel 1s ago", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(time.Second) }), time.Second},
		{"cancel 2s ago", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(2 * time.Second) }), 2 * time.Second},
		{"cancel 4s ago", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(4 * time.Second) }), 4 * time.Second},
		{"cancel 8s ago", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(8 * time.Second) }), 8 * time.Second},
		{"cancel 1h ago: capped", def, with(in(2*time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(time.Hour) }), 5 * time.Minute},
		{"cancel 1m ago, spec cap 10s", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.CancelAcceptedAt, p.SpecCap = ago(time.Minute), 10*time.Second
		}), 10 * time.Second},
		{"cancel in the future", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.CancelAcceptedAt = ago(-time.Minute) }), time.Second},

		// Transient failures double from Min, capped at the ceiling.
		{"transient, 0 failures counted", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure = failure(policy.Transient, 0) }), time.Second},
		{"transient x1", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 1 }), time.Second},
		{"transient x2", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 2 }), 2 * time.Second},
		{"transient x3", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 3 }), 4 * time.Second},
		{"transient x6", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 6 }), 32 * time.Second},
		{"transient x10: capped", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 10 }), 5 * time.Minute},
		{"transient x1000: capped", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 1000 }), 5 * time.Minute},
		{"transient x10, spec cap 20s", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures, p.SpecCap = failure(policy.Transient, 0), 10, 20*time.Second
		}), 20 * time.Second},
		{"transient x2, custom", custom, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Transient, 0), 2 }), 10 * time.Second},
		{"transient while cancelling: failure wins", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures, p.CancelAcceptedAt = failure(policy.Transient, 0), 3, ago(time.Minute)
		}), 4 * time.Second},

		// RESOURCE_EXHAUSTED: exactly RetryInfo when sent, else 30 s doubling.
		{"429 with RetryInfo 3.5s", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.RateLimited, 3500*time.Millisecond), 1
		}), 3500 * time.Millisecond},
		{"429 with RetryInfo 3.5s, jitter 0", def, with(in(time.Hour, 0), func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.RateLimited, 3500*time.Millisecond), 5
		}), 3500 * time.Millisecond},
		{"429 with RetryInfo 3.5s, jitter 0.999", def, with(in(time.Hour, 0.999), func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.RateLimited, 3500*time.Millisecond), 1
		}), 3500 * time.Millisecond},
		{"429 with RetryInfo below Min", custom, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.RateLimited, 200*time.Millisecond), 1
		}), 200 * time.Millisecond},
		{"429 with RetryInfo above Max", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 10*time.Minute), 1 }), 10 * time.Minute},
		{"429 with RetryInfo, spec cap lower", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures, p.SpecCap = failure(policy.RateLimited, time.Minute), 1, 10*time.Second
		}), time.Minute},
		{"429 x1 without RetryInfo", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 1 }), 30 * time.Second},
		{"429 x0 without RetryInfo", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure = failure(policy.RateLimited, 0) }), 30 * time.Second},
		{"429 x2 without RetryInfo", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 2 }), time.Minute},
		{"429 x3 without RetryInfo", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 3 }), 2 * time.Minute},
		{"429 x4 without RetryInfo", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 4 }), 4 * time.Minute},
		{"429 x5 without RetryInfo: capped", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 5 }), 5 * time.Minute},
		{"429 x100 without RetryInfo: capped", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 100 }), 5 * time.Minute},
		{"429 x1, jitter ignored", def, with(in(time.Hour, 0.999), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 1 }), 30 * time.Second},
		{"429 x3, Max below 30s: never below 30s", custom2(10 * time.Second), with(in(time.Hour, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.RateLimited, 0), 3 }), 30 * time.Second},
		{"429 x2, spec cap 5s: never below 30s", def, with(in(time.Hour, 0.5), func(p *policy.PollInput) {
			p.Failure, p.Failures, p.SpecCap = failure(policy.RateLimited, 0), 2, 5*time.Second
		}), time.Minute},

		// Permanent failures: about Max; a person must act.
		{"NotFound", def, with(in(time.Minute, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.NotFound, 0), 1 }), 5 * time.Minute},
		{"Auth", def, with(in(time.Minute, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Auth, 0), 7 }), 5 * time.Minute},
		{"Rejected", def, with(in(0, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Rejected, 0), 1 }), 5 * time.Minute},
		{"Unimplemented", custom, with(in(0, 0.5), func(p *policy.PollInput) { p.Failure, p.Failures = failure(policy.Unimplemented, 0), 1 }), time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.NextPoll(tc.c, tc.in); got != tc.want {
				t.Errorf("NextPoll = %v, want %v", got, tc.want)
			}
		})
	}
}

func custom2(maxPoll time.Duration) policy.PollConfig {
	return policy.PollConfig{Min: time.Second, Max: maxPoll, AgeFactor: 0.2}
}

// TestNextPollJitter: the jitter spreads a nominal interval over [0.9, 1.1) of it, and never
// below Min.
func TestNextPollJitter(t *testing.T) {
	def := policy.DefaultPollConfig
	cases := []struct {
		name    string
		c       policy.PollConfig
		in      policy.PollInput
		nominal time.Duration
	}{
		{"young", def, in(0, 0), time.Second},
		{"age 100s", def, in(100*time.Second, 0), 20 * time.Second},
		{"age 10m", def, in(10*time.Minute, 0), 2 * time.Minute},
		{"age 1h", def, in(time.Hour, 0), 5 * time.Minute},
		{"transient x3", def, policy.PollInput{Now: pollStart, Started: pollStart, Failure: failure(policy.Transient, 0), Failures: 3}, 4 * time.Second},
		{"cancel 8s ago", def, policy.PollInput{Now: pollStart, Started: pollStart.Add(-time.Hour), CancelAcceptedAt: ago(8 * time.Second)}, 8 * time.Second},
		{"permanent", def, policy.PollInput{Now: pollStart, Started: pollStart, Failure: failure(policy.Auth, 0), Failures: 1}, 5 * time.Minute},
		{"spec cap below Min", policy.PollConfig{Min: 3 * time.Second, Max: time.Minute, AgeFactor: 0.2},
			policy.PollInput{Now: pollStart, Started: pollStart.Add(-time.Hour), SpecCap: time.Second}, 3 * time.Second},
	}
	for _, tc := range cases {
		for _, j := range []float64{0, 0.25, 0.5, 0.75, 0.999} {
			t.Run(fmt.Sprintf("%s/jitter=%v", tc.name, j), func(t *testing.T) {
				p := tc.in
				p.Jitter = j
				got := policy.NextPoll(tc.c, p)
				lo := max(time.Duration(float64(tc.nominal)*0.9), tc.c.Min)
				hi := time.Duration(float64(tc.nominal) * 1.1)
				if got < lo || got >= hi {
					t.Errorf("NextPoll = %v, want within [%v, %v)", got, lo, hi)
				}
				if got < tc.c.Min {
					t.Errorf("NextPoll = %v is below Min %v", got, tc.c.Min)
				}
			})
		}
	}
	// Jitter is monotonic: a larger random number never gives a shorter wait.
	for _, tc := range cases {
		prev := time.Duration(0)
		for j := 0.0; j < 1; j += 0.01 {
			p := tc.in
			p.Jitter = j
			got := policy.NextPoll(tc.c, p)
			if got < prev {
				t.Errorf("%s: NextPoll(jitter %.2f) = %v < %v at a smaller jitter", tc.name, j, got, prev)
			}
			prev = got
		}
	}
}

// pollGrid is every combination of a set of inputs, for bounds that must hold everywhere.
func pollGrid(yield func(c policy.PollConfig, p policy.PollInput)) {
	configs := []policy.PollConfig{
		policy.DefaultPollConfig,
		{Min: 5 * time.Second, Max: time.Minute, AgeFactor: 0.1},
		{Min: time.Second, Max: 10 * time.Second, AgeFactor: 1},
		{Min: 2 * time.Second, Max: 3 * time.Second, AgeFactor: 0.2},
		{Min: 100 * time.Millisecond, Max: time.Hour, AgeFactor: 0.5},
	}
	ages := []time.Duration{-time.Minute, 0, time.Second, 5 * time.Second, 30 * time.Second, 100 * time.Second, 10 * time.Minute, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour}
	caps := []time.Duration{0, 500 * time.Millisecond, time.Second, 10 * time.Second, time.Minute, 10 * time.Minute}
	cancels := []*time.Duration{nil, ptrTo(time.Duration(0)), ptrTo(3 * time.Second), ptrTo(time.Hour)}
	failures := []*policy.Failure{nil, failure(policy.Transient, 0), failure(policy.RateLimited, 0),
		failure(policy.Auth, 0), failure(policy.NotFound, 0), failure(policy.Rejected, 0), failure(policy.Unimplemented, 0)}
	counts := []int{0, 1, 2, 5, 40, 1 << 20}
	jitters := []float64{0, 0.25, 0.5, 0.999}
	for _, c := range configs {
		for _, age := range ages {
			for _, sc := range caps {
				for _, cancel := range cancels {
					for _, f := range failures {
						for _, n := range counts {
							if f == nil && n != 0 {
								continue
							}
							for _, j := range jitters {
								p := policy.PollInput{Now: pollStart, Started: pollStart.Add(-age), SpecCap: sc, Failure: f, Failures: n, Jitter: j}
								if cancel != nil {
									p.CancelAcceptedAt = ago(*cancel)
								}
								yield(c, p)
							}
						}
					}
				}
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func describe(c policy.PollConfig, p policy.PollInput) string {
	s := fmt.Sprintf("config %+v age %v cap %v jitter %v", c, p.Now.Sub(p.Started), p.SpecCap, p.Jitter)
	if p.CancelAcceptedAt != nil {
		s += fmt.Sprintf(" cancel %v ago", p.Now.Sub(*p.CancelAcceptedAt))
	}
	if p.Failure != nil {
		s += fmt.Sprintf(" failure %v x%d", p.Failure.Kind, p.Failures)
	}
	return s
}

// TestNextPollLowerBound: no input ever polls sooner than Min, or than 30 s after a 429
// without RetryInfo; no input gives a wait that is not positive.
func TestNextPollLowerBound(t *testing.T) {
	n, bad := 0, 0
	pollGrid(func(c policy.PollConfig, p policy.PollInput) {
		n++
		got := policy.NextPoll(c, p)
		lo := c.Min
		if p.Failure != nil && p.Failure.Kind == policy.RateLimited {
			lo = policy.MinRateLimitedDelay
		}
		if got < lo || got <= 0 {
			if bad++; bad <= 20 {
				t.Errorf("NextPoll = %v < %v for %s", got, lo, describe(c, p))
			}
		}
	})
	t.Logf("%d inputs checked", n)
}

// TestNextPollUpperBoundWithinJitter: no input waits longer than the jittered ceiling,
// 1.1 x max(Max, 30 s).
func TestNextPollUpperBoundWithinJitter(t *testing.T) {
	bad := 0
	pollGrid(func(c policy.PollConfig, p policy.PollInput) {
		got := policy.NextPoll(c, p)
		hi := time.Duration(float64(max(c.Max, policy.MinRateLimitedDelay)) * 1.1)
		if got > hi {
			if bad++; bad <= 20 {
				t.Errorf("NextPoll = %v > %v for %s", got, hi, describe(c, p))
			}
		}
	})
}

// TestNextPollWithRetryInfo: a RetryInfo delay is honoured exactly, whatever else holds.
func TestNextPollWithRetryInfo(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 3500 * time.Millisecond, 30 * time.Second, 2 * time.Hour} {
		pollGrid(func(c policy.PollConfig, p policy.PollInput) {
			if p.Failure == nil || p.Failure.Kind != policy.RateLimited {
				return
			}
			p.Failure = failure(policy.RateLimited, d)
			if got := policy.NextPoll(c, p); got != d {
				t.Fatalf("NextPoll = %v, want the RetryInfo delay %v for %s", got, d, describe(c, p))
			}
		})
	}
}

// TestNextPollThirtyMinuteSolve counts the reads of a 30-minute solve with the default
// configuration, simulated without waiting.
func TestNextPollThirtyMinuteSolve(t *testing.T) {
	for _, j := range []float64{0, 0.5, 0.999} {
		t.Run(fmt.Sprintf("jitter=%v", j), func(t *testing.T) {
			now, polls := pollStart, 0
			var longest time.Duration
			for now.Sub(pollStart) < 30*time.Minute {
				d := policy.NextPoll(policy.DefaultPollConfig, policy.PollInput{Now: now, Started: pollStart, Jitter: j})
				if d <= 0 {
					t.Fatalf("NextPoll = %v at %v", d, now.Sub(pollStart))
				}
				longest = max(longest, d)
				now = now.Add(d)
				polls++
			}
			t.Logf("a 30-minute solve is read %d times (jitter %v, longest wait %v, last read %v after the start)",
				polls, j, longest, now.Sub(pollStart))
			if polls < 20 || polls > 60 {
				t.Errorf("%d reads for a 30-minute solve, want between 20 and 60", polls)
			}
			// The solve is seen done no later than about a fifth of its age after it ends.
			if late := now.Sub(pollStart) - 30*time.Minute; late > 7*time.Minute {
				t.Errorf("the end of the solve is seen %v late", late)
			}
		})
	}
}

func TestNextPollKeepsTheFairShare(t *testing.T) {
	// 1,000 operations share 5 calls a second: each can be read every 200 s. A young
	// operation is not read every second meanwhile; past --max-poll-interval the fair share
	// wins (and the operator reports saturation); cancels and failures keep their own pace.
	def := policy.DefaultPollConfig
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	accepted := now.Add(-time.Second)
	tests := []struct {
		name string
		in   policy.PollInput
		want time.Duration
	}{
		{"young, room in the budget", policy.PollInput{Now: now, Started: now.Add(-10 * time.Second), Jitter: 0.5, FairShare: 200 * time.Millisecond}, 2 * time.Second},
		{"young, 1,000 at 5/s", policy.PollInput{Now: now, Started: now.Add(-10 * time.Second), Jitter: 0.5, FairShare: 200 * time.Second}, 200 * time.Second},
		{"10,000 at 5/s: past the ceiling", policy.PollInput{Now: now, Started: now.Add(-time.Hour), Jitter: 0.5, FairShare: 2000 * time.Second}, 2000 * time.Second},
		{"cancel accepted: followed closely", policy.PollInput{Now: now, Started: now.Add(-time.Hour), Jitter: 0.5, FairShare: 2000 * time.Second, CancelAcceptedAt: &accepted}, time.Second},
	}
	for _, tc := range tests {
		if got := policy.NextPoll(def, tc.in); got != tc.want {
			t.Errorf("%s: NextPoll = %s, want %s", tc.name, got, tc.want)
		}
	}
	if !policy.Saturated(def, 2000*time.Second) || policy.Saturated(def, 200*time.Second) {
		t.Error("Saturated: want true past --max-poll-interval only")
	}
}

// TestNextPollDeadline covers the schedule of a solve whose deadline is known, with Jitter 0.5:
// a factor of 1 after the deadline, and of 0.95 before it, where jitter only shortens a wait.
// The deadline here is one hour after the start.
func TestNextPollDeadline(t *testing.T) {
	sparse := func(p *policy.PollInput) { p.Sparse = true }
	def := policy.DefaultPollConfig
	deadline := pollStart.Add(time.Hour)
	at := func(age time.Duration, f ...func(*policy.PollInput)) policy.PollInput {
		p := policy.PollInput{Now: pollStart.Add(age), Started: pollStart, Deadline: deadline, Jitter: 0.5}
		for _, g := range f {
			g(&p)
		}
		return p
	}
	cases := []struct {
		name  string
		in    policy.PollInput
		want  time.Duration
		phase policy.Phase
	}{
		{"unknown deadline: the age schedule", policy.PollInput{Now: pollStart.Add(10 * time.Minute), Started: pollStart, Jitter: 0.5},
			2 * time.Minute, policy.NoDeadline},
		{"young: an early finish is seen within a fifth of the age", at(100 * time.Second), 19 * time.Second, policy.BeforeDeadline},
		{"young, the largest jitter: still within a fifth", at(100*time.Second, func(p *policy.PollInput) { p.Jitter = 0.999999 }),
			20*time.Second - 2*time.Microsecond, policy.BeforeDeadline},
		{"old: the age schedule, within --max-poll-interval", at(30 * time.Minute), 4*time.Minute + 45*time.Second, policy.BeforeDeadline},
		{"near the deadline: the next read is just after it", at(58 * time.Minute), 2*time.Minute + policy.JustAfter, policy.BeforeDeadline},
		{"a second before it", at(time.Hour - time.Second), time.Second + policy.JustAfter, policy.BeforeDeadline},
		{"just after: close reads", at(time.Hour + time.Second), 2 * time.Second, policy.AtDeadline},
		{"after: doubling", at(time.Hour + 7*time.Second), 8 * time.Second, policy.AtDeadline},
		{"long past: the age schedule again", at(time.Hour + 10*time.Minute), 5 * time.Minute, policy.PastDeadline},
		{"spec.pollInterval caps before the deadline", at(30*time.Minute, func(p *policy.PollInput) { p.SpecCap = time.Minute }),
			57 * time.Second, policy.BeforeDeadline},
		{"a cancel accepted: followed closely", at(30*time.Minute, func(p *policy.PollInput) { p.CancelAcceptedAt = ago(-30*time.Minute + 4*time.Second) }),
			4 * time.Second, policy.BeforeDeadline},
		{"a failure: its back-off, not the deadline", at(59*time.Minute+59*time.Second, func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.Transient, 0), 4
		}), 8 * time.Second, policy.BeforeDeadline},
		{"saturated: the fair share, but not past the deadline", at(30*time.Minute, func(p *policy.PollInput) { p.FairShare = 40 * time.Minute }),
			30*time.Minute + policy.JustAfter, policy.BeforeDeadline},
		{"saturated, young", at(100*time.Second, func(p *policy.PollInput) { p.FairShare = 10 * time.Minute }), 10 * time.Minute, policy.BeforeDeadline},

		// spec.pollBeforeDeadline: Sparse. A fifth of the one-hour timeout is 12 minutes.
		{"sparse: young, a fifth of the timeout", at(0, sparse), 11*time.Minute + 24*time.Second, policy.BeforeDeadline},
		{"sparse: the largest jitter", at(0, sparse, func(p *policy.PollInput) { p.Jitter = 0.999999 }), 12*time.Minute - 72*time.Microsecond, policy.BeforeDeadline},
		{"sparse: within a quarter of a step of the deadline, just after it", at(48*time.Minute, sparse), 12*time.Minute + policy.JustAfter, policy.BeforeDeadline},
		{"sparse: a short timeout, at least --max-poll-interval apart", func() policy.PollInput {
			p := at(0, sparse)
			p.Deadline = pollStart.Add(10 * time.Minute)
			return p
		}(), 4*time.Minute + 45*time.Second, policy.BeforeDeadline},
		{"sparse: 5-minute timeout, one read, just after it", func() policy.PollInput {
			p := at(0, sparse)
			p.Deadline = pollStart.Add(5 * time.Minute)
			return p
		}(), 5*time.Minute + policy.JustAfter, policy.BeforeDeadline},
		{"sparse: spec.pollInterval caps it", at(0, sparse, func(p *policy.PollInput) { p.SpecCap = 2 * time.Minute }), 114 * time.Second, policy.BeforeDeadline},
		{"sparse: spec.pollInterval caps it near the deadline too", at(58*time.Minute+51*time.Second, sparse, func(p *policy.PollInput) { p.SpecCap = time.Minute }),
			57 * time.Second, policy.BeforeDeadline},
		{"sparse: spec.pollInterval, the deadline within it", at(59*time.Minute+30*time.Second, sparse, func(p *policy.PollInput) { p.SpecCap = time.Minute }),
			30*time.Second + policy.JustAfter, policy.BeforeDeadline},
		{"sparse, saturated: the fair share", at(0, sparse, func(p *policy.PollInput) { p.FairShare = 20 * time.Minute }), 20 * time.Minute, policy.BeforeDeadline},
		{"sparse, a cancel accepted: followed closely", at(30*time.Minute, sparse, func(p *policy.PollInput) { p.CancelAcceptedAt = ago(-30*time.Minute + 4*time.Second) }),
			4 * time.Second, policy.BeforeDeadline},
		{"sparse, past the deadline by far: the age schedule again", at(time.Hour+10*time.Minute, sparse), 5 * time.Minute, policy.PastDeadline},
		{"sparse, after the deadline: close reads as ever", at(time.Hour+7*time.Second, sparse), 8 * time.Second, policy.AtDeadline},
		{"sparse, a failure: its back-off", at(30*time.Minute, sparse, func(p *policy.PollInput) {
			p.Failure, p.Failures = failure(policy.Transient, 0), 4
		}), 8 * time.Second, policy.BeforeDeadline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.NextPoll(def, tc.in); got != tc.want {
				t.Errorf("NextPoll = %s, want %s", got, tc.want)
			}
			if got := policy.PhaseOf(def, tc.in); got != tc.phase {
				t.Errorf("PhaseOf = %d, want %d", got, tc.phase)
			}
		})
	}
}
