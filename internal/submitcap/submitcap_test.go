package submitcap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var epoch = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func TestQueue(t *testing.T) {
	clock := &fakeClock{t: epoch}
	c := New(Config{N: 3, Window: time.Minute, Now: clock.now})
	var slots []Slot
	for i := range 3 {
		slot, _, ok := c.Take(fmt.Sprint("r", i), "p")
		if !ok {
			t.Fatalf("r%d denied with a slot free", i)
		}
		slots = append(slots, slot)
	}
	clock.add(time.Second)
	for _, s := range slots {
		c.Done(s) // the three calls ended now: their slots free a minute from now
	}
	clock.add(time.Second)
	// Callers beyond the cap are told to come back when their turn comes, one window apart
	// for every n callers before them, not all at the same moment.
	for i, want := range []time.Duration{59 * time.Second, 59 * time.Second, 59 * time.Second, 119 * time.Second} {
		_, wait, ok := c.Take(fmt.Sprint("w", i), "p")
		if ok || wait < want || wait > want+time.Second {
			t.Errorf("w%d: ok=%v wait=%s, want denied for %s", i, ok, wait, want)
		}
	}
	// Asking again keeps one's place.
	if _, wait, _ := c.Take("w0", "p"); wait > 60*time.Second {
		t.Errorf("w0 asked again and was told %s", wait)
	}
	clock.add(59 * time.Second)
	slot, _, ok := c.Take("w0", "p")
	if !ok {
		t.Fatal("w0 denied once a slot freed")
	}
	// A slot given back unused is free at once.
	c.Cancel(slot)
	if _, _, ok := c.Take("w1", "p"); !ok {
		t.Error("a cancelled slot was not granted again")
	}
	c.Forget("w2")
	c.Forget("w3")
	var nilCap *Cap
	if _, _, ok := nilCap.Take("x", "p"); !ok {
		t.Error("no cap denied a submit")
	}
	nilCap.Done(Slot{})
	nilCap.Cancel(Slot{})
	nilCap.Forget("x")
	if New(Config{N: 0}) != nil {
		t.Error("N 0 set a cap")
	}
}

// TestProjectsAreIndependent: the quota is per project, so one project's burst, or its queue,
// holds back no other project.
func TestProjectsAreIndependent(t *testing.T) {
	type take struct {
		key, project string
		ok           bool
		wait         time.Duration // when denied: at least this, less than a second more
	}
	for _, tc := range []struct {
		name  string
		takes []take
	}{
		{"a full project denies only its own", []take{
			{"a1", "a", true, 0}, {"a2", "a", true, 0}, {"a3", "a", false, 60 * time.Second},
			{"b1", "b", true, 0}, {"b2", "b", true, 0}, {"b3", "b", false, 60 * time.Second},
		}},
		{"a queue in one project puts no one behind it in another", []take{
			{"a1", "a", true, 0}, {"a2", "a", true, 0},
			{"a3", "a", false, 60 * time.Second}, {"a4", "a", false, 60 * time.Second}, {"a5", "a", false, 120 * time.Second},
			{"b1", "b", true, 0}, {"b2", "b", true, 0}, {"b3", "b", false, 60 * time.Second},
		}},
		{"the project of a parent with a location is the project", []take{
			{"a1", policy.ProjectOf("projects/a/locations/global"), true, 0}, {"a2", policy.ProjectOf("projects/a"), true, 0},
			{"a3", policy.ProjectOf("projects/a/locations/us-central1"), false, 60 * time.Second},
		}},
		{"a key that moves to another project leaves the first queue", []take{
			{"a1", "a", true, 0}, {"a2", "a", true, 0},
			{"x", "a", false, 60 * time.Second}, {"y", "a", false, 60 * time.Second}, {"z", "a", false, 120 * time.Second},
			{"x", "b", true, 0},
			{"z", "a", false, 60 * time.Second}, // x no longer ahead of it in a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: epoch}
			c := New(Config{N: 2, Window: time.Minute, Now: clock.now})
			for _, tk := range tc.takes {
				slot, wait, ok := c.Take(tk.key, tk.project)
				if ok != tk.ok || (!ok && (wait < tk.wait || wait > tk.wait+time.Second)) {
					t.Fatalf("Take(%s, %s): ok=%v wait=%s, want ok=%v wait=%s", tk.key, tk.project, ok, wait, tk.ok, tk.wait)
				}
				if ok {
					c.Done(slot)
				}
			}
		})
	}
}

