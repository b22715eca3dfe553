package budget

import (
	"container/heap"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// near reports whether two waits are equal but for the bucket's rounding.
func near(a, b time.Duration) bool { return a-b <= time.Microsecond && b-a <= time.Microsecond }

// projectOf reads the project from a test key "project/name".
func projectOf(key string) string { return key[:strings.IndexByte(key, '/')] }

// TestPauseHoldsOnlyItsProject: quota is per project, so a 429 of project A holds back A's
// reads and nobody else's. 100 pollers of A and 500 of B keep the budget saturated; A is paused
// for two minutes, and twenty operations of A arrive during the pause. B must be served at the
// full rate meanwhile, A not at all, and A's callers must be served once the pause is over.
func TestPauseHoldsOnlyItsProject(t *testing.T) {
	const qps, burst = 5.0, 10
	b, clk := newTestBudget(qps, burst)
	q := &visits{}
	for i := range 100 {
		heap.Push(q, visit{at: epoch.Add(time.Duration(i) * time.Millisecond), key: fmt.Sprintf("A/poll-%d", i), p: Poll})
	}
	for i := range 500 {
		heap.Push(q, visit{at: epoch.Add(time.Duration(i) * time.Millisecond), key: fmt.Sprintf("B/poll-%d", i), p: Poll})
	}
	pauseAt := epoch.Add(30 * time.Second)
	pauseEnd := pauseAt.Add(2 * time.Minute)
	for i := range 20 {
		heap.Push(q, visit{at: pauseAt.Add(10 * time.Second), key: fmt.Sprintf("A/new-%d", i), p: First})
	}
	paused := false
	grantsDuring := map[string]int{}
	servedAfter := map[string]bool{} // A's callers granted after the pause
	for q.Len() > 0 {
		v := heap.Pop(q).(visit)
		if v.at.After(pauseEnd.Add(time.Minute)) {
			break
		}
		clk.t = v.at
		if !paused && !v.at.Before(pauseAt) {
			b.PauseProject("A", pauseEnd.Sub(v.at))
			paused = true
		}
		project := projectOf(v.key)
		wait, ok := b.TakeFor(v.key, project, v.p, 1)
		if !ok {
			heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p})
			continue
		}
		switch {
		case paused && v.at.Before(pauseEnd):
			grantsDuring[project]++
		case paused && project == "A":
			servedAfter[v.key] = true
		}
		if v.p == Poll {
			heap.Push(q, visit{at: v.at.Add(time.Second), key: v.key, p: Poll})
		}
	}
	window := pauseEnd.Sub(pauseAt).Seconds()
	t.Logf("during the pause: %d calls of B, %d of A (full rate: %.0f); after it, %d of A's 120 callers served within a minute",
		grantsDuring["B"], grantsDuring["A"], qps*window, len(servedAfter))
	if want := 0.95 * qps * window; float64(grantsDuring["B"]) < want {
		t.Errorf("B was granted %d calls during A's pause of %v, want at least %.0f (the budget's rate)", grantsDuring["B"], pauseEnd.Sub(pauseAt), want)
	}
	if limit := qps*window + burst; float64(grantsDuring["B"]) > limit {
		t.Errorf("B was granted %d calls in %v, more than the budget allows (%.0f)", grantsDuring["B"], pauseEnd.Sub(pauseAt), limit)
	}
	if grantsDuring["A"] != 0 {
		t.Errorf("A was granted %d reads while paused", grantsDuring["A"])
	}
	if len(servedAfter) != 120 {
		t.Errorf("%d of A's 120 callers were granted in the minute after the pause, want all", len(servedAfter))
	}
}

// TestPauseSparesOtherProjects: during a pause of one project, another project's reads and
// everyone's urgent calls go at once; after it, the paused project's reads go again.
func TestPauseSparesOtherProjects(t *testing.T) {
	b, clk := newTestBudget(10, 20)
	b.PauseProject("p1", time.Minute)
	if _, ok := b.TakeFor("ns/a", "p1", Poll, 1); ok {
		t.Errorf("a poll of the paused project was granted")
	}
	if _, ok := b.TakeFor("ns/b", "p1", First, 1); ok {
		t.Errorf("a first read of the paused project was granted")
	}
	for _, p := range Priorities {
		if wait, ok := b.TakeFor("ns/c-"+p.String(), "p2", p, 1); !ok {
			t.Errorf("%v call of another project denied (wait %v) during p1's pause", p, wait)
		}
	}
	if wait, ok := b.TakeFor("ns/d", "p1", Urgent, 2); !ok {
		t.Errorf("urgent call of the paused project denied (wait %v)", wait)
	}
	clk.advance(time.Minute)
	if wait, ok := b.TakeFor("ns/a", "p1", Poll, 1); !ok {
		t.Errorf("poll of p1 denied (wait %v) when its pause ended", wait)
	}
}

