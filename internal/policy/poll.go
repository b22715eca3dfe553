package policy

import (
	"math"
	"time"
)

// PollConfig is the operator-wide polling envelope.
type PollConfig struct {
	// Min is the shortest time between two polls of one operation (--min-poll-interval).
	Min time.Duration
	// Max is the longest time between two polls (--max-poll-interval); spec.pollInterval may
	// lower it for one resource, never below Min.
	Max time.Duration
	// AgeFactor scales the interval with the operation's age: a solve that has run for ten
	// minutes is polled about every AgeFactor*10 minutes. Long solves then cost a few dozen
	// reads in all, instead of one a second.
	AgeFactor float64
}

// DefaultPollConfig polls a 30-minute solve about 35 times (the official LRO poller, which
// doubles from 1 s to a 60 s cap, sends about 60 reads for the same solve).
var DefaultPollConfig = PollConfig{Min: time.Second, Max: 5 * time.Minute, AgeFactor: 0.2}

// PollInput is what the next-poll decision depends on.
type PollInput struct {
	Now time.Time
	// Started is when the operation was first observed (or the resource created).
	Started time.Time
	// CancelAcceptedAt is when the server accepted a cancel of the still running operation:
	// polls then follow the answer closely (not the first attempt, which failed attempts may
	// have put long before it).
	CancelAcceptedAt *time.Time
	// SpecCap is spec.pollInterval, if set.
	SpecCap time.Duration
	// Failure is the last call's failure (nil when it succeeded), and Failures how many calls in
	// a row have failed.
	Failure  *Failure
	Failures int
	// Jitter is a number in [0,1) from the caller's random source; it spreads polls of many
	// resources created together by up to ±10% (before a known deadline by -10% to 0, so
	// that the age schedule's promise holds).
	Jitter float64
	// FairShare is how often the shared call budget can read each tracked operation (tracked
	// operations / calls a second). A running operation is not read more often: a young
	// operation's fast early reads would otherwise take the calls that operations never read
	// yet, and cancels, are waiting for.
	FairShare time.Duration
	// Deadline is when the solve must end at the latest: when it started plus its request's
	// timeout (zero: not known). The server answers before it, and large problems use most of
	// it, so the answer is most likely just before the deadline.
	Deadline time.Time
	// Sparse reads before the deadline about a fifth of the timeout apart instead of by the
	// age (spec.pollBeforeDeadline: Sparse): for solves that use their whole timeout.
	Sparse bool
}

// Phase is where a solve with a known deadline stands on its schedule.
type Phase int

const (
	// NoDeadline: the deadline is not known; reads follow the solve's age.
	NoDeadline Phase = iota
	// BeforeDeadline: reads follow the age (an early finish is seen within AgeFactor of the
	// solve's age), but none is planned past the deadline: the last one comes just after it.
	BeforeDeadline
	// AtDeadline: the deadline has just passed and the answer is due: reads come closely
	// (Min, doubling) for DeadlineWindow.
	AtDeadline
	// PastDeadline: the solve ran longer than its deadline said; reads follow the age again.
	PastDeadline
)

// JustAfter is how long after the deadline the first read at it comes: the server writes the
// answer as the deadline ends.
const JustAfter = time.Second

// DeadlineWindow is how long after the deadline reads stay close: long enough for a server
// that finishes a little late, short enough that a solve that overran its deadline by far is
// not read every few seconds.
func DeadlineWindow(c PollConfig) time.Duration { return max(30*time.Second, 30*c.Min) }

// PhaseOf says where in.Now stands against in.Deadline.
func PhaseOf(c PollConfig, in PollInput) Phase {
	switch {
	case in.Deadline.IsZero():
		return NoDeadline
	case in.Now.Before(in.Deadline):
		return BeforeDeadline
	case in.Now.Sub(in.Deadline) < DeadlineWindow(c):
		return AtDeadline
	}
	return PastDeadline
}

// Saturated reports whether the budget cannot read every operation within the configured
// longest interval: polls then come every FairShare, later than --max-poll-interval says.
func Saturated(c PollConfig, fairShare time.Duration) bool { return fairShare > c.Max }

