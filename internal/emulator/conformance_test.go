package emulator_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

func tourRequest(parent string, timeout time.Duration) *rpb.OptimizeToursRequest {
	req := &rpb.OptimizeToursRequest{
		Parent: parent,
		Label:  "conformance",
		Model: &rpb.ShipmentModel{
			Vehicles: []*rpb.Vehicle{{Label: "v0", CostPerHour: 30}, {Label: "v1"}, {Label: "v2", Ignore: true}},
			Shipments: []*rpb.Shipment{
				{Label: "s0", Deliveries: []*rpb.Shipment_VisitRequest{{Duration: durationpb.New(2 * time.Minute)}}},
				{Label: "s1", Pickups: []*rpb.Shipment_VisitRequest{{}}, Deliveries: []*rpb.Shipment_VisitRequest{{}}},
				{Label: "s2", Deliveries: []*rpb.Shipment_VisitRequest{{}}, AllowedVehicleIndices: []int32{2}},
			},
		},
	}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	return req
}

func batchRequest(parent string) *rpb.BatchOptimizeToursRequest {
	return &rpb.BatchOptimizeToursRequest{
		Parent: parent,
		ModelConfigs: []*rpb.BatchOptimizeToursRequest_AsyncModelConfig{{
			InputConfig: &rpb.InputConfig{
				Source:     &rpb.InputConfig_GcsSource{GcsSource: &rpb.GcsSource{Uri: "gs://in/model.json"}},
				DataFormat: rpb.DataFormat_JSON,
			},
			OutputConfig: &rpb.OutputConfig{
				Destination: &rpb.OutputConfig_GcsDestination{GcsDestination: &rpb.GcsDestination{Uri: "gs://out/"}},
				DataFormat:  rpb.DataFormat_JSON,
			},
		}},
	}
}

func TestOptimizeToursLongRunningLifecycle(t *testing.T) {
	tests := []struct {
		name, parent, wantPrefix string
	}{
		{"location parent", "projects/p1/locations/us-central1", "projects/p1/locations/us-central1/operations/"},
		{"project parent", "projects/p1", "projects/p1/locations/global/operations/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			ctx := testContext(t)

			op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest(tc.parent, 90*time.Second))
			if err != nil {
				t.Fatalf("OptimizeToursLongRunning: %v", err)
			}
			if !strings.HasPrefix(op.Name(), tc.wantPrefix) {
				t.Errorf("name %q, want prefix %q", op.Name(), tc.wantPrefix)
			}
			if op.Done() {
				t.Fatal("operation done at creation")
			}
			if md, err := op.Metadata(); err != nil || md == nil {
				t.Errorf("Metadata() = %v, %v; want empty OptimizeToursLongRunningMetadata", md, err)
			}

			// Poll while the solve runs: not done, no error.
			if resp, err := op.Poll(ctx); err != nil || resp != nil || op.Done() {
				t.Fatalf("Poll before timeout = %v, %v, done=%v", resp, err, op.Done())
			}
			// The routeoptimization client's own GetOperation sees it too.
			raw, err := e.ro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: op.Name()})
			if err != nil || raw.GetDone() {
				t.Fatalf("GetOperation = %v, %v", raw, err)
			}

			// The request's timeout is the solve duration.
			e.clock.Advance(89 * time.Second)
			if _, err := op.Poll(ctx); err != nil || op.Done() {
				t.Fatalf("Poll 1s before the end: err=%v done=%v", err, op.Done())
			}
			e.clock.Advance(time.Second)
			resp, err := op.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if got := len(resp.GetRoutes()); got != 3 {
				t.Errorf("routes = %d, want one per vehicle (3)", got)
			}
			if resp.GetMetrics().GetTotalCost() <= 0 {
				t.Errorf("metrics.totalCost = %v, want > 0", resp.GetMetrics().GetTotalCost())
			}
			if got := len(resp.GetSkippedShipments()); got != 1 {
				t.Errorf("skipped shipments = %d, want 1 (only allowed vehicle is ignored)", got)
			}
			if resp.GetRequestLabel() != "conformance" {
				t.Errorf("requestLabel = %q", resp.GetRequestLabel())
			}

			// A client rebuilt from the name alone (another process) sees
			// the same result.
			resp2, err := e.ro.OptimizeToursLongRunningOperation(op.Name()).Wait(ctx)
			if err != nil || len(resp2.GetRoutes()) != 3 {
				t.Fatalf("Wait by name = %v, %v", resp2, err)
			}
		})
	}
}

