package main

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

func TestBudgetAllowanceReplaysTheBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if a := budgetAllowance(5, 10, t0, at(20), nil, 5*time.Second); !near(a.granted, 110) || a.flat != 100 || a.open != 20*time.Second {
		t.Errorf("no 429: %+v, want the full bucket and 100 calls over 20 s", a)
	}
	// A 429 at 0: held to 5 s (25 filled, kept up to the bucket's 10), then 5/s: a 429 with
	// RetryInfo pauses, it does not slow the budget down.
	a := budgetAllowance(5, 10, t0, at(20), []time.Time{t0}, 5*time.Second)
	if want := 10 + 10 + 5*15.0; !near(a.granted, want) || a.flat != 75 || a.open != 15*time.Second {
		t.Errorf("one 429: %+v, want %v granted, 75 flat, 15 s open", a, want)
	}
	// 429s every 2 s to 58 s: the pauses merge to 63 s.
	var many []time.Time
	for s := 0.0; s < 60; s += 2 {
		many = append(many, at(s))
	}
	a = budgetAllowance(5, 10, t0, at(70), many, 5*time.Second)
	if a.open != 7*time.Second {
		t.Errorf("open %s, want 7s (from 63 s on)", a.open)
	}
	if want := 10 + 10 + 5*7.0; !near(a.granted, want) {
		t.Errorf("merged pauses: %v granted, want %v", a.granted, want)
	}
	// A pause still on at the end keeps what it holds.
	if a := budgetAllowance(5, 10, t0, at(3), []time.Time{t0}, 5*time.Second); a.granted != 10 || a.open != 0 {
		t.Errorf("paused to the end: %+v", a)
	}
}

func TestStormSolvesSpreadEvenly(t *testing.T) {
	s := stormSolves(300, 10*time.Second, 90*time.Second)
	sorted := slices.Sorted(slices.Values(s))
	if sorted[0] != 10*time.Second || sorted[299] != 90*time.Second {
		t.Errorf("range %s..%s", sorted[0], sorted[299])
	}
	if slices.Equal(s, sorted) {
		t.Error("solves in creation order: the cancelled third would line up with the length")
	}
	if s := stormSolves(1, 10*time.Second, 90*time.Second); s[0] != 10*time.Second {
		t.Errorf("one solve: %s", s[0])
	}
	if n := len(stormTargets(300, 3)); n != 100 {
		t.Errorf("%d targets, want 100", n)
	}
}

func TestTraceCancelCountsReadsBeforeTheFirstCancel(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := func(s int, method string, status int) call {
		at := t0.Add(time.Duration(s) * time.Second)
		return call{method: method, status: status, arrived: at, answered: at.Add(2 * time.Second)}
	}
	get, cancel := emulator.MethodGetOperation, emulator.MethodCancelOperation
	calls := []call{c(-1, get, 200), c(1, get, 503), c(2, get, 200), c(3, cancel, 503), c(4, get, 200), c(9, cancel, 200)}
	tr := traceCancel(calls, t0)
	if tr.reads != 2 || tr.first != &calls[3] || tr.accepted != &calls[5] {
		t.Errorf("reads %d, first %+v, accepted %+v", tr.reads, tr.first, tr.accepted)
	}
	if tr := traceCancel(calls[:3], t0); tr.first != nil || tr.reads != 2 {
		t.Errorf("never sent: %+v", tr)
	}
}

func TestStateMismatch(t *testing.T) {
	res := func(done bool, code int32, reason string, cancel bool) *opsv1.OptimizationOperation {
		o := &opsv1.OptimizationOperation{Spec: opsv1.OptimizationOperationSpec{Cancel: cancel}}
		o.Status.Done = done
		if code != 0 {
			o.Status.Error = &opsv1.OperationError{Code: code}
		}
		o.Status.Conditions = []metav1.Condition{{Type: opsv1.ConditionSucceeded, Reason: reason}}
		return o
	}
	done := emulator.OperationInfo{Done: true}
	cancelled := emulator.OperationInfo{Done: true, ErrorCode: 1}
	for _, tc := range []struct {
		o    *opsv1.OptimizationOperation
		op   emulator.OperationInfo
		want bool
	}{
		{res(true, 0, opsv1.ReasonSucceeded, false), done, true},
		{res(true, 0, opsv1.ReasonCompletedDespiteCancel, true), done, true},
		{res(true, 0, opsv1.ReasonCompletedDespiteCancel, false), done, false},
		{res(true, 1, opsv1.ReasonCancelled, true), cancelled, true},
		{res(false, 0, opsv1.ReasonCancelling, true), cancelled, false},
		{res(true, 0, opsv1.ReasonSucceeded, true), cancelled, false},
		{res(false, 0, opsv1.ReasonRunning, false), emulator.OperationInfo{}, true},
	} {
		if got := stateMismatch(tc.o, tc.op, true) == ""; got != tc.want {
			t.Errorf("%+v against %+v: agree %t, want %t", tc.o.Status, tc.op, got, tc.want)
		}
	}
}

// The recorder must understand the emulator's request log, which is not an API of its own.
func TestCallRecorderReadsTheEmulatorsRequestLog(t *testing.T) {
	rec := &callRecorder{}
	srv := httptest.NewServer(emulator.New(emulator.Options{Logger: slog.New(rec)}))
	defer srv.Close()
	admin := &emulator.AdminClient{BaseURL: srv.URL}
	ctx := context.Background()
	name, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: {FailNext: 1, Latency: 50 * time.Millisecond}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := http.Get(srv.URL + "/v1/" + name)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	calls := rec.snapshot()
	if len(calls) != 2 {
		t.Fatalf("%d calls recorded: %+v", len(calls), calls)
	}
	for i, want := range []int{http.StatusServiceUnavailable, http.StatusOK} {
		c := calls[i]
		if c.method != emulator.MethodGetOperation || c.name != name || c.status != want ||
			c.answered.Sub(c.arrived) < 50*time.Millisecond {
			t.Errorf("call %d: %+v, want GetOperation %s answered %d after the latency", i, c, name, want)
		}
	}
}
