package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// emulatorEnv is an emulator behind a loopback server, with a factory that talks to it through
// the emulator convention (no credentials).
type emulatorEnv struct {
	url   string
	admin *emulator.AdminClient
	ops   Operations
}

func newEmulatorEnv(t *testing.T, opts emulator.Options, timeout time.Duration, wrap func(http.Handler) http.Handler) *emulatorEnv {
	t.Helper()
	var h http.Handler = emulator.New(opts)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f := NewFactory(context.Background(), Config{EmulatorHost: strings.TrimPrefix(srv.URL, "http://"), Timeout: timeout}, nil)
	ops, err := f.For(Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return &emulatorEnv{url: srv.URL, admin: &emulator.AdminClient{BaseURL: srv.URL}, ops: ops}
}

func (e *emulatorEnv) create(t *testing.T, req emulator.CreateOperationRequest) string {
	t.Helper()
	name, err := e.admin.CreateOperation(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// methods are the two calls, as the controller makes them.
var methods = []struct {
	name string
	call func(ctx context.Context, ops Operations, name string) error
}{
	{emulator.MethodGetOperation, func(ctx context.Context, ops Operations, name string) error {
		_, err := ops.Get(ctx, name)
		return err
	}},
	{emulator.MethodCancelOperation, func(ctx context.Context, ops Operations, name string) error {
		return ops.Cancel(ctx, name)
	}},
}

// holdingServer holds every /v1 request until the test ends, whatever the client does, and
// counts the requests that arrived and the ones it let go.
type holdingServer struct {
	release          chan struct{}
	arrived, settled atomic.Int64
}

func (s *holdingServer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			s.arrived.Add(1)
			<-s.release
			s.settled.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// TestCallsEndAtTheTimeout: with Config.Timeout 1 s and a server that holds the request until
// the test ends, both calls return a deadline error, classified Transient, while the server
// still holds the request. The REST client ignores CallOptions.CancelOperation, so a cancel
// bounded only there would wait for the server.
func TestCallsEndAtTheTimeout(t *testing.T) {
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			hold := &holdingServer{release: make(chan struct{})}
			e := newEmulatorEnv(t, emulator.Options{}, time.Second, hold.wrap)
			t.Cleanup(func() { close(hold.release) }) // runs before the server closes
			name := e.create(t, emulator.CreateOperationRequest{Duration: time.Hour})

			done := make(chan error, 1)
			go func() { done <- m.call(context.Background(), e.ops, name) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s still waits for the server 30 s into a call with a 1 s timeout", m.name)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s = %v, want a deadline error", m.name, err)
			}
			if f := policy.Classify(err); f.Kind != policy.Transient || f.Code != codes.DeadlineExceeded {
				t.Errorf("Classify = %s/%v, want Transient/DeadlineExceeded", f.Kind, f.Code)
			}
			if a, s := hold.arrived.Load(), hold.settled.Load(); a != 1 || s != 0 {
				t.Errorf("server saw %d requests and let %d go, want 1 held", a, s)
			}
		})
	}
}

// TestTokenRequestsEndAtTheTimeout: a trusted token endpoint that hangs does not hold a call
// either: the oauth2 library fetches tokens outside the call's context.
func TestTokenRequestsEndAtTheTimeout(t *testing.T) {
	release := make(chan struct{})
	var arrived, settled atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		settled.Add(1)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	key, err := emulator.NewServiceAccountKey(srv.URL, "tenant@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFactory(context.Background(), Config{Endpoint: srv.URL, Timeout: time.Second,
		TrustedTokenURIs: []string{emulator.TokenURL(srv.URL)}}, nil)
	ops, err := f.For(Credentials{JSON: key})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- methods[0].call(context.Background(), ops, "projects/p/locations/l/operations/1") }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Get still waits for the token endpoint 30 s into a call with a 1 s timeout")
	}
	if err == nil || policy.Classify(err).Kind != policy.Transient {
		t.Fatalf("Get = %v (%v), want a transient failure", err, policy.Classify(err).Kind)
	}
	if a, s := arrived.Load(), settled.Load(); a != 1 || s != 0 {
		t.Errorf("token endpoint saw %d requests and let %d go, want 1 held", a, s)
	}
}

