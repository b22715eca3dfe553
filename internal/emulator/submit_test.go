package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/protobuf/proto"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// submitCase is one submit method, called through Google's official REST client as the
// operator calls it.
type submitCase struct {
	method string
	req    func() proto.Message
	labels []string // the labels its solve is counted under
}

func uriRequest(parent string) *rpb.OptimizeToursUriRequest {
	return &rpb.OptimizeToursUriRequest{Parent: parent, Input: &rpb.Uri{Uri: "gs://in/model.json"}, Output: &rpb.Uri{Uri: "gs://out/solution.json"}}
}

var submitCases = []submitCase{
	{emulator.MethodOptimizeToursLongRunning, func() proto.Message { return tourRequest("projects/p/locations/global", time.Minute) }, []string{"conformance"}},
	{emulator.MethodBatchOptimizeTours, func() proto.Message {
		r := batchRequest("projects/p")
		r.ModelConfigs = append(r.ModelConfigs, proto.Clone(r.ModelConfigs[0]).(*rpb.BatchOptimizeToursRequest_AsyncModelConfig))
		r.ModelConfigs[0].DisplayName, r.ModelConfigs[1].DisplayName = "monday", "tuesday"
		return r
	}, []string{"monday", "tuesday"}},
	{emulator.MethodOptimizeToursURI, func() proto.Message { return uriRequest("projects/p/locations/europe-west1") }, nil},
}

// send submits req with the official client and returns the operation name.
func (e *env) send(ctx context.Context, req proto.Message) (string, error) {
	switch r := req.(type) {
	case *rpb.OptimizeToursRequest:
		return opName(e.ro.OptimizeToursLongRunning(ctx, r))
	case *rpb.BatchOptimizeToursRequest:
		return opName(e.ro.BatchOptimizeTours(ctx, r))
	case *rpb.OptimizeToursUriRequest:
		return opName(e.ro.OptimizeToursUri(ctx, r))
	}
	panic("not a submit")
}

func opName[T interface{ Name() string }](op T, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return op.Name(), nil
}

