package v1alpha1_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// TestResultToValidation: spec.resultTo names a ConfigMap for an OptimizeToursResponse; the
// methods that write to Cloud Storage are refused with it, and it is immutable.
func TestResultToValidation(t *testing.T) {
	to := func(name string) *opsv1.ResultTarget { return &opsv1.ResultTarget{Name: name} }
	creates := []struct {
		name string
		spec opsv1.OptimizationOperationSpec
		want string // substring of the error; empty means accepted
	}{
		{"track form", opsv1.OptimizationOperationSpec{OperationName: trackName, ResultTo: to("nightly-result")}, ""},
		{"optimizeToursLongRunning", opsv1.OptimizationOperationSpec{Submit: inlineSubmit(), ResultTo: to("nightly.result")}, ""},
		{"batchOptimizeTours", opsv1.OptimizationOperationSpec{Submit: batchSubmit(), ResultTo: to("r")},
			"resultTo needs an OptimizeToursResponse: batchOptimizeTours and optimizeToursUri write their results to Cloud Storage"},
		{"optimizeToursUri", opsv1.OptimizationOperationSpec{Submit: uriSubmit(), ResultTo: to("r")}, "resultTo needs an OptimizeToursResponse"},
		{"the request's own ConfigMap", opsv1.OptimizationOperationSpec{Submit: configMapSubmit(), ResultTo: to("model-abc123")},
			"resultTo must name another ConfigMap than the request's"},
		{"another ConfigMap than the request's", opsv1.OptimizationOperationSpec{Submit: configMapSubmit(), ResultTo: to("model-abc123-result")}, ""},
		{"not a ConfigMap name", opsv1.OptimizationOperationSpec{OperationName: trackName, ResultTo: to("Nightly_Result")}, "spec.resultTo.name"},
	}
	for _, tc := range creates {
		t.Run("create/"+tc.name, func(t *testing.T) {
			err := createObject(t, object(tc.spec))
			if tc.want == "" {
				if err != nil {
					t.Errorf("rejected: %v", err)
				}
				return
			}
			wantInvalid(t, err, tc.want)
		})
	}

	updates := []struct {
		name  string
		start opsv1.OptimizationOperationSpec
		patch string
		want  string
	}{
		{"unchanged", opsv1.OptimizationOperationSpec{OperationName: trackName, ResultTo: to("a")}, `{"spec":{"resultTo":{"name":"a"},"cancel":true}}`, ""},
		{"renamed", opsv1.OptimizationOperationSpec{OperationName: trackName, ResultTo: to("a")}, `{"spec":{"resultTo":{"name":"b"}}}`,
			"resultTo is immutable: the response may already have been written there"},
		{"removed", opsv1.OptimizationOperationSpec{OperationName: trackName, ResultTo: to("a")}, `{"spec":{"resultTo":null}}`,
			"resultTo is immutable: it cannot be added or removed"},
		{"added", opsv1.OptimizationOperationSpec{OperationName: trackName}, `{"spec":{"resultTo":{"name":"a"}}}`,
			"resultTo is immutable: it cannot be added or removed"},
	}
	for _, tc := range updates {
		t.Run("update/"+tc.name, func(t *testing.T) {
			obj := mustCreate(t, object(tc.start))
			err := k8s.Patch(t.Context(), obj, client.RawPatch(types.MergePatchType, []byte(tc.patch)))
			if tc.want == "" {
				if err != nil {
					t.Errorf("patch %s rejected: %v", tc.patch, err)
				}
				return
			}
			wantInvalid(t, err, tc.want)
		})
	}
}

// TestResultStatus: the status subresource takes the fuller result and lastHandledReconcileAt.
func TestResultStatus(t *testing.T) {
	obj := mustCreate(t, object(opsv1.OptimizationOperationSpec{OperationName: trackName}))
	n32, n64 := int32(3), int64(12346)
	obj.Status.Done = true
	obj.Status.LastHandledReconcileAt = "2026-05-04T10:11:12Z"
	obj.Status.Result = &opsv1.OperationResult{Type: "t", VehiclesUsed: &n32, Visits: &n32, TravelDistanceMeters: &n64,
		TravelDuration: "1h30m0s", TotalDuration: "3h0m2s", Outputs: []string{"gs://b/out/monday/"}}
	if err := k8s.Status().Update(t.Context(), obj); err != nil {
		t.Fatalf("status update: %v", err)
	}
	got := &opsv1.OptimizationOperation{}
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, got.Status.Result) != mustJSON(t, obj.Status.Result) || got.Status.LastHandledReconcileAt != obj.Status.LastHandledReconcileAt {
		t.Errorf("status reads back as %s, want %s", mustJSON(t, got.Status), mustJSON(t, obj.Status))
	}
}
