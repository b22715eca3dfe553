// Package budget holds the operator-wide budget of calls to the Route Optimization API.
//
// Every remote call, whatever resource it serves, takes a token from one bucket (--api-qps,
// --api-burst). Controller-runtime's RequeueAfter bypasses the work queue's rate limiter, so the
// budget is enforced here, right where calls are made, and a reconcile that finds no token
// returns at once with a delay instead of blocking a worker. The delay is the caller's place in
// line, so that coming back then it finds its token: every return too early costs a reconcile.
//
// Quota is per Google Cloud project, so RESOURCE_EXHAUSTED holds back the reads of that project
// only; the rate is the operator's own pacing, and stays shared.
package budget

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Priority orders callers. Cancels jump the queue: polls leave a reserve of tokens that only
// urgent calls may spend, no caller takes tokens that a caller of a higher class expected back
// needs, and callers wait only for their own class and those above it, so a cancel is sent at
// once, or after the cancels before it, even while thousands of polls wait; and an operation
// never read goes before any re-read. Within a class, callers are served in the order they were
// first denied.
type Priority int

const (
	// Poll is a routine status read.
	Poll Priority = iota
	// Submit is a request of spec.submit: it starts a solve. It goes after deadlines: a
	// deadline's read ahead of a submit delays that solve by one token, a burst of submits
	// ahead of a deadline would delay its result by the whole burst.
	Submit
	// Due is a read of an operation whose deadline has passed: its answer is due, and the
	// longer it waits the later the result shows. Deadlines compete in the order they came.
	Due
	// First is the first read of an operation: until it, the resource shows nothing of it.
	First
	// Urgent is a cancel, and the reads that confirm it.
	Urgent

	classes = int(Urgent) + 1
)

// Priorities lists the classes, lowest first, for metrics.
var Priorities = []Priority{Poll, Submit, Due, First, Urgent}

func (p Priority) String() string {
	switch p {
	case Urgent:
		return "urgent"
	case First:
		return "first"
	case Due:
		return "due"
	case Submit:
		return "submit"
	}
	return "poll"
}

// Budget is a token bucket shared by all reconciles. It is safe for concurrent use.
type Budget struct {
	mu      sync.Mutex
	lim     *rate.Limiter
	base    rate.Limit
	reserve float64
	// pausedUntil holds a project's polls and first reads back after RESOURCE_EXHAUSTED: quota
	// is per project, so one resource's 429 means every read of that project would get one too.
	pausedUntil map[string]time.Time
	// lines holds, per class, the callers denied and not yet granted. A caller is granted only
	// if the tokens cover those expected back before it too, and a denied one is told to come
	// back when the budget's rate will have made them. Callers of a paused project are not
	// expected before the pause ends, so they hold nobody back; one that does not come back (its
	// resource went away without Forget) is dropped once well overdue.
	lines [classes]*line
	// lastExpire is when the lines were last swept for callers long overdue.
	lastExpire time.Time
	// lastChange is when the rate last moved; it rises again only slowly.
	lastChange time.Time
	now        func() time.Time
}

// New returns a budget of qps calls a second with bursts of up to burst calls.
func New(qps float64, burst int) *Budget {
	burst = max(burst, 1)
	b := &Budget{
		lim:  rate.NewLimiter(rate.Limit(qps), burst),
		base: rate.Limit(qps),
		// The reserve must leave a poll at least one token of the bucket, or a burst of 1
		// would starve polls. The bucket then also holds what a line of polls keeps in it: a
		// poll's token, the reserve, and the cushion of as much again (see TakeFor).
		reserve:     min(float64(burst)/4, 5, float64(burst)-1),
		pausedUntil: map[string]time.Time{},
		now:         time.Now,
	}
	for i := range b.lines {
		b.lines[i] = newLine()
	}
	return b
}

// Take is TakeFor of one call, of the unknown project "".
func (b *Budget) Take(key string, p Priority) (wait time.Duration, ok bool) {
	return b.TakeFor(key, "", p, 1)
}

// TakeN is TakeFor of the unknown project "".
func (b *Budget) TakeN(key string, p Priority, n int) (wait time.Duration, ok bool) {
	return b.TakeFor(key, "", p, n)
}

// TakeFor asks for n calls at once for key, whose calls count against the quota of project
// ("" when unknown): all of them, or none; n is at most Burst. A cancel takes its confirming
// read with it, so that read never waits behind other cancels. It returns ok, or how long the
// caller should wait before asking again: its place in line, so that coming back then it is
// granted, unless calls of a higher class took the tokens meanwhile. A caller that comes back,
// early or late, keeps its place.
func (b *Budget) TakeFor(key, project string, p Priority, n int) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Sub(b.lastExpire) >= expireEvery {
		b.expire(now)
	}
	// A caller whose class changed goes to the back of its new class.
	for c := range b.lines {
		if Priority(c) != p {
			b.lines[c].remove(key)
		}
	}

	if p < Urgent && b.paused(project, now) {
		// When the pause ends, the project's callers before this one go first.
		ahead := b.ahead(key, p, sameProject(project))
		return b.deny(key, project, p, n, now, b.pausedUntil[project].Sub(now)+b.rateTime(float64(ahead))), false
	}
	counted := b.expected(now)
	ahead := b.ahead(key, p, counted)
	tokens := b.lim.TokensAt(now)
	if need := float64(ahead+n) + b.reserveFor(p); tokens < need && !b.spare(key, p, n, tokens, counted) {
		if ahead > 0 {
			// A caller with others before it waits for the reserve twice over. The second is
			// a cushion: a few calls of a higher class arriving meanwhile would otherwise push
			// back every caller in line, each denied once more when it comes.
			need += b.reserveFor(p)
		}
		return b.deny(key, project, p, n, now, b.rateTime(need-tokens)), false
	}
	b.lim.AllowN(now, n)
	b.lines[p].remove(key)
	return 0, true
}

