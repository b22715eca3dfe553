package budget

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var epoch = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// fakeClock drives a Budget without waiting.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *fakeClock) elapsed() time.Duration  { return c.t.Sub(epoch) }

// newTestBudget returns a budget on a fake clock.
func newTestBudget(qps float64, burst int) (*Budget, *fakeClock) {
	b := New(qps, burst)
	clk := &fakeClock{t: epoch}
	b.now = clk.now
	return b, clk
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestBudgetBound: over a long run with many keys asking, the budget never grants more than
// burst + qps x elapsed calls, and grants close to qps x elapsed when demand exceeds it.
func TestBudgetBound(t *testing.T) {
	cases := []struct {
		name  string
		qps   float64
		burst int
		keys  int
		// obedient callers come back after the wait they were given; the others ask every step.
		obedient bool
		// urgentEvery makes every n-th key an urgent caller (0: none).
		urgentEvery int
		// throttled halves the rate once at the start (no pause).
		throttled bool
		run       time.Duration
		step      time.Duration
	}{
		{name: "defaults, 300 obedient keys", qps: 5, burst: 10, keys: 300, obedient: true, run: 2 * time.Minute, step: 10 * time.Millisecond},
		{name: "qps 10 burst 20, 1000 obedient keys", qps: 10, burst: 20, keys: 1000, obedient: true, run: 2 * time.Minute, step: 10 * time.Millisecond},
		{name: "qps 50 burst 100, 500 obedient keys", qps: 50, burst: 100, keys: 500, obedient: true, run: time.Minute, step: 5 * time.Millisecond},
		{name: "qps 0.5 burst 2, 20 obedient keys", qps: 0.5, burst: 2, keys: 20, obedient: true, run: 10 * time.Minute, step: 50 * time.Millisecond},
		{name: "qps 1 burst 4, 50 keys asking every step", qps: 1, burst: 4, keys: 50, run: 3 * time.Minute, step: 20 * time.Millisecond},
		{name: "qps 10 burst 20, 40 keys asking every step, some urgent", qps: 10, burst: 20, keys: 40, urgentEvery: 5, run: time.Minute, step: 5 * time.Millisecond},
		{name: "qps 10 burst 20, 500 obedient keys, some urgent", qps: 10, burst: 20, keys: 500, obedient: true, urgentEvery: 10, run: 2 * time.Minute, step: 10 * time.Millisecond},
		{name: "throttled to 5 of 10 qps", qps: 10, burst: 20, keys: 500, obedient: true, throttled: true, run: 2 * time.Minute, step: 10 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newTestBudget(tc.qps, tc.burst)
			rate := tc.qps
			if tc.throttled {
				b.Throttle(0)
				rate /= 2
			}
			next := make([]time.Time, tc.keys)
			for i := range next {
				// Stagger the first asks over the first second.
				next[i] = epoch.Add(time.Duration(i) * time.Second / time.Duration(tc.keys))
			}
			grants, urgentGrants, denials := 0, 0, 0
			for clk.elapsed() <= tc.run {
				for i := range next {
					if clk.t.Before(next[i]) {
						continue
					}
					p := Poll
					if tc.urgentEvery > 0 && i%tc.urgentEvery == 0 {
						p = Urgent
					}
					wait, ok := b.Take(fmt.Sprintf("ns/op-%d", i), p)
					switch {
					case ok:
						if wait != 0 {
							t.Fatalf("granted with wait %v", wait)
						}
						grants++
						if p == Urgent {
							urgentGrants++
						}
						// Ask again at the next poll, one second later.
						next[i] = clk.t.Add(time.Second)
					case wait <= 0:
						t.Fatalf("denied with wait %v", wait)
					default:
						denials++
						if tc.obedient {
							next[i] = clk.t.Add(wait)
						}
					}
				}
				if limit := float64(tc.burst) + rate*clk.elapsed().Seconds(); float64(grants) > limit+1e-9 {
					t.Fatalf("%d grants after %v, more than burst + qps*elapsed = %.2f", grants, clk.elapsed(), limit)
				}
				clk.advance(tc.step)
			}
			ideal := rate * tc.run.Seconds()
			t.Logf("%d grants (%d urgent), %d denials in %v; qps*elapsed = %.0f, bound %.0f", grants, urgentGrants, denials,
				tc.run, ideal, ideal+float64(tc.burst))
			// Callers come back up to a step late, so a small bucket may fill up unused now and then.
			if float64(grants) < 0.8*ideal {
				t.Errorf("only %d grants in %v at %.2f qps with demand above it, want at least %.0f", grants, tc.run, rate, 0.8*ideal)
			}
			if tc.urgentEvery > 0 && urgentGrants == 0 {
				t.Errorf("no urgent call was granted")
			}
		})
	}
}

