package policy_test

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

const (
	typeOptimizeToursResponse          = "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse"
	typeOptimizeToursUriResponse       = "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursUriResponse"
	typeBatchResponse                  = "type.googleapis.com/google.maps.routeoptimization.v1.BatchOptimizeToursResponse"
	typeBatchMetadata                  = "type.googleapis.com/google.maps.routeoptimization.v1.BatchOptimizeToursMetadata"
	typeLongRunningMetadata            = "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursLongRunningMetadata"
	testGeneration               int64 = 3
)

var t0 = metav1.NewTime(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))

func newObj(muts ...func(*opsv1.OptimizationOperation)) *opsv1.OptimizationOperation {
	obj := &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Name: "solve", Namespace: "default", Generation: testGeneration},
		Spec:       opsv1.OptimizationOperationSpec{OperationName: opName},
	}
	for _, m := range muts {
		m(obj)
	}
	return obj
}

func started(o *opsv1.OptimizationOperation) { o.Status.StartTime = t0.DeepCopy() }

func cancelSpec(o *opsv1.OptimizationOperation) { o.Spec.Cancel = true }

func outcome(out opsv1.CancelOutcome) func(*opsv1.OptimizationOperation) {
	return func(o *opsv1.OptimizationOperation) {
		o.Status.Cancel = &opsv1.CancelStatus{RequestedAt: t0.DeepCopy(), Outcome: out, Message: "server said " + string(out)}
	}
}

func doneOK(o *opsv1.OptimizationOperation) {
	started(o)
	o.Status.Done = true
	o.Status.CompletionTime = t0.DeepCopy()
	o.Status.Result = &opsv1.OperationResult{Type: typeBatchResponse}
}

func doneErr(code int32, msg string) func(*opsv1.OptimizationOperation) {
	return func(o *opsv1.OptimizationOperation) {
		started(o)
		o.Status.Done = true
		o.Status.CompletionTime = t0.DeepCopy()
		o.Status.Error = &opsv1.OperationError{Code: code, Status: policy.CodeName(code), Message: msg}
	}
}

// priorRunning leaves the conditions a successful read of a running operation writes.
func priorRunning(o *opsv1.OptimizationOperation) {
	started(o)
	policy.SetConditions(o, policy.Problem{})
}

var (
	notFoundProblem = policy.ProblemFor(opName, policy.Failure{Kind: policy.NotFound, Code: codes.NotFound, Message: "no such operation"}, false)
	authProblem     = policy.ProblemFor(opName, policy.Failure{Kind: policy.Auth, Code: codes.PermissionDenied, Message: "denied"}, false)
	unauthProblem   = policy.ProblemFor(opName, policy.Failure{Kind: policy.Auth, Code: codes.Unauthenticated, Message: "bad token"}, false)
	rejectedProblem = policy.ProblemFor(opName, policy.Failure{Kind: policy.Rejected, Code: codes.InvalidArgument, Message: "bad name"}, false)
	unavailProblem  = policy.ProblemFor(opName, policy.Failure{Kind: policy.Transient, Code: codes.Unavailable, Message: "down"}, true)
)

// cond is an expected condition; the zero value means the condition must be absent.
type cond struct {
	status metav1.ConditionStatus
	reason string
}

var absent = cond{}

func checkCond(t *testing.T, obj *opsv1.OptimizationOperation, typ string, want cond, msgHas []string) {
	t.Helper()
	c := meta.FindStatusCondition(obj.Status.Conditions, typ)
	if want == absent {
		if c != nil {
			t.Errorf("%s = %s/%s (%q), want it absent", typ, c.Status, c.Reason, c.Message)
		}
		return
	}
	if c == nil {
		t.Errorf("%s is absent, want %s/%s", typ, want.status, want.reason)
		return
	}
	if c.Status != want.status || c.Reason != want.reason {
		t.Errorf("%s = %s/%s, want %s/%s (message %q)", typ, c.Status, c.Reason, want.status, want.reason, c.Message)
	}
	if c.ObservedGeneration != obj.Generation {
		t.Errorf("%s.observedGeneration = %d, want %d", typ, c.ObservedGeneration, obj.Generation)
	}
	if c.LastTransitionTime.IsZero() {
		t.Errorf("%s has no lastTransitionTime", typ)
	}
	if !strings.Contains(c.Message, opName) {
		t.Errorf("%s message %q does not name the operation %s", typ, c.Message, opName)
	}
	for _, s := range msgHas {
		if !strings.Contains(strings.ToUpper(c.Message), strings.ToUpper(s)) {
			t.Errorf("%s message %q does not contain %q", typ, c.Message, s)
		}
	}
}

