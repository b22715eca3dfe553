package controllers_test

import (
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// BenchmarkCancelToCancelled measures what a user sees after
// `kubectl patch --type merge -p '{"spec":{"cancel":true}}'` on a running operation: the time
// from the spec patch to a Cancelled State in the API server, with the operator's default
// options and the emulator in its default (supported) cancel mode. Reported as s/cancel.
func BenchmarkCancelToCancelled(b *testing.B) {
	h := newHarness(b, withOptions(func(o *controllers.Options) { *o = controllers.DefaultOptions }))
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		name := "bench-" + strconv.Itoa(i)
		h.apply(name, h.createOperation(emulator.CreateOperationRequest{Duration: longSolve}))
		h.waitState(name, opsv1.ReasonRunning)
		b.StartTimer()

		start := time.Now()
		h.cancel(name)
		waitCancelled(b, h, name)
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/cancel")
}

// waitCancelled polls more finely than waitFor, so the measurement is not rounded up to its
// 50 ms step.
func waitCancelled(b *testing.B, h *harness, name string) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		o := &opsv1.OptimizationOperation{}
		if err := k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, o); err == nil {
			if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded); c != nil && c.Reason == opsv1.ReasonCancelled {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("%s/%s never became Cancelled: %s", h.ns, name, describe(h.get(name)))
}