// TestSeed: the first time a project asks, the slots its recorded attempts may still count
// against are held.
func TestSeed(t *testing.T) {
	ago := func(d time.Duration) time.Time { return epoch.Add(-d) }
	for _, tc := range []struct {
		name     string
		late     time.Duration
		recorded map[string][]time.Time
		project  string
		granted  int           // of n=3, before the first denial
		wait     time.Duration // of the first denial: at least this, less than a second more
	}{
		{"nothing recorded", time.Second, nil, "p", 3, 60 * time.Second},
		{"one slot per attempt, free a window and Late after it", time.Second,
			map[string][]time.Time{"p": {ago(10 * time.Second), ago(30 * time.Second)}}, "p", 1, 31 * time.Second},
		{"another project's attempts hold nothing", time.Second,
			map[string][]time.Time{"q": {ago(time.Second), ago(2 * time.Second), ago(3 * time.Second)}}, "p", 3, 60 * time.Second},
		{"an attempt more than a window and Late ago holds nothing", time.Second,
			map[string][]time.Time{"p": {ago(61 * time.Second), ago(90 * time.Second), ago(59 * time.Second)}}, "p", 2, 2 * time.Second},
		{"more attempts than slots: the latest count", time.Second,
			map[string][]time.Time{"p": {ago(50 * time.Second), ago(10 * time.Second), ago(40 * time.Second), ago(20 * time.Second), ago(30 * time.Second)}}, "p", 0, 31 * time.Second},
		{"the request arrived before this process asked, however late it may have been", time.Minute,
			map[string][]time.Time{"p": {ago(5 * time.Second), ago(50 * time.Second)}}, "p", 1, 60 * time.Second},
		{"Late moves the end of a recent attempt no further than now", 30 * time.Second,
			map[string][]time.Time{"p": {ago(50 * time.Second), ago(45 * time.Second), ago(40 * time.Second)}}, "p", 0, 40 * time.Second},
		{"an attempt stamped ahead of this clock", time.Second,
			map[string][]time.Time{"p": {epoch.Add(3 * time.Second)}}, "p", 2, 60 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: epoch}
			var sinces []time.Time
			c := New(Config{N: 3, Window: time.Minute, Now: clock.now, Late: tc.late,
				Seed: func(project string, since time.Time) ([]time.Time, error) {
					sinces = append(sinces, since)
					var out []time.Time
					for _, at := range tc.recorded[project] {
						if at.After(since) {
							out = append(out, at)
						}
					}
					return out, nil
				}})
			granted := 0
			for {
				_, wait, ok := c.Take(fmt.Sprint("k", granted), tc.project)
				if !ok {
					if wait < tc.wait || wait > tc.wait+time.Second {
						t.Errorf("denied for %s, want %s", wait, tc.wait)
					}
					break
				}
				granted++
			}
			if granted != tc.granted {
				t.Errorf("%d granted, want %d", granted, tc.granted)
			}
			if want := epoch.Add(-time.Minute - tc.late); len(sinces) != 1 || !sinces[0].Equal(want) {
				t.Errorf("seed asked since %v, want once since %v", sinces, want)
			}
		})
	}
}