// TestSetConditions is the status table of the API: one case per situation.
func TestSetConditions(t *testing.T) {
	var (
		unknown = metav1.ConditionUnknown
		isFalse = metav1.ConditionFalse
		isTrue  = metav1.ConditionTrue
	)
	cases := []struct {
		name    string
		setup   []func(*opsv1.OptimizationOperation)
		problem policy.Problem
		// succeeded, ready and stalled are the expected conditions.
		succeeded, ready, stalled cond
		// msgHas must appear (case-insensitively) in the Ready and Stalled messages.
		msgHas []string
	}{
		{name: "before first read",
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonPending}},
		{name: "before first read with spec.cancel", setup: fns(cancelSpec),
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonPending}},
		{name: "running", setup: fns(started),
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonRunning}},
		{name: "running, cancel outcome AlreadyDone but not done", setup: fns(started, outcome(opsv1.CancelAlreadyDone)),
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonRunning}},
		{name: "cancel requested, nothing recorded yet", setup: fns(started, cancelSpec),
			succeeded: cond{unknown, opsv1.ReasonCancelling}, ready: cond{isFalse, opsv1.ReasonCancelling}},
		{name: "cancel sent, outcome empty", setup: fns(started, cancelSpec, outcome("")),
			succeeded: cond{unknown, opsv1.ReasonCancelling}, ready: cond{isFalse, opsv1.ReasonCancelling}},
		{name: "cancel sent, outcome Accepted", setup: fns(started, cancelSpec, outcome(opsv1.CancelAccepted)),
			succeeded: cond{unknown, opsv1.ReasonCancelling}, ready: cond{isFalse, opsv1.ReasonCancelling}},
		{name: "cancel answered UNIMPLEMENTED", setup: fns(started, cancelSpec, outcome(opsv1.CancelUnsupported)),
			succeeded: cond{unknown, opsv1.ReasonCancelUnsupported}, ready: cond{isFalse, opsv1.ReasonCancelUnsupported},
			msgHas: []string{"server said Unsupported"}},
		{name: "cancel answered NOT_FOUND", setup: fns(started, cancelSpec, outcome(opsv1.CancelNotFound)),
			succeeded: cond{unknown, opsv1.ReasonCancelUnsupported}, ready: cond{isFalse, opsv1.ReasonCancelUnsupported},
			msgHas: []string{"server said NotFound"}},
		{name: "done with response", setup: fns(doneOK),
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
		{name: "done with response, cancel Accepted", setup: fns(doneOK, cancelSpec, outcome(opsv1.CancelAccepted)),
			succeeded: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}, ready: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}},
		{name: "done with response, cancel Unsupported", setup: fns(doneOK, cancelSpec, outcome(opsv1.CancelUnsupported)),
			succeeded: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}, ready: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}},
		{name: "done with response, cancel NotFound", setup: fns(doneOK, cancelSpec, outcome(opsv1.CancelNotFound)),
			succeeded: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}, ready: cond{isTrue, opsv1.ReasonCompletedDespiteCancel}},
		{name: "done with response, cancel AlreadyDone", setup: fns(doneOK, cancelSpec, outcome(opsv1.CancelAlreadyDone)),
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
		{name: "cancelled as requested", setup: fns(doneErr(1, "Operation cancelled by the caller"), cancelSpec, outcome(opsv1.CancelAccepted)),
			succeeded: cond{isFalse, opsv1.ReasonCancelled}, ready: cond{isTrue, opsv1.ReasonCancelled},
			msgHas: []string{"CANCELLED (code 1)", "Operation cancelled by the caller"}},
		{name: "cancelled as requested, outcome not recorded", setup: fns(doneErr(1, "cancelled"), cancelSpec),
			succeeded: cond{isFalse, opsv1.ReasonCancelled}, ready: cond{isTrue, opsv1.ReasonCancelled},
			msgHas: []string{"CANCELLED (code 1)"}},
		{name: "cancelled elsewhere", setup: fns(doneErr(1, "Operation cancelled by the caller")),
			succeeded: cond{isFalse, opsv1.ReasonCancelled}, ready: cond{isFalse, opsv1.ReasonCancelled},
			stalled: cond{isTrue, opsv1.ReasonCancelled}, msgHas: []string{"CANCELLED (code 1)", "Operation cancelled by the caller"}},
		{name: "failed INVALID_ARGUMENT", setup: fns(doneErr(3, "shipment 4 has no vehicle")),
			succeeded: cond{isFalse, opsv1.ReasonFailed}, ready: cond{isFalse, opsv1.ReasonFailed},
			stalled: cond{isTrue, opsv1.ReasonFailed}, msgHas: []string{"INVALID_ARGUMENT", "code 3", "shipment 4 has no vehicle"}},
		{name: "failed DEADLINE_EXCEEDED", setup: fns(doneErr(4, "solve timed out")),
			succeeded: cond{isFalse, opsv1.ReasonFailed}, ready: cond{isFalse, opsv1.ReasonFailed},
			stalled: cond{isTrue, opsv1.ReasonFailed}, msgHas: []string{"DEADLINE_EXCEEDED", "solve timed out"}},
		{name: "failed INTERNAL with spec.cancel", setup: fns(doneErr(13, "boom"), cancelSpec, outcome(opsv1.CancelAccepted)),
			succeeded: cond{isFalse, opsv1.ReasonFailed}, ready: cond{isFalse, opsv1.ReasonFailed},
			stalled: cond{isTrue, opsv1.ReasonFailed}, msgHas: []string{"INTERNAL", "boom"}},
		{name: "not done, NotFound", setup: fns(started), problem: notFoundProblem,
			succeeded: cond{isFalse, opsv1.ReasonNotFound}, ready: cond{isFalse, opsv1.ReasonNotFound},
			stalled: cond{isTrue, opsv1.ReasonNotFound}, msgHas: []string{"NOT_FOUND"}},
		{name: "never read, NotFound", problem: notFoundProblem,
			succeeded: cond{isFalse, opsv1.ReasonNotFound}, ready: cond{isFalse, opsv1.ReasonNotFound},
			stalled: cond{isTrue, opsv1.ReasonNotFound}, msgHas: []string{"NOT_FOUND"}},
		{name: "AuthFailed, no previous Succeeded", problem: authProblem,
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonAuthFailed},
			stalled: cond{isTrue, opsv1.ReasonAuthFailed}, msgHas: []string{"PERMISSION_DENIED"}},
		{name: "AuthFailed, previous Succeeded Running", setup: fns(priorRunning), problem: authProblem,
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonAuthFailed},
			stalled: cond{isTrue, opsv1.ReasonAuthFailed}, msgHas: []string{"PERMISSION_DENIED"}},
		{name: "AuthFailed UNAUTHENTICATED while cancelling", setup: fns(cancelSpec, priorRunning), problem: unauthProblem,
			succeeded: cond{unknown, opsv1.ReasonCancelling}, ready: cond{isFalse, opsv1.ReasonAuthFailed},
			stalled: cond{isTrue, opsv1.ReasonAuthFailed}, msgHas: []string{"UNAUTHENTICATED"}},
		{name: "credentials could not be loaded", problem: policy.CredentialsProblem(opName, &policy.CredentialsError{Err: errBadKey}),
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonAuthFailed},
			stalled: cond{isTrue, opsv1.ReasonAuthFailed}, msgHas: []string{errBadKey.Error()}},
		{name: "RequestRejected, previous Succeeded Running", setup: fns(priorRunning), problem: rejectedProblem,
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonRequestRejected},
			stalled: cond{isTrue, opsv1.ReasonRequestRejected}, msgHas: []string{"INVALID_ARGUMENT"}},
		{name: "RequestRejected, no previous Succeeded", problem: rejectedProblem,
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonRequestRejected},
			stalled: cond{isTrue, opsv1.ReasonRequestRejected}, msgHas: []string{"INVALID_ARGUMENT"}},
		{name: "RemoteUnavailable, previous Succeeded Running", setup: fns(priorRunning), problem: unavailProblem,
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonRemoteUnavailable},
			msgHas: []string{"UNAVAILABLE"}},
		{name: "RemoteUnavailable, no previous Succeeded", problem: unavailProblem,
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonRemoteUnavailable},
			msgHas: []string{"UNAVAILABLE"}},
		{name: "RemoteUnavailable after AuthFailed clears Stalled", setup: fns(priorRunning, withProblem(authProblem)), problem: unavailProblem,
			succeeded: cond{unknown, opsv1.ReasonRunning}, ready: cond{isFalse, opsv1.ReasonRemoteUnavailable},
			msgHas: []string{"UNAVAILABLE"}},
		{name: "done with response + NotFound problem", setup: fns(doneOK), problem: notFoundProblem,
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
		{name: "done with response + AuthFailed problem", setup: fns(doneOK), problem: authProblem,
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
		{name: "done with response + RemoteUnavailable problem", setup: fns(doneOK), problem: unavailProblem,
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
		{name: "cancelled as requested + RequestRejected problem", setup: fns(doneErr(1, "cancelled"), cancelSpec, outcome(opsv1.CancelAccepted)), problem: rejectedProblem,
			succeeded: cond{isFalse, opsv1.ReasonCancelled}, ready: cond{isTrue, opsv1.ReasonCancelled}},
		{name: "failed + AuthFailed problem", setup: fns(doneErr(3, "bad model")), problem: authProblem,
			succeeded: cond{isFalse, opsv1.ReasonFailed}, ready: cond{isFalse, opsv1.ReasonFailed},
			stalled: cond{isTrue, opsv1.ReasonFailed}, msgHas: []string{"INVALID_ARGUMENT"}},
		{name: "done after a Stalled AuthFailed", setup: fns(priorRunning, withProblem(authProblem), doneOK),
			succeeded: cond{isTrue, opsv1.ReasonSucceeded}, ready: cond{isTrue, opsv1.ReasonSucceeded}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newObj(tc.setup...)
			policy.SetConditions(obj, tc.problem)
			checkCond(t, obj, opsv1.ConditionSucceeded, tc.succeeded, nil)
			checkCond(t, obj, opsv1.ConditionReady, tc.ready, tc.msgHas)
			checkCond(t, obj, opsv1.ConditionStalled, tc.stalled, tc.msgHas)
			if n := len(obj.Status.Conditions); n != 2 && n != 3 {
				t.Errorf("%d conditions, want Succeeded, Ready and at most Stalled: %+v", n, obj.Status.Conditions)
			}
		})
	}
}