// TestBudgetReserve: polls leave a reserve that only urgent calls may spend.
func TestBudgetReserve(t *testing.T) {
	cases := []struct {
		qps   float64
		burst int
		// polls is how many polls a full bucket grants at one instant, urgent how many urgent
		// calls it grants after them.
		polls, urgent int
	}{
		{qps: 1, burst: 20, polls: 15, urgent: 5},
		{qps: 5, burst: 10, polls: 7, urgent: 3},
		{qps: 1, burst: 8, polls: 6, urgent: 2},
		{qps: 1, burst: 4, polls: 3, urgent: 1},
		{qps: 1, burst: 2, polls: 1, urgent: 1},
		{qps: 10, burst: 100, polls: 95, urgent: 5},
		{qps: 100, burst: 1000, polls: 995, urgent: 5},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("qps=%v/burst=%d", tc.qps, tc.burst), func(t *testing.T) {
			b, clk := newTestBudget(tc.qps, tc.burst)
			polls := 0
			for i := 0; i < tc.burst+1; i++ {
				if _, ok := b.Take(fmt.Sprintf("poll-%d", i), Poll); ok {
					polls++
				}
			}
			if polls != tc.polls {
				t.Errorf("a full bucket granted %d polls, want %d", polls, tc.polls)
			}
			// The reserve is left: polls are denied, urgent calls are granted.
			for i := 0; i < tc.urgent; i++ {
				if wait, ok := b.Take("poll-late", Poll); ok || wait <= 0 {
					t.Fatalf("poll granted (wait %v) while only the reserve is left", wait)
				}
				if wait, ok := b.Take(fmt.Sprintf("cancel-%d", i), Urgent); !ok {
					t.Fatalf("urgent call %d denied (wait %v) while the reserve holds %d more", i, wait, tc.urgent-i)
				}
			}
			wait, ok := b.Take("cancel-late", Urgent)
			if ok {
				t.Fatalf("urgent call granted from an empty bucket")
			}
			// The wait given is enough for that urgent call.
			clk.advance(wait)
			if w, ok := b.Take("cancel-late", Urgent); !ok {
				t.Errorf("urgent call denied again (wait %v) after waiting the %v it was told", w, wait)
			}
		})
	}
}

// TestBudgetWaitIsEnough: a lone caller denied and told to wait d is granted after d.
func TestBudgetWaitIsEnough(t *testing.T) {
	for _, p := range []Priority{Poll, Urgent} {
		for _, qps := range []float64{0.2, 1, 5, 50} {
			t.Run(fmt.Sprintf("%v/qps=%v", p, qps), func(t *testing.T) {
				b, clk := newTestBudget(qps, 10)
				for i := 0; i < 20; i++ {
					b.Take("drain", p)
				}
				b.Forget("drain")
				for round := 0; round < 5; round++ {
					wait, ok := b.Take("solo", p)
					if ok {
						t.Fatalf("round %d: granted from a drained bucket", round)
					}
					if wait <= 0 || wait > time.Duration(float64(time.Second)*7/qps)+20*time.Millisecond {
						t.Fatalf("round %d: wait %v out of range", round, wait)
					}
					clk.advance(wait)
					if w, ok := b.Take("solo", p); !ok {
						t.Fatalf("round %d: denied again (wait %v) after waiting %v", round, w, wait)
					}
					if b.Waiting() != 0 {
						t.Errorf("round %d: %d keys waiting after the grant", round, b.Waiting())
					}
				}
			})
		}
	}
}

