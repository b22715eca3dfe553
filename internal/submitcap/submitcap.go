// Package submitcap keeps the requests that start solves (spec.submit) within the methods' own
// quota, counted per project: at most n of them arrive at the server in any window, across
// restarts of the operator.
//
// It is a sliding window rather than a token bucket: a bucket refilled at n per window lets its
// burst through on top of the refill, n + burst in one window, and the quota counts requests per
// minute. Each project has n slots, each held by one request from the moment it is granted until
// a window after the call ended. A request arrives at the server before its call ends, and a
// slot is granted again only a window after that end, so two requests of one slot arrive at
// least a window apart, and no window sees more than n.
//
// A cap kept only in memory would forget, at every restart, the requests the previous process
// sent in the last window, and let n more through at once. So the first time a project asks
// for a slot, the cap reads what the record (status.submit.attemptedAt, stored before every
// request) holds of that project's recent attempts, and holds a slot for each as if its call
// had ended at the latest moment its request may have reached the server.
package submitcap

import (
	"slices"
	"sync"
	"time"
)

// DefaultLate is Config.Late when it is zero: the second attemptedAt is truncated to, the writes
// between the decision and the call, and the call itself up to its default deadline
// (--request-timeout, 15 s), with room to spare.
const DefaultLate = 30 * time.Second

// overdueGrace is how long after its turn a queued caller still keeps its place.
const overdueGrace = 5 * time.Second

// seedRetry is when a caller comes back after the record of its project could not be read.
const seedRetry = time.Second

// Seed returns the attemptedAt of the attempts recorded for project since the given time: the
// attempts whose request may still count against the project's quota. It is called once per
// project per process, when the project first asks for a slot, before any is granted to it; an
// error denies that caller, and the next one asks again.
type Seed func(project string, since time.Time) ([]time.Time, error)

// Config configures a Cap.
type Config struct {
	// N is the most requests per project that may arrive at the server in any Window.
	N int
	// Window is a minute when zero.
	Window time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
	// Seed reads the record of a project's recent attempts; nil reads none (and forgets, at a
	// restart, what the previous process sent).
	Seed Seed
	// Late bounds how long after its attemptedAt a recorded attempt's request may have reached
	// the server: attemptedAt is truncated to the second (up to 1 s early), and the request
	// goes out after the attempt is stored, within the call's own deadline. DefaultLate when
	// zero. An attempt held by a larger Late costs only waiting: the slot is never held longer
	// than a window after the project was seeded, since the process that sent it is gone by
	// then.
	Late time.Duration
}

// Cap is the submit cap. A nil *Cap grants every request.
type Cap struct {
	n      int
	window time.Duration
	late   time.Duration
	now    func() time.Time
	seed   Seed

	mu       sync.Mutex
	projects map[string]*project
	// queuedIn says which project's queue holds a key: one waits for the project of its latest
	// request only.
	queuedIn map[string]*project
	ticket   uint64
}

type project struct {
	name string

	// seeding serialises the first callers of the project around the read of its record, so
	// that none is granted a slot before what the record holds is in.
	seeding sync.Mutex
	seeded  bool // written under seeding, read under seeding

	// freeAt is, per slot, when it may be granted again; zero for a slot never used.
	freeAt []time.Time
	// inFlight marks the slots whose call has not ended: they free a window after it ends.
	inFlight []bool
	// queue holds the keys denied and not yet granted, with their place (earlier denials come
	// back first) and when they are expected back. One that does not come back (its request
	// turned invalid, was cancelled, or its resource went away) stops counting once it is well
	// overdue, so it cannot hold the others back.
	queue map[string]queued
}

type queued struct {
	ticket uint64
	back   time.Time
}

// Slot is a granted slot, given back with Done or Cancel. The zero Slot (from a nil Cap) is a
// slot of no cap.
type Slot struct {
	p *project
	i int
}

