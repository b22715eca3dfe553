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
// urgent calls may spend, so a cancel is sent at once even while thousands of polls wait.
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
	// waiting are the keys denied and not yet granted; denied callers are spread over the time
	// the budget needs to serve all of them, so they do not come back in one herd.
	waiting map[string]struct{}
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
			return b.deny(key, b.pausedUntil.Sub(now)), false
		}
		need += b.reserve
	}
	if tokens := b.lim.TokensAt(now); tokens < need {
		deficit := need - tokens
		return b.deny(key, time.Duration(deficit/float64(b.lim.Limit())*float64(time.Second))), false
	}
	b.lim.AllowN(now, 1)
	delete(b.waiting, key)
	return 0, true
}

func (b *Budget) deny(key string, d time.Duration) time.Duration {
	b.waiting[key] = struct{}{}
	spread := float64(len(b.waiting)) / float64(b.lim.Limit()) * float64(time.Second)
	return d + time.Duration(b.rand()*spread) + 10*time.Millisecond
}

// Forget drops key from the waiting set, when its resource is deleted or finished.
func (b *Budget) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.waiting, key)
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
	return len(b.waiting)
}