// TestBudgetThrottlePause: after RESOURCE_EXHAUSTED polls pause; urgent calls do not.
func TestBudgetThrottlePause(t *testing.T) {
	cases := []struct {
		name string
		// pauses are Throttle calls: at (offset from epoch) for d.
		pauses []struct{ at, d time.Duration }
		// until is when polls may go again.
		until time.Duration
	}{
		{"one pause of 30s", []struct{ at, d time.Duration }{{0, 30 * time.Second}}, 30 * time.Second},
		{"RetryInfo 3.5s", []struct{ at, d time.Duration }{{0, 3500 * time.Millisecond}}, 3500 * time.Millisecond},
		{"a shorter pause does not shorten it", []struct{ at, d time.Duration }{{0, 30 * time.Second}, {time.Second, 5 * time.Second}}, 30 * time.Second},
		{"a longer pause extends it", []struct{ at, d time.Duration }{{0, 30 * time.Second}, {10 * time.Second, time.Minute}}, 70 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newTestBudget(10, 20)
			for _, p := range tc.pauses {
				clk.t = epoch.Add(p.at)
				b.Throttle(p.d)
			}
			last := tc.pauses[len(tc.pauses)-1].at
			// During the pause: polls denied and told to come back no sooner than its end.
			for _, at := range []time.Duration{last, (last + tc.until) / 2, tc.until - time.Millisecond} {
				clk.t = epoch.Add(at)
				wait, ok := b.Take("poller", Poll)
				if ok {
					t.Fatalf("poll granted %v after the start, during a pause until %v", at, tc.until)
				}
				if left := tc.until - at; wait < left {
					t.Errorf("poll at %v told to wait %v, less than the %v left of the pause", at, wait, left)
				}
				if _, ok := b.Take("canceller", Urgent); !ok {
					t.Errorf("urgent call denied at %v during the pause", at)
				}
			}
			// After the pause: polls go again.
			clk.t = epoch.Add(tc.until)
			if wait, ok := b.Take("poller", Poll); !ok {
				t.Errorf("poll denied (wait %v) when the pause ended", wait)
			}
			if b.Waiting() != 0 {
				t.Errorf("%d keys still waiting", b.Waiting())
			}
		})
	}
}

// TestBudgetThrottleRate: each Throttle halves the rate, down to a tenth of the configured one.
func TestBudgetThrottleRate(t *testing.T) {
	cases := []struct {
		base float64
		want []float64 // rate after each Throttle
	}{
		{10, []float64{5, 2.5, 1.25, 1, 1, 1}},
		{5, []float64{2.5, 1.25, 0.625, 0.5, 0.5}},
		{100, []float64{50, 25, 12.5, 10, 10}},
		{0.5, []float64{0.25, 0.125, 0.0625, 0.05, 0.05}},
		{3, []float64{1.5, 0.75, 0.375, 0.3}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("base=%v", tc.base), func(t *testing.T) {
			b, clk := newTestBudget(tc.base, 10)
			if !approx(b.Rate(), tc.base) {
				t.Fatalf("initial rate %v, want %v", b.Rate(), tc.base)
			}
			for i, want := range tc.want {
				b.Throttle(time.Second)
				if got := b.Rate(); !approx(got, want) {
					t.Errorf("rate after %d throttles = %v, want %v", i+1, got, want)
				}
				clk.advance(time.Second)
			}
		})
	}
}

// TestBudgetRecover: the rate rises by a quarter at most every ten seconds, back to the
// configured rate and no further.
func TestBudgetRecover(t *testing.T) {
	type step struct {
		at       time.Duration // from epoch
		throttle bool          // Throttle instead of Recover
		want     float64
	}
	cases := []struct {
		name  string
		base  float64
		steps []step
	}{
		{"not throttled: no change", 10, []step{{0, false, 10}, {time.Minute, false, 10}, {time.Hour, false, 10}}},
		{"too soon after the throttle", 10, []step{
			{0, true, 5}, {0, false, 5}, {time.Second, false, 5}, {9999 * time.Millisecond, false, 5},
			{10 * time.Second, false, 6.25}}},
		{"at most once every 10s", 10, []step{
			{0, true, 5}, {10 * time.Second, false, 6.25}, {10 * time.Second, false, 6.25}, {15 * time.Second, false, 6.25},
			{19999 * time.Millisecond, false, 6.25}, {20 * time.Second, false, 7.8125}, {30 * time.Second, false, 9.765625},
			{40 * time.Second, false, 10}, {50 * time.Second, false, 10}, {time.Hour, false, 10}}},
		{"a long quiet spell still rises one quarter", 10, []step{
			{0, true, 5}, {0, true, 2.5}, {time.Hour, false, 3.125}, {time.Hour + time.Second, false, 3.125}}},
		{"a throttle during recovery restarts the wait", 10, []step{
			{0, true, 5}, {10 * time.Second, false, 6.25}, {15 * time.Second, true, 3.125}, {20 * time.Second, false, 3.125},
			{25 * time.Second, false, 3.90625}}},
		{"from the floor", 1, []step{
			{0, true, 0.5}, {0, true, 0.25}, {0, true, 0.125}, {0, true, 0.1}, {10 * time.Second, false, 0.125}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newTestBudget(tc.base, 10)
			for i, s := range tc.steps {
				clk.t = epoch.Add(s.at)
				if s.throttle {
					b.Throttle(0)
				} else {
					b.Recover()
				}
				if got := b.Rate(); !approx(got, s.want) {
					t.Errorf("step %d (at %v, throttle=%v): rate %v, want %v", i, s.at, s.throttle, got, s.want)
				}
			}
		})
	}
}