// TestAnswers499And408AreTransient: Go's REST stack reads HTTP 499 and 408 as
// FAILED_PRECONDITION; a cancel answered so was recorded "unsupported" and never sent again.
// Through the emulator's faults, with and without a status in the envelope, both calls
// classify as transient and a cancel stays pending.
func TestAnswers499And408AreTransient(t *testing.T) {
	faults := []struct {
		name  string
		fault emulator.MethodFault
		code  codes.Code
	}{
		{"499 CANCELLED", emulator.MethodFault{Cancelled: 1}, codes.Canceled},
		{"499 without status", emulator.MethodFault{Cancelled: 1, NoStatus: true}, codes.Canceled},
		{"408 DEADLINE_EXCEEDED", emulator.MethodFault{RequestTimeout: 1}, codes.DeadlineExceeded},
		{"408 without status", emulator.MethodFault{RequestTimeout: 1, NoStatus: true}, codes.DeadlineExceeded},
	}
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	name := e.create(t, emulator.CreateOperationRequest{Duration: time.Hour})
	ctx := context.Background()
	for _, fc := range faults {
		for _, m := range methods {
			t.Run(fc.name+"/"+m.name, func(t *testing.T) {
				if err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{m.name: fc.fault}}); err != nil {
					t.Fatal(err)
				}
				err := m.call(ctx, e.ops, name)
				var ae *apierror.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("%s = %v, want the client's *apierror.APIError", m.name, err)
				}
				if f := policy.Classify(err); f.Kind != policy.Transient || f.Code != fc.code {
					t.Errorf("Classify = %s/%v, want Transient/%v (%s)", f.Kind, f.Code, fc.code, f)
				}
				if m.name == emulator.MethodCancelOperation {
					if outcome, msg, answered := policy.CancelOutcome(err); answered {
						t.Errorf("CancelOutcome = %s %q, want the cancel still pending", outcome, msg)
					}
				}
			})
		}
	}
	if err := e.admin.SetFaults(ctx, emulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	if err := e.ops.Cancel(ctx, name); err != nil {
		t.Errorf("Cancel once the faults are gone: %v", err)
	}
}

// Types this build has never heard of, as a newer API version may send.
const (
	futureMetadata = "type.googleapis.com/google.maps.routeoptimization.v2.FutureMetadata"
	futureResponse = "type.googleapis.com/google.maps.routeoptimization.v2.FutureResponse"
	futureDetail   = "type.googleapis.com/google.rpc.FutureDetail"
)