func fns(f ...func(*opsv1.OptimizationOperation)) []func(*opsv1.OptimizationOperation) { return f }

func withProblem(p policy.Problem) func(*opsv1.OptimizationOperation) {
	return func(o *opsv1.OptimizationOperation) { policy.SetConditions(o, p) }
}

var errBadKey = errorString(`secret "sa" has no key "key.json"`)

type errorString string

func (e errorString) Error() string { return string(e) }

// TestSetConditionsRecovery: a problem that goes away leaves no trace in the conditions.
func TestSetConditionsRecovery(t *testing.T) {
	cases := []struct {
		name    string
		setup   []func(*opsv1.OptimizationOperation)
		problem policy.Problem
		want    string
	}{
		{"AuthFailed then read", fns(priorRunning), authProblem, opsv1.ReasonRunning},
		{"AuthFailed before any read, then read", fns(withProblem(authProblem), started), authProblem, opsv1.ReasonRunning},
		{"RequestRejected then read", fns(priorRunning), rejectedProblem, opsv1.ReasonRunning},
		{"NotFound then read", fns(priorRunning), notFoundProblem, opsv1.ReasonRunning},
		{"RemoteUnavailable then read", fns(priorRunning), unavailProblem, opsv1.ReasonRunning},
		{"AuthFailed while cancelling then read", fns(cancelSpec, priorRunning), authProblem, opsv1.ReasonCancelling},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newObj(tc.setup...)
			policy.SetConditions(obj, tc.problem)
			if tc.problem.Reason != opsv1.ReasonRemoteUnavailable {
				checkCond(t, obj, opsv1.ConditionStalled, cond{metav1.ConditionTrue, tc.problem.Reason}, nil)
			}
			policy.SetConditions(obj, policy.Problem{})
			checkCond(t, obj, opsv1.ConditionStalled, absent, nil)
			checkCond(t, obj, opsv1.ConditionSucceeded, cond{metav1.ConditionUnknown, tc.want}, nil)
			checkCond(t, obj, opsv1.ConditionReady, cond{metav1.ConditionFalse, tc.want}, nil)
		})
	}
}