// TestSeedOnce: the record of a project is read once, before any slot of it is granted, by
// the first of its callers, and read again after an error.
func TestSeedOnce(t *testing.T) {
	clock := &fakeClock{t: epoch}
	var calls atomic.Int32
	release := make(chan struct{})
	fail := atomic.Bool{}
	fail.Store(true)
	c := New(Config{N: 2, Window: time.Minute, Now: clock.now, Seed: func(project string, since time.Time) ([]time.Time, error) {
		calls.Add(1)
		if project == "p" {
			<-release
		}
		if project == "bad" && fail.Load() {
			return nil, errors.New("cache not ready")
		}
		return []time.Time{epoch.Add(-time.Second)}, nil
	}})

	// Two callers of p while its record is being read: neither is granted before it is in.
	results := make(chan bool, 2)
	for i := range 2 {
		go func() {
			_, _, ok := c.Take(fmt.Sprint("k", i), "p")
			results <- ok
		}()
	}
	// Another project is not held up by p's record.
	if _, _, ok := c.Take("q1", "q"); !ok {
		t.Error("q denied while p's record was read")
	}
	select {
	case <-results:
		t.Fatal("a caller of p returned before its record was read")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	granted := 0
	for range 2 {
		if <-results {
			granted++
		}
	}
	if granted != 1 {
		t.Errorf("%d of the two callers granted, want 1: one slot of two is held by the record", granted)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("seed called %d times for p and q, want 2", n)
	}

	if _, wait, ok := c.Take("b1", "bad"); ok || wait != seedRetry {
		t.Errorf("granted (%v, %s) although the record could not be read", ok, wait)
	}
	fail.Store(false)
	if _, _, ok := c.Take("b1", "bad"); !ok {
		t.Error("denied once the record could be read")
	}
	if _, _, ok := c.Take("b2", "bad"); ok {
		t.Error("the recorded attempt of bad holds no slot")
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("seed called %d times, want 4: p, q, bad twice", n)
	}
}

// TestWindow sends from many callers of several projects at random times, each call taking a
// random time and arriving at the server at a random moment within it, and checks that no
// window of the server's clock sees more than n arrivals of one project.
func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		n        int
		window   time.Duration
		projects int
	}{{60, time.Minute, 1}, {5, time.Minute, 3}, {1, time.Minute, 2}, {40, 5 * time.Second, 4}} {
		t.Run(fmt.Sprintf("%d per %s, %d projects", tc.n, tc.window, tc.projects), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.n)))
			clock := &fakeClock{t: epoch}
			c := New(Config{N: tc.n, Window: tc.window, Now: clock.now})
			type call struct {
				slot     Slot
				end      time.Time
				finished bool
			}
			var calls []*call
			arrivals := map[string][]time.Time{}
			retryAt := map[string]time.Time{}
			for step := 0; step < 20000; step++ {
				clock.add(time.Duration(rng.IntN(200)) * time.Millisecond)
				now := clock.now()
				for _, cl := range calls {
					if !cl.finished && !now.Before(cl.end) {
						cl.finished = true // seen ended now, at most a step after it did
						c.Done(cl.slot)
					}
				}
				i := rng.IntN(3 * tc.n * tc.projects)
				key, project := fmt.Sprint("k", i), fmt.Sprint("p", i%tc.projects)
				if now.Before(retryAt[key]) {
					continue
				}
				slot, wait, ok := c.Take(key, project)
				if !ok {
					retryAt[key] = now.Add(wait)
					continue
				}
				if rng.IntN(10) == 0 {
					c.Cancel(slot) // nothing sent after all
					continue
				}
				d := time.Duration(rng.IntN(3000)) * time.Millisecond
				calls = append(calls, &call{slot: slot, end: now.Add(d)})
				arrivals[project] = append(arrivals[project], now.Add(time.Duration(rng.Int64N(int64(d)+1))))
			}
			for project, a := range arrivals {
				most := mostInWindow(a, tc.window)
				t.Logf("%s: %d calls over %s, at most %d in a window of %s", project, len(a), clock.now().Sub(epoch).Round(time.Second), most, tc.window)
				if most > tc.n {
					t.Errorf("%s: %d arrivals within %s, cap %d", project, most, tc.window, tc.n)
				}
				if len(a) < tc.n {
					t.Errorf("%s: only %d calls sent", project, len(a))
				}
			}
			if len(arrivals) != tc.projects {
				t.Errorf("calls sent for %d projects, want %d", len(arrivals), tc.projects)
			}
		})
	}
}

// mostInWindow is the most arrivals within any window: less than window apart.
func mostInWindow(arrivals []time.Time, window time.Duration) int {
	a := slices.Clone(arrivals)
	slices.SortFunc(a, func(x, y time.Time) int { return x.Compare(y) })
	most := 0
	for i, lo := 0, 0; i < len(a); i++ {
		for a[i].Sub(a[lo]) >= window {
			lo++
		}
		most = max(most, i-lo+1)
	}
	return most
}

