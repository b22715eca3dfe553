package emulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// hangs stands for a hang in a sequence of outcome codes.
const hangs codes.Code = 100

// sequence returns the outcome codes of n decisions for method (hangs for a
// hang).
func sequence(fi *faultInjector, method string, n int) []codes.Code {
	out := make([]codes.Code, n)
	for i := range out {
		switch v := fi.decide(method); {
		case v.err != nil:
			out[i] = v.err.code
		case v.hang:
			out[i] = hangs
		}
	}
	return out
}

func TestFaultsDeterministicUnderSeed(t *testing.T) {
	f := Faults{Methods: map[string]MethodFault{"*": {Unavailable: 0.2, ResourceExhausted: 0.2, Internal: 0.1, PermissionDenied: 0.1, Cancelled: 0.1, RequestTimeout: 0.1}}}
	a := newFaultInjector(7, f)
	b := newFaultInjector(7, f)
	// Traffic to another method must not shift GetOperation's sequence.
	sequence(b, MethodCancelOperation, 13)
	sa, sb := sequence(a, MethodGetOperation, 200), sequence(b, MethodGetOperation, 200)
	counts := map[codes.Code]int{}
	for i := range sa {
		if sa[i] != sb[i] {
			t.Fatalf("decision %d differs under the same seed: %v vs %v", i, sa[i], sb[i])
		}
		counts[sa[i]]++
	}
	for _, c := range []codes.Code{codes.OK, codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.PermissionDenied, codes.Canceled, codes.DeadlineExceeded} {
		if counts[c] == 0 {
			t.Errorf("no %v in 200 draws: %v", c, counts)
		}
	}
	// Setting the same faults again restarts the streams.
	a.set(f)
	if again := sequence(a, MethodGetOperation, 200); !equalCodes(again, sa) {
		t.Error("set did not restart the random stream")
	}
	if other := sequence(newFaultInjector(8, f), MethodGetOperation, 200); equalCodes(other, sa) {
		t.Error("different seeds gave the same sequence")
	}
}

func equalCodes(a, b []codes.Code) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestFaultPrecedence(t *testing.T) {
	fi := newFaultInjector(1, Faults{Methods: map[string]MethodFault{
		"*":                {Internal: 1, Latency: time.Second},
		MethodGetOperation: {FailNext: 2},
	}})
	want := []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK}
	if got := sequence(fi, MethodGetOperation, 3); !equalCodes(got, want) {
		t.Errorf("GetOperation = %v, want %v (own entry overrides *)", got, want)
	}
	lat, err := fi.latency(MethodListOperations), fi.decide(MethodListOperations).err
	if err == nil || err.code != codes.Internal || lat != time.Second {
		t.Errorf("ListOperations = %v, %v; want Internal after 1s from *", lat, err)
	}
	if lat := fi.latency(MethodGetOperation); lat != 0 {
		t.Errorf("GetOperation latency = %v, want 0 (own entry has none)", lat)
	}
	if left := fi.get().Methods[MethodGetOperation].FailNext; left != 0 {
		t.Errorf("FailNext left = %d", left)
	}
	fi.set(Faults{FailAll: true})
	if err := fi.decide(MethodBatchOptimizeTours).err; err == nil || err.code != codes.Unavailable {
		t.Errorf("FailAll = %v", err)
	}
}

// A principal that may read but not cancel: 403 on one method only, every time.
func TestPermissionDeniedOnOneMethod(t *testing.T) {
	fi := newFaultInjector(3, Faults{Methods: map[string]MethodFault{MethodCancelOperation: {PermissionDenied: 1}}})
	if got, want := sequence(fi, MethodCancelOperation, 3), []codes.Code{codes.PermissionDenied, codes.PermissionDenied, codes.PermissionDenied}; !equalCodes(got, want) {
		t.Errorf("CancelOperation = %v, want %v", got, want)
	}
	if got := sequence(fi, MethodGetOperation, 3); !equalCodes(got, []codes.Code{codes.OK, codes.OK, codes.OK}) {
		t.Errorf("GetOperation = %v, want OK", got)
	}
}

func TestFaultsValidate(t *testing.T) {
	bad := []Faults{
		{Methods: map[string]MethodFault{"Nope": {}}},
		{Methods: map[string]MethodFault{"*": {Unavailable: 1.5}}},
		{Methods: map[string]MethodFault{"*": {Unavailable: 0.6, Internal: 0.6}}},
		{Methods: map[string]MethodFault{"*": {PermissionDenied: 0.5, ResourceExhausted: 0.6}}},
		{Methods: map[string]MethodFault{"*": {PermissionDenied: -0.1}}},
		{Methods: map[string]MethodFault{"*": {Cancelled: 0.5, RequestTimeout: 0.6}}},
		{Methods: map[string]MethodFault{"*": {Unavailable: 0.9, Cancelled: 0.2}}},
		{Methods: map[string]MethodFault{"*": {RequestTimeout: -0.1}}},
		{Methods: map[string]MethodFault{"*": {Latency: -time.Second}}},
		{Methods: map[string]MethodFault{"*": {Hang: 1.5}}},
		{Methods: map[string]MethodFault{"*": {Hang: 0.5, Unavailable: 0.6}}},
		{Methods: map[string]MethodFault{"*": {HangNext: -1}}},
	}
	for _, f := range bad {
		if f.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", f)
		}
	}
}