// TestThrottleProject: a 429 without RetryInfo pauses that project's reads and slows the
// whole budget down, which is the operator's own pacing.
func TestThrottleProject(t *testing.T) {
	b, _ := newTestBudget(10, 20)
	b.ThrottleProject("p1", 30*time.Second)
	if got := b.Rate(); !approx(got, 5) {
		t.Errorf("rate %v after a throttle, want 5", got)
	}
	if wait, ok := b.TakeFor("ns/a", "p1", Poll, 1); ok || wait < 30*time.Second {
		t.Errorf("poll of the throttled project: granted %v, wait %v; want denied for the 30s pause", ok, wait)
	}
	if wait, ok := b.TakeFor("ns/b", "p2", Poll, 1); !ok {
		t.Errorf("poll of another project denied (wait %v)", wait)
	}
}

// TestUrgentFirstComeFirstServed: a cancel takes two tokens at once. One-token urgent reads
// that arrive after it must not keep the bucket below two: the cancel is granted when it comes
// back, before any read that arrived after it, and the reads go in the order they arrived.
func TestUrgentFirstComeFirstServed(t *testing.T) {
	const qps, burst = 0.5, 2
	b, clk := newTestBudget(qps, burst)
	if _, ok := b.TakeN("ns/drain", Urgent, 2); !ok {
		t.Fatal("a full bucket denied two tokens")
	}
	clk.advance(time.Second)
	wait, ok := b.TakeN("ns/cancel", Urgent, 2)
	if ok {
		t.Fatal("the cancel was granted from half a token")
	}
	q := &visits{{at: clk.t.Add(wait), key: "ns/cancel", p: Urgent}}
	const reads = 60
	for i := range reads {
		heap.Push(q, visit{at: clk.t.Add(time.Duration(i+1) * 500 * time.Millisecond), key: fmt.Sprintf("ns/read-%03d", i), p: Urgent})
	}
	cancelBack := clk.t.Add(wait)
	var order []string
	cancelDenied := 0
	for q.Len() > 0 {
		v := heap.Pop(q).(visit)
		if v.at.Sub(epoch) > time.Hour {
			break
		}
		clk.t = v.at
		n := 1
		if v.key == "ns/cancel" {
			n = 2
		}
		wait, ok := b.TakeN(v.key, Urgent, n)
		if !ok {
			if v.key == "ns/cancel" {
				cancelDenied++
			}
			heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p})
			continue
		}
		order = append(order, v.key)
		if v.key == "ns/cancel" && !v.at.Equal(cancelBack) {
			t.Errorf("the cancel was granted at %v, not when it came back at %v", v.at.Sub(epoch), cancelBack.Sub(epoch))
		}
	}
	if cancelDenied > 0 || len(order) == 0 || order[0] != "ns/cancel" {
		head := order[:min(len(order), 5)]
		t.Fatalf("the cancel was denied %d times when it came back; first grants %v: reads that arrived after it went first",
			cancelDenied, head)
	}
	if len(order) != reads+1 {
		t.Fatalf("%d of %d reads granted", len(order)-1, reads)
	}
	for i, key := range order[1:] {
		if want := fmt.Sprintf("ns/read-%03d", i); key != want {
			t.Fatalf("grant %d went to %s, want %s: urgent reads are served in the order they arrived", i+1, key, want)
		}
	}
}

// TestDeniedCallerGrantedAtItsReturn: a denied caller is told its place in line, so coming back
// when told it is granted. 1,000 pollers keep a budget of 5 calls/s saturated; each comes back
// exactly when told, and a second after each grant for its next poll. A caller's first ask of
// a poll is denied as long as others wait before it; coming back when told should not be. An
// operation never read arrives after five minutes: it goes before the polls still waiting.
func TestDeniedCallerGrantedAtItsReturn(t *testing.T) {
	const qps, callers = 5.0, 1000
	b, clk := newTestBudget(qps, 10)
	q := &visits{}
	for i := range callers {
		heap.Push(q, visit{at: epoch.Add(time.Duration(i) * time.Millisecond), key: fmt.Sprintf("ns/poll-%d", i), p: Poll})
	}
	firstAt := epoch.Add(5 * time.Minute)
	heap.Push(q, visit{at: firstAt, key: "ns/new", p: First})
	end := epoch.Add(20 * time.Minute)
	told := map[string]bool{} // keys that were denied and come back when told
	asks, returns, grants, firstDenials, pollsBeforeFirst := 0, 0, 0, 0, 0
	var firstGranted time.Time
	for q.Len() > 0 {
		v := heap.Pop(q).(visit)
		if v.at.After(end) {
			break
		}
		clk.t = v.at
		if told[v.key] {
			returns++
		} else {
			asks++
		}
		wait, ok := b.Take(v.key, v.p)
		if !ok {
			if v.p == First {
				firstDenials++
			}
			told[v.key] = true
			heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p})
			continue
		}
		delete(told, v.key)
		grants++
		if v.p == First {
			firstGranted = v.at
			continue
		}
		if firstGranted.IsZero() && !v.at.Before(firstAt) {
			pollsBeforeFirst++
		}
		heap.Push(q, visit{at: v.at.Add(time.Second), key: v.key, p: Poll})
	}
	t.Logf("%d grants, %d first asks, %d returns when told: %.2f Takes per grant, %.2f on return",
		grants, asks, returns, float64(asks+returns)/float64(grants), float64(returns)/float64(grants))
	if limit := 1.1 * float64(grants); float64(returns) > limit {
		t.Errorf("callers coming back when told made %d Take calls for %d grants, want at most %.0f", returns, grants, limit)
	}
	if firstGranted.IsZero() || firstDenials > 1 || pollsBeforeFirst > 0 {
		t.Errorf("the first read was granted %v after it arrived, denied %d times, with %d polls granted before it; "+
			"want granted when it comes back, before the polls", firstGranted.Sub(firstAt), firstDenials, pollsBeforeFirst)
	}
}