// TestGetReadsOperationsWithUnknownTypes: an unknown @type in metadata, response or
// error.details made the official client fail on every read. Get keeps done, the error's code
// and message, and every type URL.
func TestGetReadsOperationsWithUnknownTypes(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	tests := []struct {
		name  string
		req   emulator.CreateOperationRequest
		check func(t *testing.T, op *longrunningpb.Operation)
	}{
		{"running, unknown metadata", emulator.CreateOperationRequest{MetadataTypeURL: futureMetadata, Duration: time.Hour},
			func(t *testing.T, op *longrunningpb.Operation) {
				if op.GetDone() || op.GetMetadata().GetTypeUrl() != futureMetadata {
					t.Errorf("done=%v metadata @type %q, want running with %s", op.GetDone(), op.GetMetadata().GetTypeUrl(), futureMetadata)
				}
			}},
		{"done, unknown response", emulator.CreateOperationRequest{ResponseTypeURL: futureResponse},
			func(t *testing.T, op *longrunningpb.Operation) {
				if !op.GetDone() || op.GetResponse().GetTypeUrl() != futureResponse || op.GetError() != nil {
					t.Errorf("done=%v response @type %q, want done with %s", op.GetDone(), op.GetResponse().GetTypeUrl(), futureResponse)
				}
			}},
		{"failed, unknown detail", emulator.CreateOperationRequest{ErrorCode: 3, ErrorMessage: "bad model", ErrorDetailTypeURL: futureDetail},
			func(t *testing.T, op *longrunningpb.Operation) {
				st := op.GetError()
				if !op.GetDone() || st.GetCode() != 3 || st.GetMessage() != "bad model" || len(st.GetDetails()) != 1 || st.GetDetails()[0].GetTypeUrl() != futureDetail {
					t.Errorf("done=%v error=%v, want done with code 3, the message and a %s detail", op.GetDone(), st, futureDetail)
				}
				if !strings.HasSuffix(op.GetMetadata().GetTypeUrl(), ".OptimizeToursLongRunningMetadata") {
					t.Errorf("metadata @type %q, want the kind's", op.GetMetadata().GetTypeUrl())
				}
			}},
		{"failed, unknown detail and metadata", emulator.CreateOperationRequest{MetadataTypeURL: futureMetadata,
			ErrorCode: 9, ErrorMessage: "input file not found", ErrorDetailTypeURL: futureDetail},
			func(t *testing.T, op *longrunningpb.Operation) {
				st := op.GetError()
				if !op.GetDone() || st.GetCode() != 9 || st.GetMessage() != "input file not found" {
					t.Errorf("done=%v error=%v, want done with code 9 and the message", op.GetDone(), st)
				}
				if len(st.GetDetails()) != 1 || st.GetDetails()[0].GetTypeUrl() != futureDetail {
					t.Errorf("details = %v, want one of %s", st.GetDetails(), futureDetail)
				}
				if op.GetMetadata().GetTypeUrl() != futureMetadata {
					t.Errorf("metadata @type %q, want %s", op.GetMetadata().GetTypeUrl(), futureMetadata)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := e.create(t, tc.req)
			op, err := e.ops.Get(context.Background(), name)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if op.GetName() != name {
				t.Errorf("name = %q, want %q", op.GetName(), name)
			}
			tc.check(t, op)
		})
	}
}

// TestGetAgreesWithTheOfficialClient: for operations of known types, Get returns what the
// official client's GetOperation returns, and fails the same way.
func TestGetAgreesWithTheOfficialClient(t *testing.T) {
	e := newEmulatorEnv(t, emulator.Options{}, 10*time.Second, nil)
	ctx := context.Background()
	official, err := lroauto.NewOperationsRESTClient(ctx, option.WithEndpoint(e.url), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { official.Close() })

	cancelled := e.create(t, emulator.CreateOperationRequest{Kind: emulator.KindBatchOptimizeTours, Duration: time.Hour})
	if err := e.ops.Cancel(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{
		"running long-running solve": e.create(t, emulator.CreateOperationRequest{Duration: time.Hour}),
		"solved, with routes":        e.create(t, emulator.CreateOperationRequest{}),
		"batch done":                 e.create(t, emulator.CreateOperationRequest{Kind: emulator.KindBatchOptimizeTours}),
		"URI done":                   e.create(t, emulator.CreateOperationRequest{Kind: emulator.KindOptimizeToursURI}),
		"failed":                     e.create(t, emulator.CreateOperationRequest{ErrorCode: 9, ErrorMessage: "input file not found"}),
		"cancelled":                  cancelled,
		"custom response":            e.create(t, emulator.CreateOperationRequest{Response: []byte(`{"routes":[{"vehicleLabel":"v","visits":[{"shipmentLabel":"s"}]}],"skippedShipments":[{"index":1,"reasons":[{"code":"SHIPMENT_IGNORED"}]}]}`)}),
	}
	for what, name := range names {
		t.Run(what, func(t *testing.T) {
			want, err := official.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name})
			if err != nil {
				t.Fatalf("official GetOperation: %v", err)
			}
			got, err := e.ops.Get(ctx, name)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("Get = %v\nofficial client = %v", got, want)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		name := "projects/p/locations/global/operations/404"
		_, wantErr := official.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name})
		_, gotErr := e.ops.Get(ctx, name)
		var want, got *apierror.APIError
		if !errors.As(wantErr, &want) || !errors.As(gotErr, &got) {
			t.Fatalf("errors %v and %v, want both *apierror.APIError", gotErr, wantErr)
		}
		if got.HTTPCode() != want.HTTPCode() || got.GRPCStatus().Code() != want.GRPCStatus().Code() || got.Message() != want.Message() {
			t.Errorf("Get error %d/%v/%q, official %d/%v/%q", got.HTTPCode(), got.GRPCStatus().Code(), got.Message(),
				want.HTTPCode(), want.GRPCStatus().Code(), want.Message())
		}
		if g, w := policy.Classify(gotErr), policy.Classify(wantErr); g != w {
			t.Errorf("Classify = %+v, official %+v", g, w)
		}
	})
}
