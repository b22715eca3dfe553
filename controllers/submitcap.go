package controllers

import (
	"slices"
	"sync"
	"time"
)

// submitCap keeps the requests of spec.submit within the methods' own quota (60 a minute per
// project by default): at most n of them arrive at the server in any window.
//
// It is a sliding window rather than a token bucket: a bucket refilled at n per window lets its
// burst through on top of the refill, n + burst in one window, and the quota counts requests per
// minute. Each of the n slots is held by one request from the moment it is granted until a
// window after the call ended. A request arrives at the server before its call ends, and a slot
// is granted again only a window after that end, so two requests of one slot arrive at least a
// window apart, and no window sees more than n.
//
// A resource that finds no slot is told when to come back, spread by its place in the queue so
// that the resources waiting for one minute do not all come back at its end; it does not hold a
// worker meanwhile.
type submitCap struct {
	n      int
	window time.Duration
	now    func() time.Time

	mu sync.Mutex
	// freeAt is, per slot, when it may be granted again; zero for a slot never used.
	freeAt []time.Time
	// inFlight marks the slots whose call has not ended: they free a window after it ends.
	inFlight []bool
	// queue holds the keys denied and not yet granted, with their place (earlier denials come
	// back first) and when they are expected back. One that does not come back (its request
	// turned invalid, was cancelled, or its resource went away) stops counting once it is well
	// overdue, so it cannot hold the others back.
	queue  map[string]queued
	ticket uint64
}

type queued struct {
	ticket uint64
	back   time.Time
}

// overdueGrace is how long after its turn a queued caller still keeps its place.
const overdueGrace = 5 * time.Second

func newSubmitCap(n int, window time.Duration, now func() time.Time) *submitCap {
	return &submitCap{n: n, window: window, now: now,
		freeAt: make([]time.Time, n), inFlight: make([]bool, n), queue: map[string]queued{}}
}

// take grants key a slot, or says how long to wait before asking again. A nil cap grants
// every request (slot -1).
func (c *submitCap) take(key string) (slot int, wait time.Duration, ok bool) {
	if c == nil {
		return -1, 0, true // no cap
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	best := -1
	for i := range c.freeAt {
		if !c.inFlight[i] && !c.freeAt[i].After(now) && (best < 0 || c.freeAt[i].Before(c.freeAt[best])) {
			best = i
		}
	}
	if best >= 0 {
		delete(c.queue, key)
		c.inFlight[best] = true
		return best, 0, true
	}
	q, ok := c.queue[key]
	if !ok {
		c.ticket++
		q.ticket = c.ticket
	}
	ahead := 0
	for k, other := range c.queue {
		switch {
		case k != key && now.Sub(other.back) > overdueGrace:
			delete(c.queue, k)
		case other.ticket < q.ticket:
			ahead++
		}
	}
	wait = c.turn(ahead, now) + 10*time.Millisecond
	q.back = now.Add(wait)
	c.queue[key] = q
	return -1, wait, false
}

// turn is how long until a slot frees for the caller with ahead callers before it. A slot in
// flight frees a window after its call ends, so at least a window from now.
func (c *submitCap) turn(ahead int, now time.Time) time.Duration {
	free := make([]time.Time, c.n)
	for i, t := range c.freeAt {
		if c.inFlight[i] {
			t = now.Add(c.window)
		}
		free[i] = t
	}
	slices.SortFunc(free, func(a, b time.Time) int { return a.Compare(b) })
	at := free[ahead%c.n].Add(time.Duration(ahead/c.n) * c.window)
	return max(at.Sub(now), 0)
}

// done releases a slot whose request was sent: it frees a window after now, when the call ended.
func (c *submitCap) done(slot int) { c.release(slot, true) }

// cancel gives back a slot whose request was not sent: it is free again at once.
func (c *submitCap) cancel(slot int) { c.release(slot, false) }

func (c *submitCap) release(slot int, sent bool) {
	if c == nil || slot < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight[slot] = false
	if sent {
		c.freeAt[slot] = c.now().Add(c.window)
	}
}

// forget drops key from the queue, when its resource is deleted or finished.
func (c *submitCap) forget(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.queue, key)
}