// New returns a cap of cfg.N requests per project per window, or nil (no cap) when N < 1.
func New(cfg Config) *Cap {
	if cfg.N < 1 {
		return nil
	}
	c := &Cap{n: cfg.N, window: cfg.Window, late: cfg.Late, now: cfg.Now, seed: cfg.Seed,
		projects: map[string]*project{}, queuedIn: map[string]*project{}}
	if c.window <= 0 {
		c.window = time.Minute
	}
	if c.late <= 0 {
		c.late = DefaultLate
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Take grants key a slot of project, or says how long to wait before asking again. A nil cap
// grants every request.
func (c *Cap) Take(key, project string) (slot Slot, wait time.Duration, ok bool) {
	if c == nil {
		return Slot{}, 0, true
	}
	p := c.project(project)
	if err := c.seedOnce(p); err != nil {
		return Slot{}, seedRetry, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if other := c.queuedIn[key]; other != nil && other != p {
		delete(other.queue, key)
		delete(c.queuedIn, key)
	}
	best := -1
	for i := range p.freeAt {
		if !p.inFlight[i] && !p.freeAt[i].After(now) && (best < 0 || p.freeAt[i].Before(p.freeAt[best])) {
			best = i
		}
	}
	if best >= 0 {
		delete(p.queue, key)
		delete(c.queuedIn, key)
		p.inFlight[best] = true
		return Slot{p: p, i: best}, 0, true
	}
	q, ok := p.queue[key]
	if !ok {
		c.ticket++
		q.ticket = c.ticket
	}
	ahead := 0
	for k, other := range p.queue {
		switch {
		case k != key && now.Sub(other.back) > overdueGrace:
			delete(p.queue, k)
			delete(c.queuedIn, k)
		case other.ticket < q.ticket:
			ahead++
		}
	}
	wait = c.turn(p, ahead, now) + 10*time.Millisecond
	q.back = now.Add(wait)
	p.queue[key] = q
	c.queuedIn[key] = p
	return Slot{}, wait, false
}

func (c *Cap) project(name string) *project {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.projects[name]
	if !ok {
		p = &project{name: name, freeAt: make([]time.Time, c.n), inFlight: make([]bool, c.n), queue: map[string]queued{}}
		c.projects[name] = p
	}
	return p
}

// seedOnce loads the record of p's recent attempts the first time p asks.
func (c *Cap) seedOnce(p *project) error {
	p.seeding.Lock()
	defer p.seeding.Unlock()
	if p.seeded {
		return nil
	}
	if c.seed == nil {
		p.seeded = true
		return nil
	}
	// Every recorded request of p reached the server, if at all, before now: this process has
	// sent none for p yet, and the one that did is gone.
	now := c.now()
	times, err := c.seed(p.name, now.Add(-c.window-c.late))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold(p, times, now)
	p.seeded = true
	return nil
}

// hold takes a slot of p for each recorded attempt whose request may still count at now, as if
// its call had ended at the latest moment the request may have arrived: attemptedAt + Late, or
// now if sooner. With more such attempts than slots, the n latest are enough: once the
// earliest of them is a window behind, so are all those before it.
func (c *Cap) hold(p *project, attempts []time.Time, now time.Time) {
	ends := make([]time.Time, 0, len(attempts))
	for _, t := range attempts {
		end := t.Add(c.late)
		if end.After(now) {
			end = now
		}
		if free := end.Add(c.window); free.After(now) {
			ends = append(ends, free)
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return b.Compare(a) }) // latest first
	for i := 0; i < len(ends) && i < c.n; i++ {
		if ends[i].After(p.freeAt[i]) {
			p.freeAt[i] = ends[i]
		}
	}
}

// turn is how long until a slot of p frees for the caller with ahead callers before it. A slot
// in flight frees a window after its call ends, so at least a window from now.
func (c *Cap) turn(p *project, ahead int, now time.Time) time.Duration {
	free := make([]time.Time, c.n)
	for i, t := range p.freeAt {
		if p.inFlight[i] {
			t = now.Add(c.window)
		}
		free[i] = t
	}
	slices.SortFunc(free, func(a, b time.Time) int { return a.Compare(b) })
	at := free[ahead%c.n].Add(time.Duration(ahead/c.n) * c.window)
	return max(at.Sub(now), 0)
}

// Done releases a slot whose request was sent: it frees a window after now, when the call
// ended.
func (c *Cap) Done(slot Slot) { c.release(slot, true) }

// Cancel gives back a slot whose request was not sent: it is free again at once.
func (c *Cap) Cancel(slot Slot) { c.release(slot, false) }

func (c *Cap) release(slot Slot, sent bool) {
	if c == nil || slot.p == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	slot.p.inFlight[slot.i] = false
	if sent {
		slot.p.freeAt[slot.i] = c.now().Add(c.window)
	}
}

// Forget drops key from the queue, when its resource is deleted or finished.
func (c *Cap) Forget(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.queuedIn[key]; p != nil {
		delete(p.queue, key)
		delete(c.queuedIn, key)
	}
}
