package controllers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestSubmitCapQueue(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)}
	c := newSubmitCap(3, time.Minute, clock.now)
	var slots []int
	for i := range 3 {
		slot, _, ok := c.take(fmt.Sprint("r", i))
		if !ok {
			t.Fatalf("r%d denied with two of three slots free", i)
		}
		slots = append(slots, slot)
	}
	clock.t = clock.t.Add(time.Second)
	for _, s := range slots {
		c.done(s) // the three calls ended now: their slots free a minute from now
	}
	clock.t = clock.t.Add(time.Second)
	// Callers beyond the cap are told to come back when their turn comes, one window apart
	// for every n callers before them, not all at the same moment.
	wants := []time.Duration{59 * time.Second, 59 * time.Second, 59 * time.Second, 119 * time.Second}
	for i, want := range wants {
		_, wait, ok := c.take(fmt.Sprint("w", i))
		if ok || wait < want || wait > want+time.Second {
			t.Errorf("w%d: ok=%v wait=%s, want denied for %s", i, ok, wait, want)
		}
	}
	// Asking again keeps one's place.
	if _, wait, _ := c.take("w0"); wait > 60*time.Second {
		t.Errorf("w0 asked again and was told %s", wait)
	}
	clock.t = clock.t.Add(59 * time.Second)
	slot, _, ok := c.take("w0")
	if !ok {
		t.Fatal("w0 denied once a slot freed")
	}
	// A slot given back unused is free at once.
	c.cancel(slot)
	if _, _, ok := c.take("w1"); !ok {
		t.Error("a cancelled slot was not granted again")
	}
	c.forget("w2")
	c.forget("w3")
	var nilCap *submitCap
	if _, _, ok := nilCap.take("x"); !ok {
		t.Error("no cap denied a submit")
	}
}

// TestSubmitCapWindow sends from many callers at random times, each call taking a random time
// and arriving at the server at a random moment within it, and checks that no window of the
// server's clock sees more than n arrivals.
func TestSubmitCapWindow(t *testing.T) {
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{{60, time.Minute}, {5, time.Minute}, {1, time.Minute}, {40, 5 * time.Second}} {
		t.Run(fmt.Sprintf("%d per %s", tc.n, tc.window), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.n)))
			start := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
			clock := &fakeClock{t: start}
			c := newSubmitCap(tc.n, tc.window, clock.now)
			type call struct {
				slot     int
				end      time.Time
				arrival  time.Time
				finished bool
			}
			var calls []*call
			retryAt := map[string]time.Time{}
			for step := 0; step < 20000; step++ {
				clock.t = clock.t.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
				for _, cl := range calls {
					if !cl.finished && !clock.t.Before(cl.end) {
						cl.finished = true // seen ended now, at most a step after it did
						c.done(cl.slot)
					}
				}
				key := fmt.Sprint("k", rng.IntN(3*tc.n))
				if clock.t.Before(retryAt[key]) {
					continue
				}
				slot, wait, ok := c.take(key)
				if !ok {
					retryAt[key] = clock.t.Add(wait)
					continue
				}
				if rng.IntN(10) == 0 {
					c.cancel(slot) // nothing sent after all
					continue
				}
				d := time.Duration(rng.IntN(3000)) * time.Millisecond
				calls = append(calls, &call{slot: slot, end: clock.t.Add(d), arrival: clock.t.Add(time.Duration(rng.Int64N(int64(d) + 1)))})
			}
			arrivals := make([]time.Time, 0, len(calls))
			for _, cl := range calls {
				arrivals = append(arrivals, cl.arrival)
			}
			slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
			most := 0
			for i, lo := 0, 0; i < len(arrivals); i++ {
				for arrivals[i].Sub(arrivals[lo]) >= tc.window {
					lo++
				}
				most = max(most, i-lo+1)
			}
			t.Logf("%d calls over %s, at most %d in a window of %s", len(arrivals), clock.t.Sub(start).Round(time.Second), most, tc.window)
			if most > tc.n {
				t.Errorf("%d arrivals within %s, cap %d", most, tc.window, tc.n)
			}
			if len(arrivals) < tc.n {
				t.Errorf("only %d calls sent", len(arrivals))
			}
		})
	}
}

// TestSubmitCapForgetsWhoDoesNotComeBack: a queued caller that never asks again (its request
// turned invalid, its resource was cancelled) stops holding the others back once overdue.
func TestSubmitCapForgetsWhoDoesNotComeBack(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)}
	c := newSubmitCap(1, time.Minute, clock.now)
	if _, _, ok := c.take("a"); !ok {
		t.Fatal("a denied with the slot free")
	}
	_, gone, _ := c.take("gone") // never asks again
	_, wait, _ := c.take("c")
	if wait <= gone {
		t.Fatalf("c told %s, gone %s: c is behind gone", wait, gone)
	}
	clock.t = clock.t.Add(gone + overdueGrace + time.Second) // a's call still runs
	if _, wait, ok := c.take("c"); ok || wait > time.Minute+time.Second {
		t.Errorf("c: ok=%v wait=%s, want denied for about a window: gone no longer counts", ok, wait)
	}
}