// TestSetConditionsTransitionTime: lastTransitionTime moves only when a condition's status does.
func TestSetConditionsTransitionTime(t *testing.T) {
	past := metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	cases := []struct {
		name string
		// first and then are applied in turn; between them every lastTransitionTime is set to past.
		first, then func(*opsv1.OptimizationOperation)
		// moved lists the condition types whose status changed.
		moved map[string]bool
	}{
		{"same call twice (running)", started, func(*opsv1.OptimizationOperation) {}, nil},
		{"same call twice (done)", doneOK, func(*opsv1.OptimizationOperation) {}, nil},
		{"running to cancelling: reasons change, statuses do not", started, cancelSpec, nil},
		{"pending to running", func(*opsv1.OptimizationOperation) {}, started, nil},
		{"running to succeeded", started, doneOK, map[string]bool{opsv1.ConditionSucceeded: true, opsv1.ConditionReady: true}},
		{"running to failed", started, doneErr(3, "bad"), map[string]bool{opsv1.ConditionSucceeded: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newObj(tc.first)
			policy.SetConditions(obj, policy.Problem{})
			for i := range obj.Status.Conditions {
				obj.Status.Conditions[i].LastTransitionTime = past
			}
			tc.then(obj)
			policy.SetConditions(obj, policy.Problem{})
			for _, typ := range []string{opsv1.ConditionSucceeded, opsv1.ConditionReady} {
				c := meta.FindStatusCondition(obj.Status.Conditions, typ)
				if c == nil {
					t.Fatalf("%s missing", typ)
				}
				if moved := !c.LastTransitionTime.Equal(&past); moved != tc.moved[typ] {
					t.Errorf("%s lastTransitionTime moved = %v, want %v (status %s)", typ, moved, tc.moved[typ], c.Status)
				}
			}
		})
	}
}