// TestBudgetRecoverAll: from the floor, recovery reaches the configured rate and each step is
// a rise of exactly a quarter or the last, capped one.
func TestBudgetRecoverAll(t *testing.T) {
	for _, base := range []float64{0.5, 5, 10, 123} {
		b, clk := newTestBudget(base, 10)
		for i := 0; i < 10; i++ {
			b.Throttle(0)
		}
		if !approx(b.Rate(), base/10) {
			t.Fatalf("base %v: floor %v, want %v", base, b.Rate(), base/10)
		}
		steps := 0
		for prev := b.Rate(); b.Rate() < base; prev = b.Rate() {
			clk.advance(10 * time.Second)
			b.Recover()
			steps++
			if got := b.Rate(); !approx(got, prev*1.25) && !approx(got, base) {
				t.Fatalf("base %v: rate %v -> %v, want a rise of a quarter", base, prev, got)
			}
			if steps > 20 {
				t.Fatalf("base %v: not recovered after %d steps (rate %v)", base, steps, b.Rate())
			}
		}
		// log(10)/log(1.25) = 10.3: eleven rises from a tenth back to the configured rate.
		if steps != 11 {
			t.Errorf("base %v: recovered in %d steps, want 11", base, steps)
		}
		clk.advance(time.Hour)
		b.Recover()
		if b.Rate() != base {
			t.Errorf("base %v: rate %v after recovery", base, b.Rate())
		}
	}
}

// TestBudgetSpread: denied callers are told their place in line, so they come back one by one
// at the budget's rate: the wait grows with the number of keys waiting before.
func TestBudgetSpread(t *testing.T) {
	cases := []struct {
		qps   float64
		burst int
	}{
		{10, 20},
		{1, 4},
		{5, 10},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("qps=%v/burst=%d", tc.qps, tc.burst), func(t *testing.T) {
			b, _ := newTestBudget(tc.qps, tc.burst)
			granted := 0
			for i := 0; i < tc.burst; i++ {
				if _, ok := b.Take(fmt.Sprintf("drain-%d", i), Poll); ok {
					granted++
				}
				b.Forget(fmt.Sprintf("drain-%d", i))
			}
			if b.Waiting() != 0 {
				t.Fatalf("%d keys waiting after Forget, want 0", b.Waiting())
			}
			// The reserve is left: every poll is denied at this instant. The first is told to come
			// back when the bucket holds its token and the reserve, each of the others one token
			// later and after the cushion (the reserve again) that callers in line keep.
			reserve := min(float64(tc.burst)/4, 5)
			left := float64(tc.burst - granted)
			deficit := time.Duration((1 + reserve - left) / tc.qps * float64(time.Second))
			if deficit <= 0 {
				t.Fatalf("no deficit: %v tokens left, reserve %v", left, reserve)
			}
			cushion := time.Duration(reserve / tc.qps * float64(time.Second))
			var prev time.Duration
			for n := 1; n <= 50; n++ {
				key := fmt.Sprintf("op-%d", n)
				wait, ok := b.Take(key, Poll)
				if ok {
					t.Fatalf("poll granted from the reserve (%v tokens)", reserve)
				}
				if b.Waiting() != n {
					t.Errorf("Waiting() = %d after %d denied keys", b.Waiting(), n)
				}
				want := deficit + time.Duration(float64(n-1)/tc.qps*float64(time.Second)) + 10*time.Millisecond
				if n > 1 {
					want += cushion
				}
				if d := wait - want; d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("key %d: wait %v, want %v", n, wait, want)
				}
				if wait <= prev {
					t.Errorf("key %d: wait %v does not grow with the waiting keys (previous %v)", n, wait, prev)
				}
				prev = wait
				// Asking again does not count the key twice.
				if again, _ := b.Take(key, Poll); again != wait || b.Waiting() != n {
					t.Errorf("key %d asked again: wait %v (was %v), %d waiting", n, again, wait, b.Waiting())
				}
			}
			// Forget drops a key; forgetting an unknown key or twice changes nothing.
			for i, key := range []string{"op-7", "op-7", "unknown", "op-50", "op-1"} {
				b.Forget(key)
				want := 50 - []int{1, 1, 1, 2, 3}[i]
				if b.Waiting() != want {
					t.Errorf("after Forget(%q): Waiting() = %d, want %d", key, b.Waiting(), want)
				}
			}
			// With fewer keys waiting, the next one waits less.
			wait, _ := b.Take("op-51", Poll)
			if wait >= prev {
				t.Errorf("wait %v after three Forgets, want less than %v", wait, prev)
			}
		})
	}
}