// reserveFor is what class p must leave in the bucket: the reserve for urgent calls.
func (b *Budget) reserveFor(p Priority) float64 {
	if p < Urgent {
		return b.reserve
	}
	return 0
}

// ahead is the tokens needed by the counted callers served before key of class p: all of those
// of the classes above, and those of class p denied before key.
func (b *Budget) ahead(key string, p Priority, counted func(Priority, string) bool) int {
	n := 0
	for c := p; c <= Urgent; c++ {
		of := func(project string) bool { return counted(c, project) }
		if c == p {
			n += b.lines[c].needBefore(key, of)
		} else {
			n += b.lines[c].need(of)
		}
	}
	return n
}

// spare reports whether key may have n tokens out of turn. A full bucket throws away what it
// makes, so the tokens of callers that did not come for them (late, or of a project paused since
// they were told when to come) go to whoever asks, as long as the caller served next still
// finds its own.
func (b *Budget) spare(key string, p Priority, n int, tokens float64, counted func(Priority, string) bool) bool {
	if tokens < float64(b.lim.Burst()) {
		return false
	}
	next := b.next(key, p, counted)
	return next != nil && tokens-float64(n) >= b.reserveFor(p)+float64(next.n)
}

// next is the first of the counted callers served before key of class p, or nil.
func (b *Budget) next(key string, p Priority, counted func(Priority, string) bool) *waiter {
	for c := Urgent; c >= p; c-- {
		if w := b.lines[c].front(func(project string) bool { return counted(c, project) }); w != nil {
			if w.key == key {
				return nil
			}
			return w
		}
	}
	return nil
}

// expected counts the callers that may be served before now's pauses end: urgent ones, and the
// others of projects not paused.
func (b *Budget) expected(now time.Time) func(Priority, string) bool {
	return func(c Priority, project string) bool { return c == Urgent || !b.paused(project, now) }
}

// sameProject counts the reads of project, which its pause holds back.
func sameProject(project string) func(Priority, string) bool {
	return func(c Priority, of string) bool { return c < Urgent && of == project }
}

func (b *Budget) paused(project string, now time.Time) bool {
	until, ok := b.pausedUntil[project]
	return ok && now.Before(until)
}

// rateTime is how long the budget's current rate takes for n calls.
func (b *Budget) rateTime(n float64) time.Duration {
	return time.Duration(n / float64(b.lim.Limit()) * float64(time.Second))
}

// comeBackMargin is added to every wait: the caller's timer and the bucket's arithmetic round
// differently, and a caller back a hair too early would be denied.
const comeBackMargin = 10 * time.Millisecond

// deny keeps key in line in class p and tells it to come back after d.
func (b *Budget) deny(key, project string, p Priority, n int, now time.Time, d time.Duration) time.Duration {
	wait := d + comeBackMargin
	b.lines[p].add(key, project, n, now.Add(wait))
	return wait
}

// overdueGrace is how long after its time a waiting caller still holds others back.
const overdueGrace = 5 * time.Second

// expireEvery is how often Take sweeps the lines for callers long overdue: the sweep walks them
// all.
const expireEvery = time.Second

// expire drops the callers long overdue, and the pauses that are over.
func (b *Budget) expire(now time.Time) {
	for _, l := range b.lines {
		l.removeOverdue(now, overdueGrace)
	}
	for project, until := range b.pausedUntil {
		if !now.Before(until) {
			delete(b.pausedUntil, project)
		}
	}
	b.lastExpire = now
}

// Forget drops key from the lines, when its resource is deleted or finished.
func (b *Budget) Forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		l.remove(key)
	}
}

// Pause is PauseProject of the unknown project "".
func (b *Budget) Pause(d time.Duration) {
	b.PauseProject("", d)
}

// PauseProject reacts to RESOURCE_EXHAUSTED with RetryInfo: the project's reads wait for the
// time the server named, and not longer; the rate stays, so the backlog drains at the full
// budget once the pause is over. Urgent calls, and the calls of other projects, do not wait.
func (b *Budget) PauseProject(project string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pause(project, b.now().Add(d))
}

func (b *Budget) pause(project string, until time.Time) {
	if until.After(b.pausedUntil[project]) {
		b.pausedUntil[project] = until
	}
}

// Throttle is ThrottleProject of the unknown project "".
func (b *Budget) Throttle(d time.Duration) {
	b.ThrottleProject("", d)
}

// ThrottleProject reacts to RESOURCE_EXHAUSTED without RetryInfo, which leaves the budget to
// guess: the project's reads pause for d, and the rate of the whole budget, the operator's own
// pacing, halves (down to a tenth of the configured rate). Recover brings it back.
func (b *Budget) ThrottleProject(project string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.pause(project, now.Add(d))
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

// Waiting is how many keys are waiting for a token, those of paused projects included.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(b.now())
	n := 0
	for _, l := range b.lines {
		n += l.len()
	}
	return n
}

// WaitingFor is how many keys of class p are waiting for a token.
func (b *Budget) WaitingFor(p Priority) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(b.now())
	return b.lines[p].len()
}