func TestSetConditionsObservedGeneration(t *testing.T) {
	for _, setup := range [][]func(*opsv1.OptimizationOperation){nil, fns(started), fns(doneErr(5, "x")), fns(priorRunning, withProblem(authProblem))} {
		obj := newObj(setup...)
		for _, gen := range []int64{1, 7, 8} {
			obj.Generation = gen
			policy.SetConditions(obj, policy.Problem{})
			for _, c := range obj.Status.Conditions {
				if c.ObservedGeneration != gen {
					t.Errorf("%s.observedGeneration = %d, want %d", c.Type, c.ObservedGeneration, gen)
				}
			}
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestApplyOperation(t *testing.T) {
	now := metav1.NewTime(time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC))
	i32 := func(v int32) *int32 { return &v }
	i64 := func(v int64) *int64 { return &v }

	cases := []struct {
		name string
		st   opsv1.OptimizationOperationStatus
		op   func(t *testing.T) *longrunningpb.Operation
		want opsv1.OptimizationOperationStatus
	}{
		{name: "first read of a running operation",
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Metadata: mustAny(t, &routeoptimizationpb.BatchOptimizeToursMetadata{})}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &now, MetadataType: typeBatchMetadata}},
		{name: "running operation without metadata",
			op:   func(*testing.T) *longrunningpb.Operation { return &longrunningpb.Operation{Name: opName} },
			want: opsv1.OptimizationOperationStatus{StartTime: &now}},
		{name: "later read keeps startTime",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0, MetadataType: typeBatchMetadata},
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Metadata: mustAny(t, &routeoptimizationpb.OptimizeToursLongRunningMetadata{})}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, MetadataType: typeLongRunningMetadata}},
		{name: "done with OptimizeToursResponse",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Metadata: mustAny(t, &routeoptimizationpb.OptimizeToursLongRunningMetadata{}),
					Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.OptimizeToursResponse{
						Routes: []*routeoptimizationpb.ShipmentRoute{
							{VehicleIndex: 0, Visits: []*routeoptimizationpb.ShipmentRoute_Visit{{ShipmentIndex: 0, IsPickup: true}, {ShipmentIndex: 0}}},
							{VehicleIndex: 1, Visits: []*routeoptimizationpb.ShipmentRoute_Visit{{ShipmentIndex: 1}}},
							{VehicleIndex: 2}},
						SkippedShipments: []*routeoptimizationpb.SkippedShipment{{Index: 4}, {Index: 9}},
						Metrics: &routeoptimizationpb.OptimizeToursResponse_Metrics{TotalCost: 1234.5, UsedVehicleCount: 2,
							AggregatedRouteMetrics: &routeoptimizationpb.AggregatedMetrics{TravelDistanceMeters: 12345.6,
								TravelDuration: durationpb.New(90 * time.Minute), TotalDuration: durationpb.New(3*time.Hour + 2*time.Second)}},
					})}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true, MetadataType: typeLongRunningMetadata,
				Result: &opsv1.OperationResult{Type: typeOptimizeToursResponse, Routes: i32(3), SkippedShipments: i32(2), TotalCost: "1234.5",
					VehiclesUsed: i32(2), Visits: i32(3), TravelDistanceMeters: i64(12346), TravelDuration: "1h30m0s", TotalDuration: "3h0m2s"}}},
		{name: "done with an empty OptimizeToursResponse",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.OptimizeToursResponse{})}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true,
				Result: &opsv1.OperationResult{Type: typeOptimizeToursResponse, Routes: i32(0), SkippedShipments: i32(0), Visits: i32(0)}}},
		{name: "done with OptimizeToursUriResponse",
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.OptimizeToursUriResponse{
						Output: &routeoptimizationpb.Uri{Uri: "gs://bucket/out/solution.json"}})}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &now, CompletionTime: &now, Done: true,
				Result: &opsv1.OperationResult{Type: typeOptimizeToursUriResponse, OutputURI: "gs://bucket/out/solution.json",
					Outputs: []string{"gs://bucket/out/solution.json"}}}},
		{name: "done with BatchOptimizeToursResponse",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0, MetadataType: typeBatchMetadata},
			op: func(t *testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.BatchOptimizeToursResponse{})}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true, MetadataType: typeBatchMetadata,
				Result: &opsv1.OperationResult{Type: typeBatchResponse}}},
		{name: "done with a response of an unknown type",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(*testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Response{Response: &anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown", Value: []byte{1, 2}}}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true,
				Result: &opsv1.OperationResult{Type: "type.googleapis.com/example.Unknown"}}},
		{name: "done with neither response nor error",
			st:   opsv1.OptimizationOperationStatus{StartTime: &t0},
			op:   func(*testing.T) *longrunningpb.Operation { return &longrunningpb.Operation{Name: opName, Done: true} },
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true, Result: &opsv1.OperationResult{}}},
		{name: "done with error INVALID_ARGUMENT",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(*testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 3, Message: "shipment 4 has no vehicle"}}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true,
				Error: &opsv1.OperationError{Code: 3, Status: "INVALID_ARGUMENT", Message: "shipment 4 has no vehicle"}}},
		{name: "done with error CANCELLED",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(*testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 1, Message: "Operation cancelled."}}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true,
				Error: &opsv1.OperationError{Code: 1, Status: "CANCELLED", Message: "Operation cancelled."}}},
		{name: "done with error of an unknown code",
			st: opsv1.OptimizationOperationStatus{StartTime: &t0},
			op: func(*testing.T) *longrunningpb.Operation {
				return &longrunningpb.Operation{Name: opName, Done: true,
					Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 42, Message: "?"}}}
			},
			want: opsv1.OptimizationOperationStatus{StartTime: &t0, CompletionTime: &now, Done: true,
				Error: &opsv1.OperationError{Code: 42, Status: "CODE_42", Message: "?"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := *tc.st.DeepCopy()
			policy.ApplyOperation(&st, tc.op(t), now, nil)
			if !reflect.DeepEqual(st, tc.want) {
				t.Errorf("status =\n%+v\nwant\n%+v", dump(st), dump(tc.want))
			}
		})
	}
}

func dump(st opsv1.OptimizationOperationStatus) map[string]any {
	m := map[string]any{"done": st.Done, "metadataType": st.MetadataType, "startTime": st.StartTime, "completionTime": st.CompletionTime}
	if st.Error != nil {
		m["error"] = *st.Error
	}
	if st.Result != nil {
		r := *st.Result
		m["result"] = r
		if r.Routes != nil {
			m["routes"] = *r.Routes
		}
		if r.SkippedShipments != nil {
			m["skipped"] = *r.SkippedShipments
		}
	}
	return m
}