// NextPoll says how long to wait before reading the operation again.
func NextPoll(c PollConfig, in PollInput) time.Duration {
	ceiling := c.Max
	if in.SpecCap > 0 && in.SpecCap < ceiling {
		ceiling = in.SpecCap
	}
	if ceiling < c.Min {
		ceiling = c.Min
	}

	var d time.Duration
	switch {
	case in.Failure != nil && in.Failure.Kind == RateLimited:
		// Quota is project-wide: come back no sooner than the server asked (RetryInfo), or
		// after 30 s doubling with each 429 in a row when it did not say.
		if in.Failure.RetryAfter > 0 {
			return in.Failure.RetryAfter // jitter would only shorten the server's request
		}
		return max(capped(backoff(MinRateLimitedDelay, in.Failures), c.Max), MinRateLimitedDelay)
	case in.Failure != nil && in.Failure.Kind.Permanent():
		// A person must act; the reconciler is woken early by spec or secret changes.
		// spec.pollInterval does not shorten this: it paces a running operation, not retries
		// of a call that cannot succeed.
		return clamp(jitter(c.Max, in.Jitter), c.Min, max(c.Max, c.Min))
	case in.Failure != nil:
		// A server that says when to come back (RetryInfo on UNAVAILABLE) is believed.
		d = capped(backoff(c.Min, in.Failures), ceiling)
		return max(clamp(jitter(d, in.Jitter), c.Min, ceiling), in.Failure.RetryAfter)
	case in.CancelAcceptedAt != nil:
		// Follow a cancel closely: about 1 s, 2 s, 4 s ... after it was accepted.
		d = capped(max(in.Now.Sub(*in.CancelAcceptedAt), c.Min), ceiling)
	default:
		age := max(in.Now.Sub(in.Started), 0)
		d = capped(max(time.Duration(float64(age)*c.AgeFactor), c.Min), ceiling)
		switch PhaseOf(c, in) {
		case BeforeDeadline:
			// The deadline says when the answer comes at the latest: no read is planned
			// after it, and the budget's fair share does not delay the one just after it.
			until := in.Deadline.Sub(in.Now)
			if in.Sparse {
				return sparse(c, in)
			}
			d = clamp(jitterBelow(d, in.Jitter), c.Min, ceiling)
			if in.FairShare > d {
				d = jitter(in.FairShare, in.Jitter)
			}
			return min(d, until+JustAfter)
		case AtDeadline:
			// The answer is due: Min, doubling, after the deadline.
			return clamp(in.Now.Sub(in.Deadline)+JustAfter, c.Min, ceiling)
		}
		if in.FairShare > d {
			// No ceiling here: past it the budget cannot keep --max-poll-interval anyway,
			// and asking sooner only makes the reads compete.
			return jitter(in.FairShare, in.Jitter)
		}
	}
	return clamp(jitter(d, in.Jitter), c.Min, ceiling)
}

// SparseSteps is how many reads Sparse spreads over a timeout, the one just after it included.
const SparseSteps = 5

// sparse is the wait before a deadline for a solve expected to use its whole timeout: a step
// of a fifth of the timeout (no less than --max-poll-interval, no more than spec.pollInterval),
// or straight to just after the deadline once it is at most a step and a quarter away (and
// spec.pollInterval allows the wait): a read that near the deadline would rarely see an end
// that the one just after it does not.
func sparse(c PollConfig, in PollInput) time.Duration {
	step := max(in.Deadline.Sub(in.Started)/SparseSteps, c.Max)
	if in.SpecCap > 0 {
		step = min(step, in.SpecCap)
	}
	step = max(step, c.Min)
	until := in.Deadline.Sub(in.Now)
	toDeadline := until + JustAfter
	if until <= step+step/4 && (in.SpecCap == 0 || toDeadline <= max(in.SpecCap, c.Min)) {
		return toDeadline
	}
	d := max(jitterBelow(step, in.Jitter), in.FairShare)
	return min(d, toDeadline)
}

// clamp keeps jitter from pushing a wait outside [lo, hi].
func clamp(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }

// backoff doubles base for each failure after the first.
func backoff(base time.Duration, failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	f := float64(base) * math.Pow(2, float64(min(failures-1, 30)))
	if f > float64(math.MaxInt64/2) {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(f)
}

func capped(d, ceiling time.Duration) time.Duration { return min(d, ceiling) }

// jitterBelow scales d by a factor in [0.9, 1.0): it spreads reads as jitter does, but never
// waits longer than d, so that an early finish is seen within AgeFactor of the age, not 10 %
// past it.
func jitterBelow(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.1*r))
}

// jitter scales d by a factor in [0.9, 1.1).
func jitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}
