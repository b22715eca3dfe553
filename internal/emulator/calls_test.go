package emulator_test

import (
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// TestReadRecordAndCallHistogram drives reads and a cancel through Google's client and checks
// what the admin API says about them: per operation and per second.
func TestReadRecordAndCallHistogram(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	name, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	in, err := e.admin.GetOperation(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if in.Reads != 0 || in.FirstReadTime != nil || in.LastReadTime != nil || in.CancelCalls != 0 || in.FirstCancelTime != nil {
		t.Fatalf("unread operation has a record: %+v", in)
	}

	get := func() {
		t.Helper()
		if _, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	get()
	e.clock.Advance(1500 * time.Millisecond)
	get()
	get()
	// A read failed by a fault costs the client a call but never reaches the operation.
	if err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: {FailNext: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	// Google's client would retry the 503; one plain request is one call.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/v1/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("read with failNext: %d, want 503", resp.StatusCode)
	}
	e.clock.Advance(10 * time.Second)
	if err := e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
		t.Fatal(err)
	}

	in, err = e.admin.GetOperation(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if in.Reads != 3 || in.CancelCalls != 1 {
		t.Errorf("reads %d, cancel calls %d; want 3 and 1", in.Reads, in.CancelCalls)
	}
	if in.FirstReadTime == nil || !in.FirstReadTime.Equal(t0) {
		t.Errorf("first read at %v, want %v", in.FirstReadTime, t0)
	}
	if want := t0.Add(1500 * time.Millisecond); in.LastReadTime == nil || !in.LastReadTime.Equal(want) {
		t.Errorf("last read at %v, want %v", in.LastReadTime, want)
	}
	if want := t0.Add(11500 * time.Millisecond); in.FirstCancelTime == nil || !in.FirstCancelTime.Equal(want) {
		t.Errorf("first cancel at %v, want %v", in.FirstCancelTime, want)
	}
	list, err := e.admin.ListOperations(ctx)
	if err != nil || len(list) != 1 || list[0].Reads != 3 {
		t.Errorf("list = %+v, %v; want the same record", list, err)
	}

	h, err := e.admin.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		at    time.Time
		calls map[string]int64
	}{
		{t0, map[string]int64{emulator.MethodGetOperation: 1}},
		{t0.Add(time.Second), map[string]int64{emulator.MethodGetOperation: 3}}, // the failed read too
		{t0.Add(11 * time.Second), map[string]int64{emulator.MethodCancelOperation: 1}},
	}
	if len(h.Seconds) != len(want) {
		t.Fatalf("histogram %+v, want %d seconds", h, len(want))
	}
	for i, w := range want {
		s := h.Seconds[i]
		if !s.Time.Equal(w.at) || len(s.Calls) != len(w.calls) {
			t.Errorf("second %d = %+v, want %v %v", i, s, w.at, w.calls)
			continue
		}
		for m, n := range w.calls {
			if s.Calls[m] != n {
				t.Errorf("second %d: %s = %d, want %d", i, m, s.Calls[m], n)
			}
		}
	}
	if n := h.Total(emulator.MethodGetOperation); n != 4 {
		t.Errorf("total reads %d, want 4", n)
	}
	if n, at := h.MaxInWindow(time.Second); n != 3 || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("max in 1 s = %d at %v, want 3 at t0+1s", n, at)
	}
	if n, _ := h.MaxInWindow(10*time.Second, emulator.MethodGetOperation, emulator.MethodCancelOperation); n != 4 {
		t.Errorf("max in 10 s = %d, want 4 (the cancel is 10 s after the first read)", n)
	}
	if n, _ := h.MaxInWindow(12 * time.Second); n != 5 {
		t.Errorf("max in 12 s = %d, want 5 (seconds 0 to 11)", n)
	}

	if err := e.admin.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := e.admin.Calls(ctx); err != nil || len(h.Seconds) != 0 {
		t.Errorf("after reset: %+v, %v; want no seconds", h, err)
	}
}