// TestHangFaults: HangNext counts down after FailNext; a Hang rate draws after
// every error kind, so seeds give the sequences they gave before it existed.
func TestHangFaults(t *testing.T) {
	fi := newFaultInjector(1, Faults{Methods: map[string]MethodFault{
		MethodOptimizeToursLongRunning: {FailNext: 1, HangNext: 2},
		MethodBatchOptimizeTours:       {Hang: 1},
	}})
	want := []codes.Code{codes.Unavailable, hangs, hangs, codes.OK}
	if got := sequence(fi, MethodOptimizeToursLongRunning, 4); !equalCodes(got, want) {
		t.Errorf("OptimizeToursLongRunning = %v, want %v", got, want)
	}
	if left := fi.get().Methods[MethodOptimizeToursLongRunning].HangNext; left != 0 {
		t.Errorf("HangNext left = %d", left)
	}
	if got := sequence(fi, MethodBatchOptimizeTours, 3); !equalCodes(got, []codes.Code{hangs, hangs, hangs}) {
		t.Errorf("BatchOptimizeTours with hang 1 = %v", got)
	}
	mixed := MethodFault{Unavailable: 0.2, ResourceExhausted: 0.2, Internal: 0.1, PermissionDenied: 0.1, Cancelled: 0.1, RequestTimeout: 0.1}
	withHang := mixed
	withHang.Hang = 0.2
	a := sequence(newFaultInjector(7, Faults{Methods: map[string]MethodFault{"*": mixed}}), MethodOptimizeToursURI, 300)
	b := sequence(newFaultInjector(7, Faults{Methods: map[string]MethodFault{"*": withHang}}), MethodOptimizeToursURI, 300)
	hung := 0
	for i := range a {
		switch {
		case b[i] == hangs:
			hung++
			if a[i] != codes.OK {
				t.Fatalf("draw %d: hang where the error %v was drawn without it", i, a[i])
			}
		case a[i] != b[i]:
			t.Fatalf("draw %d: %v without hang, %v with it", i, a[i], b[i])
		}
	}
	if hung == 0 {
		t.Error("no hang in 300 draws at rate 0.2")
	}
}

// Injected 499 and 408 answers carry the HTTP status the fault names, and the
// envelope's code agrees with it.
func TestInjected499And408(t *testing.T) {
	for _, tc := range []struct {
		mf     MethodFault
		http   int
		code   codes.Code
		status string
	}{
		{MethodFault{Cancelled: 1}, 499, codes.Canceled, `"status": "CANCELLED"`},
		{MethodFault{RequestTimeout: 1}, 408, codes.DeadlineExceeded, `"status": "DEADLINE_EXCEEDED"`},
		{MethodFault{Cancelled: 1, NoStatus: true}, 499, codes.Canceled, ""},
		{MethodFault{RequestTimeout: 1, NoStatus: true}, 408, codes.DeadlineExceeded, ""},
	} {
		fi := newFaultInjector(1, Faults{Methods: map[string]MethodFault{MethodCancelOperation: tc.mf}})
		err := fi.decide(MethodCancelOperation).err
		if err == nil || err.code != tc.code || err.status() != tc.http {
			t.Fatalf("%+v: decide = %+v, want %v over HTTP %d", tc.mf, err, tc.code, tc.http)
		}
		body := string(err.encode())
		if !strings.Contains(body, fmt.Sprintf(`"code": %d`, tc.http)) {
			t.Errorf("%+v: envelope %s does not carry code %d", tc.mf, body, tc.http)
		}
		if hasStatus := strings.Contains(body, `"status"`); hasStatus != (tc.status != "") || (tc.status != "" && !strings.Contains(body, tc.status)) {
			t.Errorf("%+v: envelope %s, want status %q", tc.mf, body, tc.status)
		}
	}
}

func TestHTTPStatusNeverCancelled499(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if s := httpStatus(c); s == 499 || s < 200 || s > 599 {
			t.Errorf("httpStatus(%v) = %d", c, s)
		}
	}
}

func TestResetRestartsSeededIDs(t *testing.T) {
	ids := func(s *Server) []string { return []string{s.newID(), s.newID(), s.newID()} }
	s := New(Options{Seed: 42})
	first := ids(s)
	s.Reset()
	if again := ids(s); again[0] != first[0] || again[2] != first[2] {
		t.Errorf("IDs after Reset = %v, want the fresh sequence %v", again, first)
	}
	if fresh := ids(New(Options{Seed: 42})); fresh[1] != first[1] {
		t.Errorf("two emulators with seed 42 disagree: %v vs %v", fresh, first)
	}
}
