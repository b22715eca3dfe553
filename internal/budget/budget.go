// Package budget holds the operator-wide budget of calls to the Route Optimization API.
//
// Every remote call, whatever resource it serves, takes a token from one bucket (--api-qps,
// --api-burst). Controller-runtime's RequeueAfter bypasses the work queue's rate limiter, so the
// budget is enforced here, right where calls are made, and a reconcile that finds no token
// returns at once with a delay instead of blocking a worker.
package budget

import (
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Priority orders callers. Cancels jump the queue: polls leave a reserve of tokens that only
// urgent calls may spend, no poll is granted while an urgent caller waits, and urgent callers
// wait only for each other, so a cancel is sent at once, or after the other cancels, even
// while thousands of polls wait.
type Priority int

const (
	// Poll is a routine status read.
	Poll Priority = iota
	// Urgent is a cancel, and the reads that confirm it.
	Urgent
)

func (p Priority) String() string {
	if p == Urgent {
		return "urgent"
	}
	return "poll"
}

// Budget is a token bucket shared by all reconciles. It is safe for concurrent use.
type Budget struct {
	mu      sync.Mutex
	lim     *rate.Limiter
	base    rate.Limit
	reserve float64
	// pausedUntil holds polls back after RESOURCE_EXHAUSTED: quota is per project, so one
	// resource's 429 means every poll would get one too.
	pausedUntil time.Time
	// waiting are the poll keys denied and not yet granted; denied callers are spread over the
	// time the budget needs to serve all of them, so they do not come back in one herd.
	waiting map[string]struct{}
	// urgent are the urgent keys denied and not yet granted, with when each should be back.
	// Polls wait while any of them does; one that does not come back (its resource went
	// away without Forget) stops counting once it is well overdue, so it cannot hold polls.
	urgent map[string]time.Time
	// lastChange is when the rate last moved; it rises again only slowly.
	lastChange time.Time
	now        func() time.Time
	rand       func() float64
}

// New returns a budget of qps calls a second with bursts of up to burst calls.
func New(qps float64, burst int) *Budget {
	burst = max(burst, 1)
	return &Budget{
		lim:  rate.NewLimiter(rate.Limit(qps), burst),
		base: rate.Limit(qps),
		// The reserve must leave a poll at least one token of the bucket, or a burst of 1
		// would starve polls.
		reserve: min(float64(burst)/4, 5, float64(burst)-1),
		waiting: map[string]struct{}{},
		urgent:  map[string]time.Time{},
		now:     time.Now,
		rand:    rand.Float64,
	}
}

// Take asks for one call for key. It returns ok, or how long the caller should wait before
// asking again.
func (b *Budget) Take(key string, p Priority) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()

	need := 1.0
	if p == Poll {
		if now.Before(b.pausedUntil) {
			return b.deny(key, p, b.pausedUntil.Sub(now)), false
		}
		if n := b.urgentWaiting(now); n > 0 {
			// Urgent callers first: they are served at the budget's rate, then polls.
			return b.deny(key, p, b.rateTime(float64(n))), false
		}
		need += b.reserve
	}
	if tokens := b.lim.TokensAt(now); tokens < need {
		return b.deny(key, p, b.rateTime(need-tokens)), false
	}
	b.lim.AllowN(now, 1)
	delete(b.waiting, key)
	delete(b.urgent, key)
	return 0, true
}

// rateTime is how long the budget's current rate takes for n calls.
func (b *Budget) rateTime(n float64) time.Duration {
	return time.Duration(n / float64(b.lim.Limit()) * float64(time.Second))
}

// deny records key as waiting and says when to come back: after d, spread over the time the
// budget needs for the callers that go before or with this one (for an urgent caller, the
// other urgent ones only).
func (b *Budget) deny(key string, p Priority, d time.Duration) time.Duration {
	ahead := len(b.urgent)
	if p == Urgent {
		delete(b.waiting, key)
	} else {
		delete(b.urgent, key)
		b.waiting[key] = struct{}{}
		ahead += len(b.waiting)
	}
	wait := d + time.Duration(b.rand()*float64(b.rateTime(float64(ahead)))) + 10*time.Millisecond
	if p == Urgent {
		b.urgent[key] = b.now().Add(wait)
	}
	return wait
}

// overdueGrace is how long after its time an urgent caller still holds polls back.
const overdueGrace = 5 * time.Second

// urgentWaiting counts the urgent callers still expected back, and drops those long overdue.
func (b *Budget) urgentWaiting(now time.Time) int {
	for key, back := range b.urgent {
		if now.Sub(back) > overdueGrace {
			delete(b.urgent, key)
		}
	}
	return len(b.urgent)
}

// Forget drops key from the waiting set, when its resource is deleted or finished.
func (b *Budget) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.waiting, key)
	delete(b.urgent, key)
}

// Throttle reacts to RESOURCE_EXHAUSTED: polls pause for d and the rate halves (down to a
// tenth of the configured rate). Recover brings it back.
func (b *Budget) Throttle(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if until := now.Add(d); until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
	b.lim.SetLimitAt(now, max(b.lim.Limit()/2, b.base/10))
	b.lastChange = now
}

// recoverEvery is how often a throttled rate may rise by a quarter.
const recoverEvery = 10 * time.Second

// Recover raises a throttled rate by a quarter, at most once every ten seconds, up to the
// configured rate; callers call it after each successful call.
func (b *Budget) Recover() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if cur := b.lim.Limit(); cur < b.base && now.Sub(b.lastChange) >= recoverEvery {
		b.lim.SetLimitAt(now, min(cur*1.25, b.base))
		b.lastChange = now
	}
}

// Rate is the current rate in calls a second, for the budget metric.
func (b *Budget) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(b.lim.Limit())
}

// Waiting is how many keys are waiting for a token.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting) + len(b.urgent)
}
