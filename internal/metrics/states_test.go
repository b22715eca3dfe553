package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

func withReady(name, reason string) *opsv1.OptimizationOperation {
	o := &opsv1.OptimizationOperation{}
	o.Namespace, o.Name = "ns", name
	if reason != "" {
		meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: opsv1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason})
	}
	return o
}

func counts(t *testing.T, c *stateCounter) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		got[pb.GetLabel()[0].GetValue()] = pb.GetGauge().GetValue()
	}
	return got
}

// TestStateCounter: the counts follow the informer's events, a resource counted once under
// its latest state, and gone when deleted, tombstones included.
func TestStateCounter(t *testing.T) {
	c := newStateCounter()
	h := c.handler()
	h.OnAdd(withReady("a", ""), true)
	h.OnAdd(withReady("b", opsv1.ReasonRunning), true)
	h.OnUpdate(withReady("a", ""), withReady("a", opsv1.ReasonRunning))
	h.OnUpdate(withReady("b", opsv1.ReasonRunning), withReady("b", opsv1.ReasonAuthFailed))
	h.OnAdd(withReady("c", opsv1.ReasonRunning), false)
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/c", Obj: withReady("c", opsv1.ReasonRunning)})
	h.OnAdd(withReady("d", opsv1.ReasonSucceeded), false)
	h.OnDelete(withReady("d", opsv1.ReasonSucceeded))

	got := counts(t, c)
	want := map[string]float64{opsv1.ReasonRunning: 1, opsv1.ReasonAuthFailed: 1, opsv1.ReasonPending: 0, opsv1.ReasonSucceeded: 0}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("routeopt_operations{state=%q} = %v, want %v (all: %v)", s, got[s], n, got)
		}
	}
	if len(got) != len(States) {
		t.Errorf("%d states exported, want every one of the %d", len(got), len(States))
	}
}