// TestRestarts plays an operator killed and restarted again and again while resources of two
// projects wait to be sent, each process with a new cap seeded from the record its
// predecessors left (status.submit.attemptedAt, stored before each call), and checks that no
// window of the server's clock sees more than n arrivals of one project. Without the seed,
// each new process sends n at once, and the check must fail.
func TestRestarts(t *testing.T) {
	for _, tc := range []struct {
		n        int
		window   time.Duration
		rngSeed  uint64
		restarts int
	}{
		{5, time.Minute, 1, 10},
		{5, time.Minute, 2, 10},
		{4, time.Minute, 3, 6},
		{20, time.Minute, 4, 8},
		{1, time.Minute, 5, 12},
		{3, 10 * time.Second, 6, 20},
	} {
		t.Run(fmt.Sprintf("%d per %s, seed %d", tc.n, tc.window, tc.rngSeed), func(t *testing.T) {
			for _, seeded := range []bool{true, false} {
				most, sent, elapsed := simulateRestarts(tc.n, tc.window, tc.restarts, seeded, tc.rngSeed)
				t.Logf("seeded=%v: %d sent in %s, at most %d arrivals of one project in a window of %s",
					seeded, sent, elapsed.Round(time.Second), most, tc.window)
				switch {
				case seeded && most > tc.n:
					t.Errorf("%d arrivals of one project within %s across restarts, cap %d", most, tc.window, tc.n)
				case !seeded && most <= tc.n:
					t.Errorf("without the seed, at most %d arrivals in a window: the restarts do not test the seed", most)
				}
				if sent == 0 {
					t.Error("nothing sent")
				}
			}
		})
	}
}

// simulateRestarts runs processes one after the other, each killed after a random while, the
// last left to send everything. A resource is sent once: its attempt is recorded before the
// call (attemptedAt from the decision, a little before the slot is granted), the request
// arrives during the call, and a kill loses the requests that had not arrived yet. It returns
// the most arrivals of one project in any window, how many arrived, and how long it all took.
func simulateRestarts(n int, window time.Duration, restarts int, seeded bool, rngSeed uint64) (most, sent int, elapsed time.Duration) {
	const (
		resources   = 60
		projects    = 2
		maxDecision = 500 * time.Millisecond  // from the decision (attemptedAt) to the grant
		maxArrival  = 1500 * time.Millisecond // from the grant to the arrival
		maxEnd      = 1500 * time.Millisecond // from the arrival to the call's end
		late        = time.Second + maxDecision + maxArrival
	)
	rng := rand.New(rand.NewPCG(rngSeed, 99))
	clock := &fakeClock{t: epoch}
	recorded := map[string]time.Time{} // key: attemptedAt
	projectOf := func(key string) string {
		var i int
		_, _ = fmt.Sscanf(key, "r%d", &i)
		return fmt.Sprint("p", i%projects)
	}
	seed := func(project string, since time.Time) ([]time.Time, error) {
		var out []time.Time
		for key, at := range recorded {
			if projectOf(key) == project && at.After(since) {
				out = append(out, at)
			}
		}
		return out, nil
	}
	arrivals := map[string][]time.Time{}
	for process := 0; len(recorded) < resources; process++ {
		if process > restarts+50 {
			break // the last process sends everything long before this
		}
		cfg := Config{N: n, Window: window, Now: clock.now, Late: late}
		if seeded {
			cfg.Seed = seed
		}
		c := New(cfg)
		killAt := time.Time{}
		if process < restarts {
			killAt = clock.now().Add(time.Duration(2000+rng.IntN(20000)) * time.Millisecond)
		}
		type call struct {
			slot          Slot
			project       string
			arrival, end  time.Time
			arrived, done bool
		}
		var calls []*call
		retryAt := map[string]time.Time{}
		for len(recorded) < resources {
			step := time.Duration(rng.IntN(100)) * time.Millisecond
			if !killAt.IsZero() && !clock.now().Add(step).Before(killAt) {
				break
			}
			clock.add(step)
			now := clock.now()
			for _, cl := range calls {
				if !cl.arrived && !cl.arrival.After(now) {
					cl.arrived = true
					arrivals[cl.project] = append(arrivals[cl.project], cl.arrival)
				}
				if !cl.done && !now.Before(cl.end) {
					cl.done = true
					c.Done(cl.slot)
				}
			}
			key := fmt.Sprint("r", rng.IntN(resources))
			if _, ok := recorded[key]; ok || now.Before(retryAt[key]) {
				continue
			}
			decided := now.Add(-time.Duration(rng.Int64N(int64(maxDecision))))
			slot, wait, ok := c.Take(key, projectOf(key))
			if !ok {
				retryAt[key] = now.Add(wait)
				continue
			}
			recorded[key] = submit.AttemptTime(decided, nil).Time
			arrival := now.Add(time.Duration(rng.Int64N(int64(maxArrival))))
			calls = append(calls, &call{slot: slot, project: projectOf(key), arrival: arrival,
				end: arrival.Add(time.Duration(rng.Int64N(int64(maxEnd))))})
		}
		if killAt.IsZero() {
			for _, cl := range calls { // the last process lives on: its calls all arrive
				if !cl.arrived {
					arrivals[cl.project] = append(arrivals[cl.project], cl.arrival)
				}
			}
		} else {
			clock.add(killAt.Sub(clock.now()))
			for _, cl := range calls {
				if !cl.arrived && !cl.arrival.After(killAt) {
					arrivals[cl.project] = append(arrivals[cl.project], cl.arrival)
				}
			}
		}
		clock.add(time.Duration(500+rng.IntN(2500)) * time.Millisecond) // the next one starts
	}
	for _, a := range arrivals {
		most = max(most, mostInWindow(a, window))
		sent += len(a)
	}
	return most, sent, clock.now().Sub(epoch)
}

