package submit_test

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/submit"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// TestSamplesBuild builds the request of every sample that starts a solve, as the operator
// would just before sending it: the samples are valid requests, not only valid objects (the
// API server's dry run in internal/gitops checks those).
func TestSamplesBuild(t *testing.T) {
	samples := filepath.Join(testenv.RepoRoot(), "config", "samples")
	files, err := filepath.Glob(filepath.Join(samples, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(samples, "configmap-model", "optimizationoperation.yaml"))
	model, err := os.ReadFile(filepath.Join(samples, "configmap-model", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range testenv.DecodeManifests(t, data) {
			if u.GetKind() != "OptimizationOperation" {
				continue
			}
			obj := &opsv1.OptimizationOperation{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj.Spec.Submit == nil {
				continue
			}
			var cm *corev1.ConfigMap
			if ref := submit.ConfigMapRef(obj.Spec.Submit); ref != nil {
				cm = configMap(ref.Name, map[string]string{ref.Key: string(model)})
				obj.Namespace = namespace
			}
			req, err := submit.Build(obj, cm)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
				continue
			}
			methods[req.Method] = true
		}
	}
	for _, m := range []string{submit.MethodOptimizeToursURI, submit.MethodBatchOptimizeTours, submit.MethodOptimizeToursLongRunning} {
		if !methods[m] {
			t.Errorf("no sample sends %s", m)
		}
	}
}
