package decide

import (
	"testing"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/types/known/anypb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// States and answers of the rows about reconcile.fluxcd.io/requestedAt and spec.resultTo.

var toursOp = func() *longrunningpb.Operation {
	resp, err := anypb.New(&routeoptimizationpb.OptimizeToursResponse{Routes: []*routeoptimizationpb.ShipmentRoute{{VehicleIndex: 0}}})
	if err != nil {
		panic(err)
	}
	return &longrunningpb.Operation{Name: opName, Done: true, Result: &longrunningpb.Operation_Response{Response: resp}}
}()

func requested(o *opsv1.OptimizationOperation, value string) *opsv1.OptimizationOperation {
	if o.Annotations == nil {
		o.Annotations = map[string]string{}
	}
	o.Annotations[opsv1.AnnotationRequestedAt] = value
	return o
}

func handled(o *opsv1.OptimizationOperation, value string) *opsv1.OptimizationOperation {
	o.Status.LastHandledReconcileAt = value
	return o
}

func resultTo(o *opsv1.OptimizationOperation) *opsv1.OptimizationOperation {
	o.Spec.ResultTo = &opsv1.ResultTarget{Name: "routes"}
	return o
}

// toursDone is a resource whose operation finished with an OptimizeToursResponse.
func toursDone() *opsv1.OptimizationOperation {
	o := done()
	o.Status.Result = &opsv1.OperationResult{Type: policy.ToursResponseType}
	return o
}

func stored(o *opsv1.OptimizationOperation) *opsv1.OptimizationOperation {
	setResultStored(o, ResultOutcome{Status: metav1.ConditionTrue, Reason: opsv1.ReasonResultStored, Message: "stored"})
	return o
}

func handledIs(value string) check {
	return func(t *testing.T, _ Decision, r Result) {
		if got := r.Status.LastHandledReconcileAt; got != value {
			t.Errorf("status.lastHandledReconcileAt = %q, want %q", got, value)
		}
		if value != "" && r.Schedule.Result.HandledRequest != value {
			t.Errorf("the schedule does not remember %q as handled", value)
		}
	}
}

// storedIs checks the ResultStored condition the fold calls for ("": none).
func storedIs(want string) check {
	return func(t *testing.T, _ Decision, r Result) {
		got := ""
		if o := r.ResultStored; o != nil {
			got = string(o.Status) + "/" + o.Reason
		}
		if got != want {
			t.Errorf("ResultStored = %q, want %q", got, want)
		}
	}
}

func responseKept(t *testing.T, _ Decision, r Result) {
	if r.Response == nil {
		t.Error("the response is not kept for the write")
	}
}

func responseDropped(t *testing.T, _ Decision, r Result) {
	if !r.DropResponse {
		t.Error("the response kept is not dropped")
	}
}

// TestResultStoredOnTerminalStatus: a terminal status is final, but the ResultStored condition
// comes after it; Record sets it without touching the others.
func TestResultStoredOnTerminalStatus(t *testing.T) {
	obj := resultTo(toursDone())
	before := obj.Status.DeepCopy()
	Record(obj, Result{Status: *obj.Status.DeepCopy(), ResultStored: &ResultOutcome{Status: metav1.ConditionFalse,
		Reason: opsv1.ReasonResultTooLarge, Message: "too large"}}, true, true)
	if got := cond(obj, opsv1.ConditionResultStored); got != "False/TooLarge" {
		t.Errorf("ResultStored = %s", got)
	}
	for _, typ := range []string{opsv1.ConditionSucceeded, opsv1.ConditionReady} {
		was := &opsv1.OptimizationOperation{Status: *before}
		if cond(obj, typ) != cond(was, typ) {
			t.Errorf("%s changed from %s to %s", typ, cond(was, typ), cond(obj, typ))
		}
	}
}