func TestOptimizeToursLongRunningDefaultDuration(t *testing.T) {
	e := newEnv(t, emulator.Options{LongRunningDuration: 20 * time.Second})
	ctx := testContext(t)
	op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", 0))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(19 * time.Second)
	if _, err := op.Poll(ctx); err != nil || op.Done() {
		t.Fatalf("done before the default duration: err=%v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := op.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestBatchOptimizeTours(t *testing.T) {
	for _, parent := range []string{"projects/p2/locations/europe-west1", "projects/p2"} {
		t.Run(parent, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			ctx := testContext(t)
			op, err := e.ro.BatchOptimizeTours(ctx, batchRequest(parent))
			if err != nil {
				t.Fatalf("BatchOptimizeTours: %v", err)
			}
			if md, err := op.Metadata(); err != nil || md == nil {
				t.Errorf("Metadata() = %v, %v", md, err)
			}
			if _, err := op.Poll(ctx); err != nil || op.Done() {
				t.Fatalf("Poll: err=%v done=%v", err, op.Done())
			}
			e.clock.Advance(emulator.DefaultBatchDuration)
			resp, err := op.Wait(ctx)
			if err != nil || resp == nil {
				t.Fatalf("Wait = %v, %v; want BatchOptimizeToursResponse", resp, err)
			}
		})
	}
}

func TestCancelModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      emulator.CancelMode
		wantCode  codes.Code // from CancelOperation
		wantAfter codes.Code // from Poll right after the cancel
		wantDone  bool
	}{
		{"supported", emulator.CancelSupported, codes.OK, codes.Canceled, true},
		{"unimplemented", emulator.CancelUnimplemented, codes.Unimplemented, codes.OK, false},
		{"ignored", emulator.CancelIgnored, codes.OK, codes.OK, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{CancelMode: tc.mode})
			ctx := testContext(t)
			op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			err = e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: op.Name()})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("CancelOperation code = %v (%v), want %v", got, err, tc.wantCode)
			}
			_, err = op.Poll(ctx)
			if got := status.Code(err); got != tc.wantAfter {
				t.Fatalf("Poll after cancel: code %v (%v), want %v", got, err, tc.wantAfter)
			}
			if op.Done() != tc.wantDone {
				t.Fatalf("done after cancel = %v, want %v", op.Done(), tc.wantDone)
			}
			if tc.wantDone {
				raw, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: op.Name()})
				if err != nil || raw.GetError().GetCode() != int32(codes.Canceled) {
					t.Fatalf("cancelled operation = %v, %v; want error.code 1", raw, err)
				}
				return
			}
			// Not cancelled: the solve completes anyway.
			e.clock.Advance(time.Minute)
			if _, err := op.Wait(ctx); err != nil {
				t.Fatalf("Wait after %s cancel: %v", tc.name, err)
			}
		})
	}
}

func TestCancelDelayAndFinished(t *testing.T) {
	e := newEnv(t, emulator.Options{CancelDelay: 5 * time.Second})
	ctx := testContext(t)
	op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: op.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Poll(ctx); err != nil || op.Done() {
		t.Fatalf("cancel took effect before the delay: err=%v", err)
	}
	e.clock.Advance(5 * time.Second)
	if _, err := op.Poll(ctx); status.Code(err) != codes.Canceled {
		t.Fatalf("Poll after the delay: %v, want Canceled", err)
	}

	// Cancelling a finished operation answers {} and changes nothing.
	done, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if err := e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: done.Name()}); err != nil {
		t.Fatalf("cancel finished: %v", err)
	}
	if _, err := done.Wait(ctx); err != nil {
		t.Fatalf("finished operation changed by cancel: %v", err)
	}
}

