package policy_test

import (
	"reflect"
	"testing"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// TestBatchOutputsFromRequest: a BatchOptimizeToursResponse is empty by design; the outputs are
// the gcsDestination URIs of the request spec.submit sent, in its order.
func TestBatchOutputsFromRequest(t *testing.T) {
	now := metav1.NewTime(t0.Time)
	req := &opsv1.SubmitSpec{Parent: "projects/p", BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{ModelConfigs: []opsv1.AsyncModelConfig{
		{OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://plans/out/monday/"}}},
		{OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://plans/out/tuesday/"}}},
	}}}
	done := func(t *testing.T) *longrunningpb.Operation {
		return &longrunningpb.Operation{Name: opName, Done: true,
			Result: &longrunningpb.Operation_Response{Response: mustAny(t, &routeoptimizationpb.BatchOptimizeToursResponse{})}}
	}
	var st opsv1.OptimizationOperationStatus
	policy.ApplyOperation(&st, done(t), now, req)
	want := []string{"gs://plans/out/monday/", "gs://plans/out/tuesday/"}
	if st.Result == nil || !reflect.DeepEqual(st.Result.Outputs, want) {
		t.Errorf("result = %+v, want outputs %v", st.Result, want)
	}
	// The track form knows no request: nothing to list.
	st = opsv1.OptimizationOperationStatus{}
	policy.ApplyOperation(&st, done(t), now, nil)
	if st.Result == nil || st.Result.Outputs != nil {
		t.Errorf("result = %+v, want no outputs without a request", st.Result)
	}
}