// TestBudgetGrantLeavesWaiting: a granted key no longer counts as waiting.
func TestBudgetGrantLeavesWaiting(t *testing.T) {
	b, clk := newTestBudget(1, 4)
	for i := 0; i < 4; i++ {
		b.Take("drain", Urgent)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, ok := b.Take(k, Urgent); ok {
			t.Fatalf("%s granted from an empty bucket", k)
		}
	}
	if b.Waiting() != 3 {
		t.Fatalf("Waiting() = %d, want 3", b.Waiting())
	}
	clk.advance(time.Second)
	// The token is a's, which asked first.
	if _, ok := b.Take("b", Urgent); ok {
		t.Fatal("b granted the token of a, which was denied before it")
	}
	if _, ok := b.Take("a", Urgent); !ok {
		t.Fatal("a denied after a token came back")
	}
	if b.Waiting() != 2 {
		t.Errorf("Waiting() = %d after a was granted, want 2", b.Waiting())
	}
}

func TestPriorityString(t *testing.T) {
	for p, want := range map[Priority]string{Poll: "poll", Submit: "submit", Due: "due", First: "first", Urgent: "urgent"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", p, got, want)
		}
	}
}

func TestNewClampsBurst(t *testing.T) {
	for _, burst := range []int{-3, 0, 1} {
		b, _ := newTestBudget(5, burst)
		if _, ok := b.Take("x", Urgent); !ok {
			t.Errorf("burst %d: first urgent call denied", burst)
		}
	}
}

// TestPauseKeepsTheRate: a 429 with RetryInfo holds reads for the time it names, no longer,
// and does not slow the budget down: after the pause the backlog drains at the full rate.
func TestPauseKeepsTheRate(t *testing.T) {
	b, clk := newTestBudget(5, 10)
	for range 20 {
		b.Pause(5 * time.Second)
		clk.advance(250 * time.Millisecond)
	}
	if got := b.Rate(); !approx(got, 5) {
		t.Errorf("rate after 20 paused 429s = %v, want 5 (unchanged)", got)
	}
	end := clk.t.Add(5*time.Second - 250*time.Millisecond)
	clk.t = end.Add(-time.Millisecond)
	if _, ok := b.Take("poller", Poll); ok {
		t.Errorf("poll granted before the last pause ended")
	}
	clk.t = end
	granted := 0
	// The poller, denied a moment ago, is first in line.
	if _, ok := b.Take("poller", Poll); ok {
		granted++
	}
	for i := range 100 {
		if _, ok := b.Take(fmt.Sprintf("poll-%d", i), Poll); ok {
			granted++
		}
	}
	// A full bucket of 10: a poll needs its token and the reserve of 2.5 left, so 7.
	if granted != 7 {
		t.Errorf("%d polls granted at the end of the pause, want the full bucket's 7", granted)
	}
}