// TestPlaceKept: a caller that comes back, early or when told, keeps its place in line.
func TestPlaceKept(t *testing.T) {
	b, clk := newTestBudget(1, 4)
	b.TakeN("ns/drain", Urgent, 4)
	var waits []time.Duration
	for i := range 5 {
		wait, ok := b.Take(fmt.Sprintf("ns/poll-%d", i), Poll)
		if ok {
			t.Fatalf("poll %d granted from an empty bucket", i)
		}
		waits = append(waits, wait)
	}
	clk.advance(waits[2] / 2)
	again, _ := b.Take("ns/poll-2", Poll)
	if want := waits[2] - waits[2]/2; !near(again, want) {
		t.Errorf("poll 2 came back early and was told %v, want the %v left of its place", again, want)
	}
	// Asking again, it is still where it was, before poll 3.
	if again2, _ := b.Take("ns/poll-2", Poll); again2 != again {
		t.Errorf("poll 2 asked twice at once: told %v, then %v", again, again2)
	}
	if w3, _ := b.Take("ns/poll-3", Poll); !near(w3, waits[3]-waits[2]/2) {
		t.Errorf("poll 3 was told %v, want the %v left of its place", w3, waits[3]-waits[2]/2)
	}
	later, _ := b.Take("ns/poll-9", Poll)
	if later <= waits[4]-waits[2]/2 {
		t.Errorf("a newcomer was told %v, before the callers already waiting (the last in %v)", later, waits[4]-waits[2]/2)
	}
}

// TestGoneCallersExpire: a caller denied that never comes back (its resource went away without
// Forget) stops counting once well overdue, whatever its class: it is not counted as waiting,
// and holds nobody's place.
func TestGoneCallersExpire(t *testing.T) {
	for _, p := range Priorities {
		t.Run(p.String(), func(t *testing.T) {
			b, clk := newTestBudget(1, 2)
			b.TakeN("ns/drain", Urgent, 2)
			b.Forget("ns/drain")
			wait, ok := b.Take("ns/gone", p)
			if ok {
				t.Fatal("granted from an empty bucket")
			}
			clk.advance(wait + overdueGrace/2)
			if n := b.WaitingFor(p); n != 1 {
				t.Errorf("WaitingFor(%v) = %d shortly after its time, want 1 (it may still come)", p, n)
			}
			clk.advance(overdueGrace)
			if b.Waiting() != 0 || b.WaitingFor(p) != 0 {
				t.Errorf("Waiting() = %d, WaitingFor(%v) = %d well after the caller was due, want 0", b.Waiting(), p, b.WaitingFor(p))
			}
			// Two tokens: a newcomer of the same class has the bucket to itself.
			if wait, ok := b.Take("ns/next", p); !ok {
				t.Errorf("a newcomer was denied (wait %v): the gone caller still holds its place", wait)
			}
		})
	}
}

// TestClassChange: a caller whose class changes moves to the line of its new class.
func TestClassChange(t *testing.T) {
	b, _ := newTestBudget(1, 4)
	b.TakeN("ns/drain", Urgent, 4)
	b.Take("ns/op", Poll)
	b.Take("ns/op", Urgent)
	if b.WaitingFor(Poll) != 0 || b.WaitingFor(Urgent) != 1 {
		t.Errorf("waiting: %d polls, %d urgent; want the caller in the urgent line only", b.WaitingFor(Poll), b.WaitingFor(Urgent))
	}
}

// TestConcurrentUse: the budget is shared by all workers; run with -race.
func TestConcurrentUse(t *testing.T) {
	b := New(1000, 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			project := fmt.Sprintf("p%d", g%3)
			for i := range 300 {
				key := fmt.Sprintf("ns/op-%d", i%20)
				b.TakeFor(key, project, Priority(i%classes), 1+i%2)
				switch i % 50 {
				case 0:
					b.PauseProject(project, time.Millisecond)
				case 10:
					b.Forget(key)
				case 20:
					b.Waiting()
				case 30:
					b.ThrottleProject(project, time.Millisecond)
				case 40:
					b.Recover()
				}
			}
		})
	}
	wg.Wait()
}