func TestApplyOperationStartTimeOnce(t *testing.T) {
	var st opsv1.OptimizationOperationStatus
	first := metav1.NewTime(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	second := metav1.NewTime(first.Add(time.Minute))
	op := &longrunningpb.Operation{Name: opName, Metadata: mustAny(t, &routeoptimizationpb.BatchOptimizeToursMetadata{})}
	policy.ApplyOperation(&st, op, first, nil)
	policy.ApplyOperation(&st, op, second, nil)
	if st.StartTime == nil || !st.StartTime.Equal(&first) {
		t.Errorf("startTime = %v, want %v", st.StartTime, first)
	}
	if st.MetadataType != typeBatchMetadata {
		t.Errorf("metadataType = %q, want %q", st.MetadataType, typeBatchMetadata)
	}
	if st.Done || st.CompletionTime != nil || st.Result != nil || st.Error != nil {
		t.Errorf("a running operation left a terminal status: %+v", dump(st))
	}
}

func TestApplyOperationTruncatesMessage(t *testing.T) {
	cases := []struct {
		name string
		msg  string
	}{
		{"ascii", strings.Repeat("x", 5000)},
		{"two-byte runes", strings.Repeat("é", 3000)},
		{"three-byte runes", strings.Repeat("€", 2000)},
		{"just over", strings.Repeat("y", 1025)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st opsv1.OptimizationOperationStatus
			policy.ApplyOperation(&st, &longrunningpb.Operation{Name: opName, Done: true,
				Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 13, Message: tc.msg}}}, t0, nil)
			if st.Error == nil {
				t.Fatal("no error recorded")
			}
			got := st.Error.Message
			if len(got) > 1024+len("...") || len(got) < 1000 {
				t.Errorf("message is %d bytes, want about 1 KiB", len(got))
			}
			if !utf8.ValidString(got) {
				t.Errorf("truncated message is not valid UTF-8")
			}
			if !strings.HasPrefix(tc.msg, strings.TrimSuffix(got, "...")) {
				t.Errorf("truncated message is not a prefix of the original")
			}
			if st.Error.Code != 13 || st.Error.Status != "INTERNAL" {
				t.Errorf("error = %d/%s, want 13/INTERNAL", st.Error.Code, st.Error.Status)
			}
		})
	}
	short := strings.Repeat("z", 1024)
	var st opsv1.OptimizationOperationStatus
	policy.ApplyOperation(&st, &longrunningpb.Operation{Done: true,
		Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 13, Message: short}}}, t0, nil)
	if st.Error.Message != short {
		t.Errorf("a 1024-byte message was changed")
	}
}

// TestApplyOperationTerminalIsFinal: once done, no later read changes the status.
func TestApplyOperationTerminalIsFinal(t *testing.T) {
	later := metav1.NewTime(t0.Add(time.Hour))
	terminal := []struct {
		name string
		st   opsv1.OptimizationOperationStatus
	}{
		{"succeeded", opsv1.OptimizationOperationStatus{Done: true, StartTime: &t0, CompletionTime: &t0, MetadataType: typeBatchMetadata,
			Result: &opsv1.OperationResult{Type: typeBatchResponse}}},
		{"failed", opsv1.OptimizationOperationStatus{Done: true, StartTime: &t0, CompletionTime: &t0,
			Error: &opsv1.OperationError{Code: 3, Status: "INVALID_ARGUMENT", Message: "bad"}}},
		{"done without startTime", opsv1.OptimizationOperationStatus{Done: true, Result: &opsv1.OperationResult{}}},
	}
	ops := []struct {
		name string
		op   *longrunningpb.Operation
	}{
		{"running", &longrunningpb.Operation{Name: opName, Metadata: mustAny(t, &routeoptimizationpb.OptimizeToursUriMetadata{})}},
		{"other response", &longrunningpb.Operation{Name: opName, Done: true,
			Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.OptimizeToursUriResponse{Output: &routeoptimizationpb.Uri{Uri: "gs://b/o"}})}}},
		{"other error", &longrunningpb.Operation{Name: opName, Done: true,
			Result: &longrunningpb.Operation_Error{Error: &spb.Status{Code: 1, Message: "cancelled"}}}},
	}
	for _, tt := range terminal {
		for _, o := range ops {
			t.Run(tt.name+"/"+o.name, func(t *testing.T) {
				st := *tt.st.DeepCopy()
				policy.ApplyOperation(&st, o.op, later, nil)
				if !reflect.DeepEqual(st, tt.st) {
					t.Errorf("terminal status changed:\n%+v\nwas\n%+v", dump(st), dump(tt.st))
				}
			})
		}
	}
}

