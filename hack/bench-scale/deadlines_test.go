package main

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

var synthT0 = time.Unix(10_000, 0)

func synthAt(s float64) time.Time { return synthT0.Add(time.Duration(s * float64(time.Second))) }

// synthLog builds call records: each read of op arrives at its time and is answered 2 ms later.
type synthLog struct {
	calls []emulator.CallRecord
}

func (l *synthLog) add(method, name string, status int, arrived float64) {
	a := synthAt(arrived)
	e := a.Add(2 * time.Millisecond)
	l.calls = append(l.calls, emulator.CallRecord{Seq: uint64(len(l.calls) + 1), Method: method, Name: name,
		Arrived: a, Ended: &e, Status: status})
}

func (l *synthLog) reads(name string, times ...float64) {
	for _, s := range times {
		l.add(emulator.MethodGetOperation, name, http.StatusOK, s)
	}
}

func TestAccountSolves(t *testing.T) {
	var l synthLog
	l.add(emulator.MethodOptimizeToursLongRunning, deadlineParent, http.StatusOK, 0)
	// a ends at its deadline; the read at 61 s sees it.
	l.reads("a", 0, 12, 30, 61)
	// b ends early, at 40 s of its 120 s; a read after the one that saw it counts apart.
	l.reads("b", 0, 10, 20, 45, 50)
	l.add(emulator.MethodCancelOperation, "b", http.StatusOK, 47)
	// c: a read arrives 1 ms before the end and is answered after it, and the watch shows done
	// before the next read arrives: that read saw it.
	l.reads("c", 0, 29.999, 40)
	// d: a failed read after the end cannot have seen it.
	l.add(emulator.MethodGetOperation, "d", http.StatusServiceUnavailable, 31)
	l.reads("d", 0, 33)
	// e never ends during the run: every read counts, none saw it.
	l.reads("e", 0, 5, 9)
	obs := []solveObs{
		{resource: "op-a", op: "a", timeout: 60 * time.Second, submitted: synthT0, end: synthAt(60), done: true, seenDone: synthAt(61.5)},
		{resource: "op-b", op: "b", timeout: 120 * time.Second, submitted: synthT0, end: synthAt(40), done: true, seenDone: synthAt(46)},
		{resource: "op-c", op: "c", timeout: 30 * time.Second, submitted: synthT0, end: synthAt(30), done: true, seenDone: synthAt(30.2)},
		{resource: "op-d", op: "d", timeout: 30 * time.Second, submitted: synthT0, end: synthAt(30), done: true, seenDone: synthAt(33.1)},
		{resource: "op-e", op: "e", timeout: time.Hour, submitted: synthT0, end: synthAt(3600)},
	}
	// Records come in any order; the accounting orders them by arrival.
	calls := append(l.calls[len(l.calls)/2:], l.calls[:len(l.calls)/2]...)
	got := accountSolves(obs, calls)
	want := []struct {
		reads, after   int
		doneRead       time.Time
		early          bool
		lag, readLag   time.Duration
		seen, readSeen bool
	}{
		{4, 0, synthAt(61), false, 1500 * time.Millisecond, time.Second, true, true},
		{4, 1, synthAt(45), true, 6 * time.Second, 5 * time.Second, true, true},
		{2, 1, synthAt(29.999), false, 200 * time.Millisecond, -time.Millisecond, true, true},
		{3, 0, synthAt(33), false, 3100 * time.Millisecond, 3 * time.Second, true, true},
		{3, 0, time.Time{}, false, 0, 0, false, false},
	}
	for i, a := range got {
		w := want[i]
		lag, seen := a.lag()
		readLag, readSeen := a.readLag()
		if a.reads != w.reads || a.readsAfter != w.after || !a.doneRead.Equal(w.doneRead) || a.early != w.early ||
			seen != w.seen || readSeen != w.readSeen || (seen && !nearDur(lag, w.lag)) || (readSeen && !nearDur(readLag, w.readLag)) {
			t.Errorf("%s: reads %d, after %d, done read %v, early %v, lag %s (%v), read lag %s (%v); want %+v",
				a.resource, a.reads, a.readsAfter, a.doneRead.Sub(synthT0), a.early, lag, seen, readLag, readSeen, w)
		}
	}
	if s := got[1].share(6 * time.Second); math.Abs(s-0.15) > 1e-9 {
		t.Errorf("b: lag 6 s of a 40 s solve is a share %v, want 0.15", s)
	}
	if s := (solveAcct{solve: 100 * time.Millisecond}).share(2 * time.Second); s != 2 {
		t.Errorf("a solve of 100 ms counts as 1 s: share %v, want 2", s)
	}
}

func nearDur(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond }

func TestPercentileF(t *testing.T) {
	var xs []float64
	for i := 1; i <= 200; i++ {
		xs = append(xs, float64(i))
	}
	for _, c := range []struct{ p, want float64 }{{0.5, 100}, {0.99, 198}, {1, 200}, {0, 1}} {
		if got := percentileF(xs, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentileF(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := percentile([]time.Duration{3 * time.Second}, 0.99); got != 3*time.Second {
		t.Errorf("p99 of one: %s", got)
	}
}

func TestMaxInSliding(t *testing.T) {
	// 0.0, 0.5, 0.99 in one second; 1.0 starts the next; 5.0..5.9 ten in one second.
	ts := []time.Time{synthAt(1), synthAt(0.5), synthAt(0), synthAt(0.99)}
	for i := range 10 {
		ts = append(ts, synthAt(5+float64(i)/10))
	}
	if n, start := maxInSliding(ts, time.Second); n != 10 || !start.Equal(synthAt(5)) {
		t.Errorf("1 s: %d at %v, want 10 at 5s", n, start.Sub(synthT0))
	}
	if n, _ := maxInSliding(ts[:4], time.Second); n != 3 {
		t.Errorf("[t, t+1s) holds 3 of 0, 0.5, 0.99, 1: got %d", n)
	}
	if n, _ := maxInSliding(ts, 10*time.Second); n != 14 {
		t.Errorf("10 s: %d, want 14", n)
	}
	if n, _ := maxInSliding(nil, time.Second); n != 0 {
		t.Errorf("none: %d", n)
	}
}

func TestTimeoutsFlagAndDraw(t *testing.T) {
	var r timeoutRange
	if err := r.Set("2m-20m"); err != nil || r.lo != 2*time.Minute || r.hi != 20*time.Minute || r.String() != "2m0s-20m0s" {
		t.Errorf("2m-20m: %+v, %v", r, err)
	}
	if err := r.Set("45s"); err != nil || r.lo != 45*time.Second || r.hi != r.lo || r.String() != "45s" {
		t.Errorf("45s: %+v, %v", r, err)
	}
	for _, bad := range []string{"20m-2m", "0s-1m", "x", "1m-y"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	d := deadlineOptions{timeouts: timeoutRange{lo: 20 * time.Second, hi: 60 * time.Second}}
	a, b := d.draw(500), d.draw(500)
	lo, hi := a[0], a[0]
	for i, x := range a {
		if x != b[i] {
			t.Fatal("draws differ between runs")
		}
		if x < d.timeouts.lo || x > d.timeouts.hi || x != x.Truncate(time.Millisecond) {
			t.Fatalf("timeout %s outside the range or finer than a millisecond", x)
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo > 25*time.Second || hi < 55*time.Second {
		t.Errorf("500 draws span only %s-%s of 20s-60s", lo, hi)
	}
	d.shared = true
	for _, x := range d.draw(10) {
		if x != d.timeouts.hi {
			t.Fatalf("shared deadline: %s, want %s", x, d.timeouts.hi)
		}
	}
	if got := string(toursRequest("op-00001", 90500*time.Millisecond)); !strings.Contains(got, `"timeout": "90.500s"`) {
		t.Errorf("request: %s", got)
	}
}

func TestRecordLogMergesFetches(t *testing.T) {
	rec := func(seq uint64, ended bool) emulator.CallRecord {
		c := emulator.CallRecord{Seq: seq, Method: emulator.MethodGetOperation, Arrived: synthAt(float64(seq))}
		if ended {
			e := c.Arrived.Add(time.Millisecond)
			c.Ended, c.Status = &e, http.StatusOK
		}
		return c
	}
	l := newRecordLog()
	// 2 is in flight at the first fetch and answered by the second.
	l.merge(emulator.CallRecords{FirstSeq: 1, Calls: []emulator.CallRecord{rec(1, true), rec(2, false)}})
	l.merge(emulator.CallRecords{FirstSeq: 1, Calls: []emulator.CallRecord{rec(1, true), rec(2, true), rec(3, true)}})
	// The emulator dropped 1-5 before the third: 4 and 5 were never seen.
	l.merge(emulator.CallRecords{FirstSeq: 6, Calls: []emulator.CallRecord{rec(6, true), rec(7, true)}})
	all, lost := l.all()
	if lost != 2 || len(all) != 5 {
		t.Fatalf("%d records, %d lost; want 5 and 2", len(all), lost)
	}
	for i, seq := range []uint64{1, 2, 3, 6, 7} {
		if all[i].Seq != seq || all[i].InFlight() {
			t.Errorf("record %d: %+v", i, all[i])
		}
	}
}

func TestLastFlag(t *testing.T) {
	args := []string{"--max-submits-per-minute=1000", "--api-qps", "7", "-max-submits-per-minute", "60"}
	if got := lastFlag(args, "max-submits-per-minute"); got != "60" {
		t.Errorf("cap %q, want the last, 60", got)
	}
	if got := lastFlag(args, "api-qps"); got != "7" {
		t.Errorf("qps %q", got)
	}
	if got := lastFlag(args, "api-burst"); got != "" {
		t.Errorf("burst %q, want none", got)
	}
}
