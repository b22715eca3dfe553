package remote

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	routeoptimization "cloud.google.com/go/maps/routeoptimization/apiv1"
	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

const submitParent = "projects/my-project/locations/global"

// submitSpecs are one spec.submit per method, as a user writes them.
var submitSpecs = map[string]*opsv1.SubmitSpec{
	submit.MethodOptimizeToursURI: {Parent: submitParent, OptimizeToursURI: &opsv1.OptimizeToursURIRequest{
		Input: opsv1.CloudStorageFile{URI: "gs://in/model.json"}, Output: opsv1.CloudStorageFile{URI: "gs://out/solution.json"}}},
	submit.MethodBatchOptimizeTours: {Parent: "projects/my-project", BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{
		ModelConfigs: []opsv1.AsyncModelConfig{{DisplayName: "monday",
			InputConfig:  opsv1.InputConfig{GCSSource: opsv1.CloudStorageObject{URI: "gs://in/monday.json"}, DataFormat: opsv1.DataFormatJSON},
			OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://out/monday/"}, DataFormat: opsv1.DataFormatProtoText}}}}},
	submit.MethodOptimizeToursLongRunning: {Parent: submitParent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		Inline: &apiextensionsv1.JSON{Raw: []byte(`{"label":"nightly","timeout":"600s","solvingMode":"DEFAULT_SOLVE",
			"model":{"vehicles":[{"label":"van-1","costPerHour":30}],"shipments":[{"label":"p1","deliveries":[{"duration":"300s"}]}]}}`)}}},
}

// built returns the request of method's spec, built as the reconciler builds it.
func built(t *testing.T, method string) submit.Request {
	t.Helper()
	req, err := submit.Build(&opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"},
		Spec:       opsv1.OptimizationOperationSpec{Submit: submitSpecs[method]},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (e *emulatorEnv) submitter(t *testing.T, timeout time.Duration) Submitter {
	t.Helper()
	f := NewFactory(context.Background(), Config{EmulatorHost: strings.TrimPrefix(e.url, "http://"), Timeout: timeout}, nil)
	sub, err := f.SubmitterFor(Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func (e *emulatorEnv) solves(t *testing.T) emulator.SolveCounters {
	t.Helper()
	s, err := e.admin.Solves(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// requests counts the requests of method that reached the emulator, whatever their answer.
func (e *emulatorEnv) requests(t *testing.T, method string) int64 {
	t.Helper()
	c, err := e.admin.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, v := range c[method] {
		n += v
	}
	return n
}

func (e *emulatorEnv) failNext(t *testing.T, method string, mf emulator.MethodFault) {
	t.Helper()
	if err := e.admin.SetFaults(context.Background(), emulator.Faults{Methods: map[string]emulator.MethodFault{method: mf}}); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitStartsOneSolve: each method, built from a spec by internal/submit and sent through
// the official client, starts one solve, which the emulator counts under the hash the
// operator records; the name is under the request's parent.
var submitMetadata = map[string]string{
	submit.MethodOptimizeToursLongRunning: "OptimizeToursLongRunningMetadata",
	submit.MethodBatchOptimizeTours:       "BatchOptimizeToursMetadata",
	submit.MethodOptimizeToursURI:         "OptimizeToursUriMetadata",
}

func TestSubmitStartsOneSolve(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	sub := e.submitter(t, 10*time.Second)
	for method := range submitSpecs {
		t.Run(method, func(t *testing.T) {
			req := built(t, method)
			started, err := sub.Submit(context.Background(), req.Message)
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			name := started.Name
			if !strings.HasPrefix(name, "projects/my-project/locations/global/operations/") {
				t.Errorf("name = %q", name)
			}
			// The answer's metadata is the one its method documents.
			if want := "type.googleapis.com/google.maps.routeoptimization.v1." + submitMetadata[method]; started.MetadataType != want {
				t.Errorf("metadata type = %q, want %q", started.MetadataType, want)
			}
			if s := e.solves(t); s.ByMethod[method] != 1 || s.ByHash[req.Hash] != 1 {
				t.Errorf("solves = %+v, want one for %s under hash %s", s, method, req.Hash)
			}
			if _, err := e.ops.Get(context.Background(), name); err != nil {
				t.Errorf("Get of the submitted operation: %v", err)
			}
		})
	}
	if s := e.solves(t); s.ByLabel["nightly"] != 1 || s.ByLabel["monday"] != 1 {
		t.Errorf("solves by label = %v", s.ByLabel)
	}
}

// TestSubmitIsSentOnceOn503: one 503 UNAVAILABLE answer reaches the caller, and exactly one
// request reached the server; the failure is "not started, retry". The control shows that the
// count would see a retry: the same client with the call option the client gives OptimizeTours
// (retry 503) sends twice.
func TestSubmitIsSentOnceOn503(t *testing.T) {
	for method := range submitSpecs {
		t.Run(method, func(t *testing.T) {
			e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
			sub := e.submitter(t, 10*time.Second)
			e.failNext(t, method, emulator.MethodFault{FailNext: 1})
			_, err := sub.Submit(context.Background(), built(t, method).Message)
			if err == nil {
				t.Fatal("Submit succeeded through a 503")
			}
			if n := e.requests(t, method); n != 1 {
				t.Errorf("%d requests reached the server, want exactly 1", n)
			}
			if f := policy.ClassifySubmit(err); f.MaybeStarted || !f.Retry() {
				t.Errorf("ClassifySubmit = %+v, want not started, retry", f)
			}
			if s := e.solves(t); s.ByMethod[method] != 0 {
				t.Errorf("solves = %+v, want none", s)
			}

			// Control: a client that retries 503 (as the client's OptimizeTours does by
			// default) would have sent it again, and the count would show it.
			ro, err := routeoptimization.NewRESTClient(context.Background(), option.WithEndpoint(e.url), option.WithoutAuthentication())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ro.Close() })
			e.failNext(t, method, emulator.MethodFault{FailNext: 1})
			before := e.requests(t, method)
			if err := sendRetrying(context.Background(), ro, built(t, method).Message); err != nil {
				t.Fatalf("retrying client: %v", err)
			}
			if n := e.requests(t, method) - before; n != 2 {
				t.Errorf("the retrying client sent %d requests, want 2 (the control must see the retry)", n)
			}
		})
	}
}

// sendRetrying submits m with a per-call option that retries 503.
func sendRetrying(ctx context.Context, ro *routeoptimization.Client, m proto.Message) error {
	retry := gax.WithRetry(func() gax.Retryer {
		return gax.OnHTTPCodes(gax.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}, http.StatusServiceUnavailable)
	})
	var err error
	switch r := m.(type) {
	case *rpb.OptimizeToursRequest:
		_, err = ro.OptimizeToursLongRunning(ctx, r, retry)
	case *rpb.BatchOptimizeToursRequest:
		_, err = ro.BatchOptimizeTours(ctx, r, retry)
	case *rpb.OptimizeToursUriRequest:
		_, err = ro.OptimizeToursUri(ctx, r, retry)
	}
	return err
}

// TestSubmitterHasNoRetryOptions: the factory's client has no call options for the submit
// methods, should a later client version read them.
func TestSubmitterHasNoRetryOptions(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	s, ok := e.submitter(t, 10*time.Second).(*submitter)
	if !ok {
		t.Fatal("not the official client's submitter")
	}
	o := s.c.CallOptions
	if len(o.BatchOptimizeTours)+len(o.OptimizeToursLongRunning)+len(o.OptimizeToursUri) != 0 {
		t.Errorf("call options = %+v, want none for the submit methods", o)
	}
}

// TestSubmitAnswerLost: the emulator starts the solve and never answers; Submit ends at the
// factory's timeout, the failure may have started a solve, and no second request was sent.
func TestSubmitAnswerLost(t *testing.T) {
	for method := range submitSpecs {
		t.Run(method, func(t *testing.T) {
			e := newEmulatorEnv(t, emulator.Options{}, time.Second, nil)
			sub := e.submitter(t, time.Second)
			e.failNext(t, method, emulator.MethodFault{HangNext: 1})
			req := built(t, method)
			start := time.Now()
			_, err := sub.Submit(context.Background(), req.Message)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("Submit took %v with a 1s timeout", d)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Submit = %v, want the call's deadline", err)
			}
			if f := policy.ClassifySubmit(err); !f.MaybeStarted || f.Retry() {
				t.Errorf("ClassifySubmit = %+v, want maybe started, no retry", f)
			}
			if s := e.solves(t); s.ByHash[req.Hash] != 1 {
				t.Errorf("solves by hash = %v, want the one solve the lost answer started", s.ByHash)
			}
			// The hung call is counted once the client has gone; nothing else arrived.
			deadline := time.Now().Add(10 * time.Second)
			for e.requests(t, method) != 1 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := e.requests(t, method); n != 1 {
				t.Errorf("%d requests reached the server, want exactly 1", n)
			}
		})
	}
}

// TestSubmitRateLimited: 429 with RetryInfo is "not started, retry after the delay".
func TestSubmitRateLimited(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	sub := e.submitter(t, 10*time.Second)
	method := submit.MethodOptimizeToursLongRunning
	e.failNext(t, method, emulator.MethodFault{ResourceExhausted: 1, RetryDelay: 45 * time.Second})
	_, err := sub.Submit(context.Background(), built(t, method).Message)
	f := policy.ClassifySubmit(err)
	if f.MaybeStarted || !f.Retry() || f.Kind != policy.RateLimited || f.RetryAfter != 45*time.Second {
		t.Errorf("ClassifySubmit(%v) = %+v, want rate limited, not started, retry after 45s", err, f)
	}
	if n := e.requests(t, method); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestSubmitRefusesOtherMessages: only the three request types are sent.
func TestSubmitRefusesOtherMessages(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	if _, err := e.submitter(t, 10*time.Second).Submit(context.Background(), &rpb.OptimizeToursResponse{}); err == nil {
		t.Error("Submit accepted a message that is no request")
	}
	if _, err := e.submitter(t, 10*time.Second).Submit(context.Background(), nil); err == nil {
		t.Error("Submit accepted nil")
	}
}

// TestSubmitObserved: every submit is reported to the factory's observer under its method.
func TestSubmitObserved(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	var (
		mu   sync.Mutex
		seen []string
	)
	f := NewFactory(context.Background(), Config{EmulatorHost: strings.TrimPrefix(e.url, "http://"), Timeout: 10 * time.Second},
		func(method string, err error, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, method)
		})
	sub, err := f.SubmitterFor(Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{submit.MethodOptimizeToursURI, submit.MethodBatchOptimizeTours, submit.MethodOptimizeToursLongRunning} {
		if _, err := sub.Submit(context.Background(), built(t, method).Message); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, ","); got != "OptimizeToursUri,BatchOptimizeTours,OptimizeToursLongRunning" {
		t.Errorf("observed %s", got)
	}
}
