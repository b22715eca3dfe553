package emulator_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// do sends one plain request (Google's clients would retry some answers) and returns its HTTP
// status and body.
func (e *env) do(ctx context.Context, t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const tinyModel = `{"model":{"vehicles":[{}],"shipments":[{}]},"timeout":"60s"}`

// TestProjectFaultsOverHTTP: operations created in chosen projects through the admin API, and
// faults set for one project through it, hit that project's reads and submits only; the call
// records tell the calls apart by project, with their arrival and answer.
func TestProjectFaultsOverHTTP(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	op1, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Project: "p1", Location: "us-central1", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	op2, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Project: "p2", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op1, "projects/p1/locations/us-central1/operations/") || !strings.HasPrefix(op2, "projects/p2/locations/global/operations/") {
		t.Fatalf("created %s and %s, want them in projects p1 and p2", op1, op2)
	}

	want := emulator.Faults{Projects: map[string]map[string]emulator.MethodFault{"p1": {
		emulator.MethodGetOperation:             {ResourceExhausted: 1, RetryDelay: 20 * time.Second},
		emulator.MethodOptimizeToursLongRunning: {Unavailable: 1},
	}}}
	if err := e.admin.SetFaults(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := e.admin.Faults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := got.Projects["p1"][emulator.MethodGetOperation]; f.ResourceExhausted != 1 || f.RetryDelay != 20*time.Second || len(got.Methods) != 0 {
		t.Fatalf("faults read back as %+v, want %+v", got, want)
	}

	if code, body := e.do(ctx, t, http.MethodGet, "/v1/"+op1, ""); code != http.StatusTooManyRequests || !strings.Contains(body, `"retryDelay": "20s"`) {
		t.Errorf("GET in p1: %d %s, want 429 with a RetryInfo of 20s", code, body)
	}
	if code, body := e.do(ctx, t, http.MethodGet, "/v1/"+op2, ""); code != http.StatusOK {
		t.Errorf("GET in p2: %d %s, want 200", code, body)
	}
	if code, _ := e.do(ctx, t, http.MethodPost, "/v1/projects/p1/locations/us-central1:optimizeToursLongRunning", tinyModel); code != http.StatusServiceUnavailable {
		t.Errorf("submit under projects/p1/locations/us-central1: %d, want 503", code)
	}
	if code, body := e.do(ctx, t, http.MethodPost, "/v1/projects/p2:optimizeToursLongRunning", tinyModel); code != http.StatusOK {
		t.Errorf("submit under projects/p2: %d %s, want 200", code, body)
	}
	// A cancel in p1 has no entry of p1's and no global one.
	if code, body := e.do(ctx, t, http.MethodPost, "/v1/"+op1+":cancel", ""); code != http.StatusOK {
		t.Errorf("cancel in p1: %d %s, want 200", code, body)
	}

	if err := e.admin.SetFaults(ctx, emulator.Faults{Projects: map[string]map[string]emulator.MethodFault{"p/1": {}}}); err == nil {
		t.Error("the admin API accepted faults for the project ID \"p/1\"")
	} else if ae := (*emulator.AdminError)(nil); !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("faults for project \"p/1\": %v, want 400", err)
	}

	recs, err := e.admin.CallRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		method, project string
		status          int
	}
	var calls []seen
	for _, c := range recs.Calls {
		if c.InFlight() || !c.Arrived.Equal(t0) || !c.Ended.Equal(t0) {
			t.Errorf("call %+v: want arrived and ended at the fake clock's %s", c, t0)
		}
		calls = append(calls, seen{c.Method, c.Project, c.Status})
	}
	wantCalls := []seen{
		{emulator.MethodGetOperation, "p1", 429}, {emulator.MethodGetOperation, "p2", 200},
		{emulator.MethodOptimizeToursLongRunning, "p1", 503}, {emulator.MethodOptimizeToursLongRunning, "p2", 200},
		{emulator.MethodCancelOperation, "p1", 200},
	}
	if len(calls) != len(wantCalls) {
		t.Fatalf("call records %+v, want %+v", calls, wantCalls)
	}
	for i := range calls {
		if calls[i] != wantCalls[i] {
			t.Errorf("call %d: %+v, want %+v", i+1, calls[i], wantCalls[i])
		}
	}
	if n := len(recs.Of(emulator.MethodGetOperation, "p2")); n != 1 {
		t.Errorf("Of(GetOperation, p2) has %d calls, want 1", n)
	}
	if err := e.admin.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if recs, err := e.admin.CallRecords(ctx); err != nil || len(recs.Calls) != 0 {
		t.Errorf("call records after a reset: %+v, %v; want none", recs, err)
	}
}

// TestCallRecordOfAHungCall: a call the hang fault holds is on record from its arrival, in
// flight, and ends without a status once the client gives up.
func TestCallRecordOfAHungCall(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	op, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Project: "p1", Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.admin.SetProjectFaults(ctx, "p1", map[string]emulator.MethodFault{emulator.MethodCancelOperation: {Hang: 1}}); err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, e.url+"/v1/"+op+":cancel", nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	var rec emulator.CallRecord
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		recs, err := e.admin.CallRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := recs.Of(emulator.MethodCancelOperation, "p1"); len(c) == 1 {
			rec = c[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung cancel never showed in the call records")
		}
	}
	if !rec.InFlight() || rec.Name != op || !rec.Arrived.Equal(t0) {
		t.Errorf("hung cancel on record as %+v, want in flight, for %s, arrived at %s", rec, op, t0)
	}
	e.clock.Advance(time.Minute)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the hung cancel was answered")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		recs, err := e.admin.CallRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := recs.Of(emulator.MethodCancelOperation, ""); len(c) == 1 && !c[0].InFlight() {
			if c[0].Status != emulator.StatusNoAnswer || !c[0].Ended.Equal(t0.Add(time.Minute)) {
				t.Errorf("hung cancel ended as %+v, want status %d at %s", c[0], emulator.StatusNoAnswer, t0.Add(time.Minute))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung cancel stayed in flight after its client gave up")
		}
	}
}