func TestNotFoundAndRetention(t *testing.T) {
	e := newEnv(t, emulator.Options{Retention: 10 * time.Minute})
	ctx := testContext(t)

	_, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: "projects/p/locations/global/operations/missing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown operation: %v, want NotFound", err)
	}
	err = e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: "projects/p/locations/global/operations/missing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("cancel unknown operation: %v, want NotFound", err)
	}

	op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second) // done now
	e.clock.Advance(10*time.Minute - time.Nanosecond)
	if _, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: op.Name()}); err != nil {
		t.Fatalf("GET just before retention ends: %v", err)
	}
	e.clock.Advance(time.Nanosecond)
	_, err = e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: op.Name()})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GET after retention: %v, want NotFound", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"batch without model configs", func() error {
			_, err := e.ro.BatchOptimizeTours(ctx, &rpb.BatchOptimizeToursRequest{Parent: "projects/p"})
			return err
		}},
		{"timeout out of range", func() error {
			_, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", 2*time.Hour))
			return err
		}},
		{"malformed operation name", func() error {
			_, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: "projects/p/locations/l/operations/a$b"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			var ae *apierror.APIError
			if !errors.As(err, &ae) || ae.Details().BadRequest == nil {
				t.Errorf("want a google.rpc.BadRequest detail, got %v", err)
			}
		})
	}
}

func TestResourceExhaustedRetryInfo(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodOptimizeToursLongRunning: {ResourceExhausted: 1, RetryDelay: 7500 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", 0))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	// The client already returns an *apierror.APIError carrying the parsed
	// details. Calling apierror.FromError on it again re-parses it through
	// its GRPCStatus(), which for HTTP errors has no details, so RetryInfo
	// must be read from the returned error itself (errors.As), or from
	// apierror.FromError applied to the wrapped *googleapi.Error.
	var ae *apierror.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%T is not an *apierror.APIError", err)
	}
	ri := ae.Details().RetryInfo
	if ri == nil || ri.GetRetryDelay().AsDuration() != 7500*time.Millisecond {
		t.Fatalf("RetryInfo = %v, want 7.5s", ri)
	}
	if ae.Reason() != "RATE_LIMIT_EXCEEDED" || ae.HTTPCode() != 429 {
		t.Errorf("reason %q http %d, want RATE_LIMIT_EXCEEDED 429", ae.Reason(), ae.HTTPCode())
	}
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("%T does not wrap a *googleapi.Error", err)
	}
	if fromHTTP, ok := apierror.FromError(gerr); !ok || fromHTTP.Details().RetryInfo.GetRetryDelay().AsDuration() != 7500*time.Millisecond {
		t.Errorf("apierror.FromError(*googleapi.Error) RetryInfo = %v", fromHTTP.Details().RetryInfo)
	}
	if again, _ := apierror.FromError(err); again.Details().RetryInfo == nil {
		t.Logf("as known: apierror.FromError on the client's *apierror.APIError drops the details")
	}
}

func TestUnavailableIsRetriedByClient(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	// The next GetOperation answers 503; the LRO client's default retry
	// (503, backoff from 500ms) must hide it.
	err = e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: {FailNext: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx); err != nil {
		t.Fatalf("Wait with one 503: %v", err)
	}
	c, err := e.admin.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c[emulator.MethodGetOperation][503] != 1 || c[emulator.MethodGetOperation][200] != 1 {
		t.Fatalf("GetOperation counters = %v, want one 503 then one 200", c[emulator.MethodGetOperation])
	}
}