func (e *env) solves(t *testing.T) emulator.SolveCounters {
	t.Helper()
	s, err := e.admin.Solves(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eachSubmit runs test for each submit method, in a subtest named prefix+method, against a
// fresh emulator whose only fault is mf on that method.
func eachSubmit(t *testing.T, prefix string, mf emulator.MethodFault, test func(t *testing.T, e *env, sc submitCase)) {
	for _, sc := range submitCases {
		t.Run(prefix+sc.method, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			if err := e.admin.SetFaults(testContext(t), emulator.Faults{Methods: map[string]emulator.MethodFault{sc.method: mf}}); err != nil {
				t.Fatal(err)
			}
			test(t, e, sc)
		})
	}
}

// TestSubmitSolveCounters: a solve started by each submit method is counted by method, by the
// request hash internal/submit computes, and by label.
func TestSubmitSolveCounters(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	for _, sc := range submitCases {
		req := sc.req()
		if _, err := e.send(ctx, req); err != nil {
			t.Fatalf("%s: %v", sc.method, err)
		}
		hash, err := submit.Hash(req)
		if err != nil {
			t.Fatal(err)
		}
		s := e.solves(t)
		if s.ByMethod[sc.method] != 1 || s.ByHash[hash] != 1 {
			t.Errorf("%s: solves = %+v, want 1 for the method and for hash %s", sc.method, s, hash)
		}
		for _, l := range sc.labels {
			if s.ByLabel[l] != 1 {
				t.Errorf("%s: solves by label = %v, want 1 for %q", sc.method, s.ByLabel, l)
			}
		}
	}
	// The same request again is a second solve under the same hash.
	req := submitCases[0].req()
	if _, err := e.send(ctx, req); err != nil {
		t.Fatal(err)
	}
	hash, _ := submit.Hash(req)
	if s := e.solves(t); s.ByHash[hash] != 2 || s.ByLabel["conformance"] != 2 || len(s.ByHash) != 3 {
		t.Errorf("after a second identical request: %+v", s)
	}
	if err := e.admin.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.solves(t); len(s.ByMethod)+len(s.ByHash)+len(s.ByLabel) != 0 {
		t.Errorf("after Reset: %+v", s)
	}
}

// TestSubmitErrorFaults: the injected error answers apply to the submit methods, answer before
// the body is read, start no solve, and the official client sends each submit once (it has no
// retry for them, unlike OptimizeTours and GetOperation).
func TestSubmitErrorFaults(t *testing.T) {
	faults := []struct {
		name     string
		fault    emulator.MethodFault
		httpCode int
	}{
		{"503 failNext", emulator.MethodFault{FailNext: 1}, 503},
		{"503 rate", emulator.MethodFault{Unavailable: 1}, 503},
		{"429 with RetryInfo", emulator.MethodFault{ResourceExhausted: 1, RetryDelay: 2 * time.Second}, 429},
		{"500", emulator.MethodFault{Internal: 1}, 500},
		{"403", emulator.MethodFault{PermissionDenied: 1}, 403},
	}
	for _, fc := range faults {
		eachSubmit(t, fc.name+"/", fc.fault, func(t *testing.T, e *env, sc submitCase) {
			_, err := e.send(testContext(t), sc.req())
			var ae *apierror.APIError
			if !errors.As(err, &ae) || ae.HTTPCode() != fc.httpCode {
				t.Fatalf("error = %v, want HTTP %d", err, fc.httpCode)
			}
			c, err := e.admin.Counters(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := c[sc.method]; len(got) != 1 || got[fc.httpCode] != 1 {
				t.Errorf("counters = %v, want exactly one request, answered %d", got, fc.httpCode)
			}
			if s := e.solves(t); s.ByMethod[sc.method] != 0 {
				t.Errorf("solves = %+v, want none", s)
			}
		})
	}
}

// TestSubmitLatency: injected latency delays a submit's answer; the solve starts.
func TestSubmitLatency(t *testing.T) {
	eachSubmit(t, "", emulator.MethodFault{Latency: 300 * time.Millisecond}, func(t *testing.T, e *env, sc submitCase) {
		start := time.Now()
		if _, err := e.send(testContext(t), sc.req()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("answered after %v, want at least 300ms", d)
		}
		if s := e.solves(t); s.ByMethod[sc.method] != 1 {
			t.Errorf("solves = %+v, want 1", s)
		}
	})
}

// TestSubmitHangStartsTheSolve: with the hang fault a submit starts its solve and never
// answers; the client's deadline ends the call, and only the emulator knows a solve started:
// the uncertain case. The call is counted under status 0 once the client has gone, and the
// next call is answered.
func TestSubmitHangStartsTheSolve(t *testing.T) {
	eachSubmit(t, "", emulator.MethodFault{HangNext: 1}, func(t *testing.T, e *env, sc submitCase) {
		req := sc.req()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := e.send(ctx, req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want the client's deadline", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the call took %v", d)
		}
		hash, _ := submit.Hash(req)
		if s := e.solves(t); s.ByMethod[sc.method] != 1 || s.ByHash[hash] != 1 {
			t.Errorf("solves = %+v, want the one solve the lost call started", s)
		}
		ops, err := e.admin.ListOperations(testContext(t))
		if err != nil || len(ops) != 1 {
			t.Fatalf("operations = %v, %v; want the one started", ops, err)
		}
		waitForCounter(t, e, sc.method, emulator.StatusNoAnswer, 1)
		if _, err := e.send(testContext(t), req); err != nil {
			t.Fatalf("the call after the hang: %v", err)
		}
		if s := e.solves(t); s.ByHash[hash] != 2 {
			t.Errorf("solves by hash = %v, want 2 after a second send", s.ByHash)
		}
	})
}

// waitForCounter waits until the counter of method and status reaches want: a hung call is
// counted when its handler returns, after the client has gone.
func waitForCounter(t *testing.T, e *env, method string, status int, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := e.admin.Counters(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if c[method][status] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters[%s] = %v, want %d under %d", method, c[method], want, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHangWireNoAnswer: on the wire, a hung call gets no status line, no header and no byte,
// whatever the client waits; the operation exists at once.
func TestHangWireNoAnswer(t *testing.T) {
	e := newEnv(t, emulator.Options{Faults: emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodOptimizeToursURI: {Hang: 1},
	}}})
	hc := &http.Client{Timeout: 400 * time.Millisecond}
	resp, err := hc.Post(e.url+"/v1/projects/p:OptimizeToursUri", "application/json",
		strings.NewReader(`{"input":{"uri":"gs://in/m.json"},"output":{"uri":"gs://out/s.json"}}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %s, want no answer", resp.Status)
	}
	var ue interface{ Timeout() bool }
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Errorf("error = %v, want a client time-out", err)
	}
	if s := e.solves(t); s.ByMethod[emulator.MethodOptimizeToursURI] != 1 {
		t.Errorf("solves = %+v", s)
	}
	waitForCounter(t, e, emulator.MethodOptimizeToursURI, emulator.StatusNoAnswer, 1)
	// Raw JSON of the admin API.
	code, _, body := call(t, http.MethodGet, e.url+"/emulator/v1/solves", "")
	if code != 200 || len(keys(body)) != 3 {
		t.Errorf("GET /emulator/v1/solves = %d %v, want byMethod, byHash, byLabel", code, body)
	}
}

// TestHangOnInvalidRequest: a hung call the method refuses starts nothing and is still
// released when the client gives up, body unread or not.
func TestHangOnInvalidRequest(t *testing.T) {
	e := newEnv(t, emulator.Options{Faults: emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodOptimizeToursLongRunning: {Hang: 1},
	}}})
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	for i, path := range []string{"/v1/projects/a%2Fb:optimizeToursLongRunning", "/v1/projects/p:optimizeToursLongRunning"} {
		resp, err := hc.Post(e.url+path, "application/json", strings.NewReader(`{"unknownField":{}}`))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s answered %s, want no answer", path, resp.Status)
		}
		waitForCounter(t, e, emulator.MethodOptimizeToursLongRunning, emulator.StatusNoAnswer, int64(i+1))
	}
	if s := e.solves(t); len(s.ByMethod) != 0 {
		t.Errorf("solves = %+v, want none", s)
	}
}

// TestSolvesEndByTheirTimeout: a long-running solve ends at its request's timeout, or, for the
// share EarlyFinish of them, before it; never after it.
func TestSolvesEndByTheirTimeout(t *testing.T) {
	const timeout = 20 * time.Minute
	for _, share := range []float64{0, 0.5, 1} {
		t.Run(fmt.Sprint(share), func(t *testing.T) {
			e := newEnv(t, emulator.Options{EarlyFinish: share, Seed: 7})
			ctx := testContext(t)
			var early int
			const n = 40
			for range n {
				name, err := e.send(ctx, tourRequest("projects/p/locations/global", timeout))
				if err != nil {
					t.Fatal(err)
				}
				info, err := e.admin.GetOperation(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				switch d := info.EndTime.Sub(info.CreateTime); {
				case d > timeout+time.Second:
					t.Fatalf("solve of %s planned to end after %s, past its timeout %s", name, d, timeout)
				case d < timeout-time.Second:
					early++
				}
			}
			switch {
			case share == 0 && early != 0, share == 1 && early != n, share == 0.5 && (early == 0 || early == n):
				t.Errorf("%d of %d solves end early with EarlyFinish %v", early, n, share)
			}
		})
	}
}