func TestProblemFor(t *testing.T) {
	cases := []struct {
		name        string
		f           policy.Failure
		unavailable bool
		reason      string
		msgHas      []string
	}{
		{"NotFound", policy.Failure{Kind: policy.NotFound, Code: codes.NotFound, Message: "gone"}, false, opsv1.ReasonNotFound, []string{"NOT_FOUND", "gone"}},
		{"NotFound, long failing", policy.Failure{Kind: policy.NotFound, Code: codes.NotFound, Message: "gone"}, true, opsv1.ReasonNotFound, []string{"NOT_FOUND"}},
		{"PermissionDenied", policy.Failure{Kind: policy.Auth, Code: codes.PermissionDenied, Message: "denied"}, false, opsv1.ReasonAuthFailed, []string{"PERMISSION_DENIED", "denied"}},
		{"Unauthenticated", policy.Failure{Kind: policy.Auth, Code: codes.Unauthenticated, Message: "bad token"}, true, opsv1.ReasonAuthFailed, []string{"UNAUTHENTICATED"}},
		{"InvalidArgument", policy.Failure{Kind: policy.Rejected, Code: codes.InvalidArgument, Message: "bad name"}, false, opsv1.ReasonRequestRejected, []string{"INVALID_ARGUMENT", "bad name"}},
		{"FailedPrecondition", policy.Failure{Kind: policy.Rejected, Code: codes.FailedPrecondition, Message: "pre"}, false, opsv1.ReasonRequestRejected, []string{"FAILED_PRECONDITION"}},
		{"Unimplemented", policy.Failure{Kind: policy.Unimplemented, Code: codes.Unimplemented, Message: "no"}, false, opsv1.ReasonRequestRejected, []string{"UNIMPLEMENTED"}},
		{"Unavailable, not yet long", policy.Failure{Kind: policy.Transient, Code: codes.Unavailable, Message: "down"}, false, "", nil},
		{"Unavailable, long", policy.Failure{Kind: policy.Transient, Code: codes.Unavailable, Message: "down"}, true, opsv1.ReasonRemoteUnavailable, []string{"UNAVAILABLE", "down"}},
		{"network error, long", policy.Failure{Kind: policy.Transient, Code: codes.Unknown, Message: "connection refused"}, true, opsv1.ReasonRemoteUnavailable, []string{"connection refused"}},
		{"RateLimited, not yet long", policy.Failure{Kind: policy.RateLimited, Code: codes.ResourceExhausted, Message: "quota"}, false, "", nil},
		{"RateLimited, long", policy.Failure{Kind: policy.RateLimited, Code: codes.ResourceExhausted, Message: "quota"}, true, opsv1.ReasonRemoteUnavailable, []string{"RESOURCE_EXHAUSTED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.ProblemFor(opName, tc.f, tc.unavailable)
			if p.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q", p.Reason, tc.reason)
			}
			if tc.reason == "" {
				if p != (policy.Problem{}) {
					t.Errorf("Problem = %+v, want the zero Problem", p)
				}
				return
			}
			if !strings.Contains(p.Message, opName) {
				t.Errorf("message %q does not name the operation", p.Message)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(p.Message, s) {
					t.Errorf("message %q does not contain %q", p.Message, s)
				}
			}
		})
	}
}

func TestCancelProblemFor(t *testing.T) {
	cases := []struct {
		name   string
		f      policy.Failure
		reason string
	}{
		{"PermissionDenied", policy.Failure{Kind: policy.Auth, Code: codes.PermissionDenied, Message: "denied"}, opsv1.ReasonAuthFailed},
		{"Unauthenticated", policy.Failure{Kind: policy.Auth, Code: codes.Unauthenticated, Message: "bad token"}, opsv1.ReasonAuthFailed},
		{"Unavailable", policy.Failure{Kind: policy.Transient, Code: codes.Unavailable, Message: "down"}, ""},
		{"RateLimited", policy.Failure{Kind: policy.RateLimited, Code: codes.ResourceExhausted, Message: "quota"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.CancelProblemFor(opName, tc.f)
			if p.Reason != tc.reason {
				t.Fatalf("Reason = %q, want %q", p.Reason, tc.reason)
			}
			if tc.reason == "" {
				return
			}
			for _, want := range []string{"Cannot cancel operation " + opName, policy.CodeName(int32(tc.f.Code)), "Route Optimization Editor"} {
				if !strings.Contains(strings.ToUpper(p.Message), strings.ToUpper(want)) {
					t.Errorf("message %q does not contain %q", p.Message, want)
				}
			}
		})
	}
}

func TestCredentialsProblem(t *testing.T) {
	err := &policy.CredentialsError{Err: errBadKey}
	p := policy.CredentialsProblem(opName, err)
	if p.Reason != opsv1.ReasonAuthFailed {
		t.Errorf("Reason = %q, want %q", p.Reason, opsv1.ReasonAuthFailed)
	}
	if !strings.Contains(p.Message, opName) || !strings.Contains(p.Message, errBadKey.Error()) {
		t.Errorf("message %q does not name the operation and the cause", p.Message)
	}
}