func TestFailAll(t *testing.T) {
	e := newEnv(t, emulator.Options{Faults: emulator.Faults{FailAll: true}})
	ctx := testContext(t)
	// BatchOptimizeTours has no retry configured, so the 503 surfaces.
	_, err := e.ro.BatchOptimizeTours(ctx, batchRequest("projects/p"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

func TestListAndDelete(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	var names []string
	for i := range 5 {
		op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p/locations/l", time.Duration(i+1)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, op.Name())
	}
	if _, err := e.ro.BatchOptimizeTours(ctx, batchRequest("projects/other/locations/l")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(3 * time.Second) // the first three are done

	list := func(collection, filter string) []string {
		t.Helper()
		it := e.lro.ListOperations(ctx, &longrunningpb.ListOperationsRequest{Name: collection, Filter: filter, PageSize: 2})
		var got []string
		for {
			op, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return got
			}
			if err != nil {
				t.Fatalf("ListOperations(%q, %q): %v", collection, filter, err)
			}
			got = append(got, op.GetName())
		}
	}
	tests := []struct {
		collection, filter string
		want               []string
	}{
		{"projects/p/locations/l/operations", "", names},
		{"projects/p/locations/l/operations", "done=true", names[:3]},
		{"projects/p/locations/l/operations", "done = false", names[3:]},
		{"projects/nobody/locations/l/operations", "", nil},
	}
	for _, tc := range tests {
		if got := list(tc.collection, tc.filter); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("list %s %q = %v, want %v", tc.collection, tc.filter, got, tc.want)
		}
	}
	if got := list("operations", ""); len(got) != 6 {
		t.Errorf("list operations = %d items, want 6", len(got))
	}

	if err := e.lro.DeleteOperation(ctx, &longrunningpb.DeleteOperationRequest{Name: names[0]}); err != nil {
		t.Fatalf("DeleteOperation: %v", err)
	}
	if _, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: names[0]}); status.Code(err) != codes.NotFound {
		t.Fatalf("GET after delete: %v, want NotFound", err)
	}
}

func TestListDeleteUnimplementedOutsideSupportedMode(t *testing.T) {
	for _, mode := range []emulator.CancelMode{emulator.CancelUnimplemented, emulator.CancelIgnored} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, emulator.Options{CancelMode: mode})
			ctx := testContext(t)
			op, err := e.ro.OptimizeToursLongRunning(ctx, tourRequest("projects/p", 0))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.lro.ListOperations(ctx, &longrunningpb.ListOperationsRequest{Name: "operations"}).Next()
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("ListOperations: %v, want Unimplemented", err)
			}
			err = e.lro.DeleteOperation(ctx, &longrunningpb.DeleteOperationRequest{Name: op.Name()})
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("DeleteOperation: %v, want Unimplemented", err)
			}
		})
	}
}

