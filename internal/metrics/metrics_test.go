package metrics_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// TestStateOfCapturedObjects computes the state label of routeopt_operations for the objects
// captured from a real API server in every state (config/argocd/testdata): a resource that
// cannot be read counts under its problem, not under the state it was last read in, and every
// label is one of States, which are exported even at zero.
func TestStateOfCapturedObjects(t *testing.T) {
	want := map[string]string{
		"no-status":                opsv1.ReasonPending,
		"pending":                  opsv1.ReasonPending,
		"running":                  opsv1.ReasonRunning,
		"cancelling":               opsv1.ReasonCancelling,
		"cancel-unsupported":       opsv1.ReasonCancelUnsupported,
		"succeeded":                opsv1.ReasonSucceeded,
		"completed-despite-cancel": opsv1.ReasonCompletedDespiteCancel,
		"cancelled":                opsv1.ReasonCancelled,
		"cancelled-elsewhere":      opsv1.ReasonCancelled,
		"failed":                   opsv1.ReasonFailed,
		"not-found":                opsv1.ReasonNotFound,
		"auth-failed":              opsv1.ReasonAuthFailed,
		"auth-failed-secret":       opsv1.ReasonAuthFailed,
		"request-rejected":         opsv1.ReasonRequestRejected,
		"remote-unavailable":       opsv1.ReasonRemoteUnavailable,
		"submitting":               opsv1.ReasonSubmitting,
		"submitted":                opsv1.ReasonRunning,
		"not-submitted":            opsv1.ReasonCancelled,
		"invalid-request":          opsv1.ReasonInvalidRequest,
		"submit-uncertain":         opsv1.ReasonSubmitUncertain,
	}
	dir := filepath.Join(testenv.RepoRoot(), "config", "argocd", "testdata")
	for name, state := range want {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var obj opsv1.OptimizationOperation
			if err := yaml.Unmarshal(b, &obj); err != nil {
				t.Fatal(err)
			}
			got := metrics.State(&obj)
			if got != state {
				t.Errorf("State = %s, want %s", got, state)
			}
			if !slices.Contains(metrics.States, got) {
				t.Errorf("State %s is not among the exported States %v", got, metrics.States)
			}
		})
	}
}

// TestStatesAreTheReadyReasons checks that States lists every reason of the API once: each is
// a value the Ready condition can take.
func TestStatesAreTheReadyReasons(t *testing.T) {
	reasons := []string{
		opsv1.ReasonRunning, opsv1.ReasonCancelling, opsv1.ReasonCancelUnsupported, opsv1.ReasonSucceeded,
		opsv1.ReasonCompletedDespiteCancel, opsv1.ReasonCancelled, opsv1.ReasonFailed, opsv1.ReasonNotFound,
		opsv1.ReasonAuthFailed, opsv1.ReasonRequestRejected, opsv1.ReasonRemoteUnavailable, opsv1.ReasonPending,
		opsv1.ReasonInvalidSpec, opsv1.ReasonSubmitting, opsv1.ReasonSubmitUncertain, opsv1.ReasonInvalidRequest,
		opsv1.ReasonPastExpectedEnd,
	}
	got := slices.Sorted(slices.Values(metrics.States))
	slices.Sort(reasons)
	if !slices.Equal(got, reasons) {
		t.Errorf("States = %s\nwant     %s", strings.Join(got, " "), strings.Join(reasons, " "))
	}
}