// TestSetConditionsSubmit: the states of a resource that starts its own solve, before an
// operation name is known, and its end when it is cancelled before anything was sent.
func TestSetConditionsSubmit(t *testing.T) {
	var (
		unknown = metav1.ConditionUnknown
		isFalse = metav1.ConditionFalse
		isTrue  = metav1.ConditionTrue
	)
	submitting := func(o *opsv1.OptimizationOperation) {
		o.Spec.OperationName = ""
		o.Spec.Submit = &opsv1.SubmitSpec{Parent: "projects/p"}
	}
	notSubmitted := func(o *opsv1.OptimizationOperation) {
		o.Spec.Cancel = true
		o.Status.Done = true
		o.Status.Cancel = &opsv1.CancelStatus{Outcome: opsv1.CancelNotSubmitted}
	}
	tests := []struct {
		name                      string
		setup                     []func(*opsv1.OptimizationOperation)
		problem                   policy.Problem
		succeeded, ready, stalled cond
		msg                       string
	}{
		{name: "not sent yet", setup: fns(submitting),
			succeeded: cond{unknown, opsv1.ReasonSubmitting}, ready: cond{isFalse, opsv1.ReasonSubmitting}, msg: "not been sent"},
		{name: "being sent", setup: fns(submitting), problem: policy.Problem{Reason: opsv1.ReasonSubmitting, Message: "sending attempt 2"},
			succeeded: cond{unknown, opsv1.ReasonSubmitting}, ready: cond{isFalse, opsv1.ReasonSubmitting}, msg: "sending attempt 2"},
		{name: "uncertain", setup: fns(submitting), problem: policy.Problem{Reason: opsv1.ReasonSubmitUncertain, Message: "may have started"},
			succeeded: cond{unknown, opsv1.ReasonSubmitUncertain}, ready: cond{isFalse, opsv1.ReasonSubmitUncertain},
			stalled: cond{isTrue, opsv1.ReasonSubmitUncertain}, msg: "may have started"},
		{name: "invalid request", setup: fns(submitting), problem: policy.Problem{Reason: opsv1.ReasonInvalidRequest, Message: "unknown field"},
			succeeded: cond{unknown, opsv1.ReasonInvalidRequest}, ready: cond{isFalse, opsv1.ReasonInvalidRequest},
			stalled: cond{isTrue, opsv1.ReasonInvalidRequest}, msg: "unknown field"},
		{name: "credentials refused", setup: fns(submitting), problem: policy.Problem{Reason: opsv1.ReasonAuthFailed, Message: "denied"},
			succeeded: cond{unknown, opsv1.ReasonSubmitting}, ready: cond{isFalse, opsv1.ReasonAuthFailed},
			stalled: cond{isTrue, opsv1.ReasonAuthFailed}, msg: "denied"},
		{name: "answered with a name: tracked", setup: fns(submitting, func(o *opsv1.OptimizationOperation) { o.Status.OperationName = opName }),
			succeeded: cond{unknown, opsv1.ReasonPending}, ready: cond{isFalse, opsv1.ReasonPending}, msg: opName},
		{name: "cancelled before sending", setup: fns(submitting, notSubmitted),
			succeeded: cond{isFalse, opsv1.ReasonCancelled}, ready: cond{isTrue, opsv1.ReasonCancelled}, msg: "before a solve was started"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := newObj(tc.setup...)
			policy.SetConditions(obj, tc.problem)
			for _, c := range []struct {
				typ  string
				want cond
			}{{opsv1.ConditionSucceeded, tc.succeeded}, {opsv1.ConditionReady, tc.ready}, {opsv1.ConditionStalled, tc.stalled}} {
				got := meta.FindStatusCondition(obj.Status.Conditions, c.typ)
				switch {
				case c.want == absent && got != nil:
					t.Errorf("%s = %s/%s, want it absent", c.typ, got.Status, got.Reason)
				case c.want != absent && (got == nil || got.Status != c.want.status || got.Reason != c.want.reason):
					t.Errorf("%s = %+v, want %s/%s", c.typ, got, c.want.status, c.want.reason)
				}
			}
			if r := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionReady); r == nil || !strings.Contains(r.Message, tc.msg) {
				t.Errorf("Ready message %+v does not contain %q", r, tc.msg)
			}
		})
	}
}

func TestAlreadyDoneTellsOneStory(t *testing.T) {
	// The answer to a cancel was lost to a restart and the operation ended CANCELLED: the
	// Succeeded condition tells what status.cancel tells, and does not claim that the cancel
	// it never saw answered took "as requested".
	at := metav1.Now()
	o := &opsv1.OptimizationOperation{}
	o.Spec.Cancel = true
	o.Status.Done = true
	o.Status.Error = &opsv1.OperationError{Code: 1, Status: "CANCELLED", Message: "cancelled"}
	msg := "The operation ended CANCELLED before an answer to the operator's cancel was recorded"
	o.Status.Cancel = &opsv1.CancelStatus{RequestedAt: &at, Outcome: opsv1.CancelAlreadyDone, Message: msg}
	policy.SetConditions(o, policy.Problem{})
	c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded)
	if c == nil || c.Reason != opsv1.ReasonCancelled || !strings.Contains(c.Message, msg) || strings.Contains(c.Message, "as requested") {
		t.Errorf("Succeeded = %+v; status.cancel says %q", c, msg)
	}
	if r := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v, want True: the operation is cancelled, as the spec asks", r)
	}
}