func TestAdminCreatedOperations(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	tests := []struct {
		name     string
		req      emulator.CreateOperationRequest
		wantCode codes.Code
		check    func(t *testing.T, name string)
	}{
		{
			name: "long-running success",
			req:  emulator.CreateOperationRequest{Duration: time.Minute},
			check: func(t *testing.T, name string) {
				if !strings.HasPrefix(name, "projects/demo-project/locations/global/operations/") {
					t.Errorf("generated name %q", name)
				}
				e.clock.Advance(time.Minute)
				resp, err := e.ro.OptimizeToursLongRunningOperation(name).Wait(ctx)
				if err != nil || len(resp.GetRoutes()) == 0 || resp.GetMetrics().GetTotalCost() <= 0 {
					t.Errorf("Wait = %v, %v", resp, err)
				}
			},
		},
		{
			name: "batch with chosen name",
			req:  emulator.CreateOperationRequest{Name: "projects/x/locations/y/operations/chosen", Kind: emulator.KindBatchOptimizeTours},
			check: func(t *testing.T, name string) {
				if name != "projects/x/locations/y/operations/chosen" {
					t.Errorf("name %q", name)
				}
				if _, err := e.ro.BatchOptimizeToursOperation(name).Wait(ctx); err != nil {
					t.Errorf("Wait: %v", err)
				}
			},
		},
		{
			name:     "failure with chosen code",
			req:      emulator.CreateOperationRequest{ErrorCode: int32(codes.FailedPrecondition), ErrorMessage: "bad model"},
			wantCode: codes.FailedPrecondition,
		},
		{
			name: "operations/** name",
			req:  emulator.CreateOperationRequest{Name: "operations/abc/def", Duration: time.Hour},
			check: func(t *testing.T, name string) {
				if err := e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
					t.Fatalf("cancel %s: %v", name, err)
				}
				in, err := e.admin.GetOperation(ctx, name)
				if err != nil || !in.Done || !in.CancelRequested || in.ErrorCode != 1 {
					t.Errorf("after cancel: %+v, %v", in, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, err := e.admin.CreateOperation(ctx, tc.req)
			if err != nil {
				t.Fatalf("CreateOperation: %v", err)
			}
			if tc.wantCode != codes.OK {
				_, err := e.ro.OptimizeToursLongRunningOperation(name).Wait(ctx)
				if status.Code(err) != tc.wantCode || !strings.Contains(err.Error(), tc.req.ErrorMessage) {
					t.Fatalf("Wait: %v, want %v %q", err, tc.wantCode, tc.req.ErrorMessage)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, name)
			}
		})
	}

	if _, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Name: "projects/x/locations/y/operations/chosen"}); !strings.Contains(err.Error(), "ALREADY_EXISTS") {
		t.Errorf("duplicate name: %v, want ALREADY_EXISTS", err)
	}
}

func TestAdminFinishExpireList(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	name, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Finish(ctx, name); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if _, err := e.ro.OptimizeToursLongRunningOperation(name).Wait(ctx); err != nil {
		t.Fatalf("Wait after Finish: %v", err)
	}
	ops, err := e.admin.ListOperations(ctx)
	if err != nil || len(ops) != 1 || !ops[0].Done || ops[0].Name != name || ops[0].Kind != emulator.KindOptimizeToursLongRunning {
		t.Fatalf("ListOperations = %+v, %v", ops, err)
	}
	if err := e.admin.Expire(ctx, name); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if _, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Fatalf("GET after Expire: %v, want NotFound", err)
	}
	if err := e.admin.Finish(ctx, name); !emulator.IsNotFound(err) {
		t.Fatalf("Finish of expired: %v, want not found", err)
	}
}

func TestAdminConfigAndReset(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	mode := emulator.CancelUnimplemented
	if err := e.admin.SetConfig(ctx, emulator.Config{CancelMode: &mode}); err != nil {
		t.Fatal(err)
	}
	name, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	err = e.lro.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("cancel after SetConfig: %v, want Unimplemented", err)
	}
	cfg, err := e.admin.Config(ctx)
	if err != nil || *cfg.CancelMode != emulator.CancelUnimplemented || *cfg.Retention != emulator.DefaultRetention {
		t.Fatalf("Config = %+v, %v", cfg, err)
	}

	if err := e.admin.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	ops, _ := e.admin.ListOperations(ctx)
	counters, _ := e.admin.Counters(ctx)
	cfg, _ = e.admin.Config(ctx)
	if len(ops) != 0 || len(counters) != 0 || *cfg.CancelMode != emulator.CancelSupported {
		t.Fatalf("after Reset: ops=%v counters=%v mode=%v", ops, counters, *cfg.CancelMode)
	}

	bad := emulator.CancelMode("sometimes")
	if err := e.admin.SetConfig(ctx, emulator.Config{CancelMode: &bad}); err == nil {
		t.Fatal("SetConfig accepted an unknown cancel mode")
	}
	if err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{"Nope": {Internal: 0.5}}}); err == nil {
		t.Fatal("SetFaults accepted an unknown method")
	}
}