// TestForgetsWhoDoesNotComeBack: a queued caller that never asks again (its request turned
// invalid, its resource was cancelled) stops holding the others back once overdue.
func TestForgetsWhoDoesNotComeBack(t *testing.T) {
	clock := &fakeClock{t: epoch}
	c := New(Config{N: 1, Window: time.Minute, Now: clock.now})
	if _, _, ok := c.Take("a", "p"); !ok {
		t.Fatal("a denied with the slot free")
	}
	_, gone, _ := c.Take("gone", "p") // never asks again
	_, wait, _ := c.Take("c", "p")
	if wait <= gone {
		t.Fatalf("c told %s, gone %s: c is behind gone", wait, gone)
	}
	clock.add(gone + overdueGrace + time.Second) // a's call still runs
	if _, wait, ok := c.Take("c", "p"); ok || wait > time.Minute+time.Second {
		t.Errorf("c: ok=%v wait=%s, want denied for about a window: gone no longer counts", ok, wait)
	}
	// Forget drops a caller at once.
	_, _, _ = c.Take("d", "p")
	_, before, _ := c.Take("e", "p")
	c.Forget("d")
	if _, after, _ := c.Take("e", "p"); after >= before {
		t.Errorf("e told %s before d was forgotten and %s after", before, after)
	}
}

func TestAttempts(t *testing.T) {
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(epoch.Add(d)); return &t }
	op := func(parent string, attemptedAt *metav1.Time) opsv1.OptimizationOperation {
		var o opsv1.OptimizationOperation
		if parent != "" {
			o.Spec.Submit = &opsv1.SubmitSpec{Parent: parent}
		}
		if attemptedAt != nil {
			o.Status.Submit = &opsv1.SubmitStatus{AttemptedAt: attemptedAt, Attempts: 1}
		}
		return o
	}
	items := []opsv1.OptimizationOperation{
		op("projects/a/locations/global", at(-10*time.Second)),
		op("projects/a", at(-30*time.Second)),
		op("projects/a", at(-2*time.Minute)),                // too old
		op("projects/b/locations/global", at(-time.Second)), // another project
		op("projects/a", nil),                               // not attempted
		op("", at(-time.Second)),                            // no spec.submit, no parent to count it under
	}
	got := Attempts(items, "a", epoch.Add(-time.Minute))
	want := []time.Time{epoch.Add(-10 * time.Second), epoch.Add(-30 * time.Second)}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("Attempts = %v, want %v", got, want)
	}
	if got := Attempts(nil, "a", time.Time{}); len(got) != 0 {
		t.Errorf("Attempts of no items = %v", got)
	}
}
