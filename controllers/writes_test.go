package controllers_test

import (
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// statusWrites counts, per resource of the harness's namespace, the writes that changed its
// status, as a watch sees them. Finalizer writes change metadata only and do not count.
type statusWrites struct {
	mu   sync.Mutex
	last map[string]opsv1.OptimizationOperationStatus
	n    map[string]int
}

func (h *harness) watchStatusWrites() *statusWrites {
	h.t.Helper()
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	must(h.t, err)
	w, err := wc.Watch(h.ctx, &opsv1.OptimizationOperationList{}, client.InNamespace(h.ns))
	must(h.t, err)
	h.t.Cleanup(w.Stop)
	s := &statusWrites{last: map[string]opsv1.OptimizationOperationStatus{}, n: map[string]int{}}
	go func() {
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(*opsv1.OptimizationOperation)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			s.mu.Lock()
			if !equality.Semantic.DeepEqual(s.last[o.Name], o.Status) {
				s.n[o.Name]++
				s.last[o.Name] = o.Status
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *statusWrites) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

// TestCancelPathWritesAtMostFour: a burst of cancels on a small budget, where the cancels
// compete for tokens with each other, still writes each resource's status at most four times
// in its life: Pending (its first read had to wait), Running, Cancelling (the stored request),
// and Cancelled with the server's answer.
func TestCancelPathWritesAtMostFour(t *testing.T) {
	h := newHarness(t, withBudget(2, 3))
	writes := h.watchStatusWrites()
	const n = 10
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("w%d", i)
		h.apply(names[i], h.createOperation(emulator.CreateOperationRequest{Duration: longSolve}))
	}
	for _, name := range names {
		h.waitState(name, opsv1.ReasonRunning)
	}
	for _, name := range names {
		h.cancel(name)
	}
	for _, name := range names {
		h.waitCancelledAsRequested(name)
	}
	h.waitCalls(getPath, 200, h.calls(getPath, 200)) // nothing in flight
	worst := 0
	for _, name := range names {
		worst = max(worst, writes.count(name))
		if c := writes.count(name); c > 4 {
			t.Errorf("%s: %d status writes on the cancel path, want at most 4; final: %s", name, c, describe(h.get(name)))
		}
	}
	t.Logf("%d resources cancelled together on a budget of 2 calls/s: at most %d status writes each", n, worst)
}
