package policy_test

import (
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// TestNextPollNeverAboveMax: Max is "the longest time between two polls", so no input except a
// 429 with RetryInfo may wait longer than max(Max, 30 s), jitter included.
func TestNextPollNeverAboveMax(t *testing.T) {
	bad := 0
	pollGrid(func(c policy.PollConfig, p policy.PollInput) {
		got := policy.NextPoll(c, p)
		hi := max(c.Max, policy.MinRateLimitedDelay)
		if got > hi {
			if bad++; bad <= 10 {
				t.Errorf("NextPoll = %v > max(Max, 30s) = %v for %s: the jitter is applied after the cap", got, hi, describe(c, p))
			}
		}
	})
	if bad > 0 {
		t.Errorf("%d inputs wait longer than max(Max, 30s)", bad)
	}
}

// TestNextPollPermanentNeverBelowMin: with --max-poll-interval equal (or close) to
// --min-poll-interval, which the operator accepts, a permanent failure must still wait at least Min.
func TestNextPollPermanentNeverBelowMin(t *testing.T) {
	for _, c := range []policy.PollConfig{
		{Min: 2 * time.Second, Max: 2 * time.Second, AgeFactor: 0.2},
		{Min: time.Minute, Max: 65 * time.Second, AgeFactor: 0.2},
	} {
		for _, k := range []policy.FailureKind{policy.Auth, policy.NotFound, policy.Rejected, policy.Unimplemented} {
			for _, j := range []float64{0, 0.25, 0.5, 0.999} {
				p := policy.PollInput{Now: pollStart, Started: pollStart, Failure: failure(k, 0), Failures: 1, Jitter: j}
				if got := policy.NextPoll(c, p); got < c.Min {
					t.Errorf("NextPoll = %v < Min %v for %s: the permanent branch returns jitter(Max) without the Min floor",
						got, c.Min, describe(c, p))
				}
			}
		}
	}
}
