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
// urgent calls may spend, no lower class is granted while a higher one waits, and callers wait
// only for their own class and those above it, so a cancel is sent at once, or after the other
// cancels, even while thousands of polls wait; and an operation never read goes before any
// re-read.
type Priority int

const (
	// Poll is a routine status read.
	Poll Priority = iota
	// First is the first read of an operation: until it, the resource shows nothing of it.
	First
	// Urgent is a cancel, and the reads that confirm it.
	Urgent

	classes = int(Urgent) + 1
)

// Priorities lists the classes, lowest first, for metrics.
var Priorities = []Priority{Poll, First, Urgent}

func (p Priority) String() string {
	switch p {
	case Urgent:
		return "urgent"
	case First:
		return "first"
	}
	return "poll"
}

// Budget is a token bucket shared by all reconciles. It is safe for concurrent use.
type Budget struct {
	mu      sync.Mutex
	lim     *rate.Limiter
	base    rate.Limit
	reserve float64
	// pausedUntil holds polls and first reads back after RESOURCE_EXHAUSTED: quota is per
	// project, so one resource's 429 means every read would get one too.
	pausedUntil time.Time
	// waiting holds, per class, the keys denied and not yet granted, with when each should be
	// back. Denied callers are spread over the time the budget needs for all of their class and
	// the classes above, so they do not come back in one herd. A class waits while any caller
	// of a higher one is expected back; one that does not come back (its resource went away
	// without Forget) stops counting once it is well overdue, so it cannot hold the others.
	waiting [classes]map[string]time.Time
	// lastChange is when the rate last moved; it rises again only slowly.
	lastChange time.Time
	now        func() time.Time
	rand       func() float64
}

// New returns a budget of qps calls a second with bursts of up to burst calls.
func New(qps float64, burst int) *Budget {
	burst = max(burst, 1)
	b := &Budget{
		lim:  rate.NewLimiter(rate.Limit(qps), burst),
		base: rate.Limit(qps),
		// The reserve must leave a poll at least one token of the bucket, or a burst of 1
		// would starve polls.
		reserve: min(float64(burst)/4, 5, float64(burst)-1),
		now:     time.Now,
		rand:    rand.Float64,
	}
	for i := range b.waiting {
		b.waiting[i] = map[string]time.Time{}
	}
	return b
}

// Take asks for one call for key. It returns ok, or how long the caller should wait before
// asking again.
func (b *Budget) Take(key string, p Priority) (wait time.Duration, ok bool) {
	return b.TakeN(key, p, 1)
}

// TakeN asks for n calls at once for key: all of them, or none. A cancel takes its confirming
// read with it, so that read never waits behind other cancels.
func (b *Budget) TakeN(key string, p Priority, n int) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()

	need := float64(n)
	if p < Urgent {
		if now.Before(b.pausedUntil) {
			return b.deny(key, p, b.pausedUntil.Sub(now)), false
		}
		if ahead := b.expectedAbove(p, now); ahead > 0 {
			// Higher classes first: they are served at the budget's rate, then this one.
			return b.deny(key, p, b.rateTime(float64(ahead))), false
		}
		need += b.reserve
	}
	if tokens := b.lim.TokensAt(now); tokens < need {
		return b.deny(key, p, b.rateTime(need-tokens)), false
	}
	b.lim.AllowN(now, n)
	b.drop(key)
	return 0, true
}

// rateTime is how long the budget's current rate takes for n calls.
func (b *Budget) rateTime(n float64) time.Duration {
	return time.Duration(n / float64(b.lim.Limit()) * float64(time.Second))
}

// deny records key as waiting in class p and says when to come back: after d, spread over the
// time the budget needs for the callers that go before or with this one.
func (b *Budget) deny(key string, p Priority, d time.Duration) time.Duration {
	b.drop(key)
	ahead := 1 // this caller
	for c := p; c <= Urgent; c++ {
		ahead += len(b.waiting[c])
	}
	wait := d + time.Duration(b.rand()*float64(b.rateTime(float64(ahead)))) + 10*time.Millisecond
	b.waiting[p][key] = b.now().Add(wait)
	return wait
}

func (b *Budget) drop(key string) {
	for _, m := range b.waiting {
		delete(m, key)
	}
}

// overdueGrace is how long after its time a waiting caller still holds lower classes back.
const overdueGrace = 5 * time.Second

// expectedAbove counts the callers of classes above p still expected back, and drops those
// long overdue.
func (b *Budget) expectedAbove(p Priority, now time.Time) int {
	n := 0
	for c := p + 1; c <= Urgent; c++ {
		for key, back := range b.waiting[c] {
			if now.Sub(back) > overdueGrace {
				delete(b.waiting[c], key)
			}
		}
		n += len(b.waiting[c])
	}
	return n
}

// Forget drops key from the waiting sets, when its resource is deleted or finished.
func (b *Budget) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drop(key)
}

// Pause reacts to RESOURCE_EXHAUSTED with RetryInfo: reads wait for the time the server
// named, and not longer; the rate stays, so the backlog drains at the full budget once the
// pause is over. Urgent calls do not wait.
func (b *Budget) Pause(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pauseLocked(d)
}

func (b *Budget) pauseLocked(d time.Duration) {
	if until := b.now().Add(d); until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
}

// Throttle reacts to RESOURCE_EXHAUSTED without RetryInfo, which leaves the budget to guess:
// reads pause for d and the rate halves (down to a tenth of the configured rate). Recover
// brings it back.
func (b *Budget) Throttle(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.pauseLocked(d)
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

// Burst is the most calls one TakeN can get.
func (b *Budget) Burst() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lim.Burst()
}

// Waiting is how many keys are waiting for a token.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.waiting {
		n += len(m)
	}
	return n
}

// WaitingFor is how many keys of class p are waiting for a token.
func (b *Budget) WaitingFor(p Priority) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting[p])
}
