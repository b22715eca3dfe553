package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// startFleet creates n running operations and their resources and waits until all run.
func (h *harness) startFleet(n int) []string {
	h.t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("op-%d", i)
		op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
		h.apply(names[i], op, func(o *opsv1.OptimizationOperation) { o.Spec.PollInterval = ptrDuration(200 * time.Millisecond) })
	}
	for _, name := range names {
		h.waitState(name, opsv1.ReasonRunning)
	}
	return names
}

// totalCalls counts every remote call the emulator answered.
func (h *harness) totalCalls() int64 { return h.calls(getPath, 0) + h.calls(cancelPath, 0) }

// checkBudget asserts the token bucket's bound: at most burst + qps * elapsed calls.
func (h *harness) checkBudget(calls int64, elapsed time.Duration) {
	h.t.Helper()
	limit := float64(h.burst) + h.qps*elapsed.Seconds()
	if float64(calls) > limit+1 {
		h.t.Errorf("%d calls in %s exceed the budget of %d burst + %v/s = %.0f", calls, elapsed, h.burst, h.qps, limit)
	}
	h.t.Logf("%d calls in %s (budget allows %.0f)", calls, elapsed.Round(time.Millisecond), limit)
}

func TestRateLimitedKeepsConditionsAndBudget(t *testing.T) {
	h := newHarness(t, withBudget(5, 5))
	names := h.startFleet(6)

	h.fault(emulator.MethodGetOperation, emulator.MethodFault{ResourceExhausted: 1, RetryDelay: 700 * time.Millisecond})
	start, before := time.Now(), h.totalCalls()
	h.waitCalls(getPath, 429, 8)
	for _, name := range names {
		o := h.get(name)
		expect(t, o, "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	}
	h.waitAnyEvent(names, "RemoteError")
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	ok := h.calls(getPath, 200)
	h.waitCalls(getPath, 200, ok+int64(len(names)))
	h.checkBudget(h.totalCalls()-before, time.Since(start))
	for _, name := range names {
		expect(t, h.get(name), "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	}
}

func TestUnavailableStormDoesNotFlipConditions(t *testing.T) {
	h := newHarness(t, withBudget(10, 10))
	names := h.startFleet(4)
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{FailAll: true}))
	start, before := time.Now(), h.totalCalls()
	h.waitCalls(getPath, 503, 12)
	for _, name := range names {
		expect(t, h.get(name), "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	}
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	h.checkBudget(h.totalCalls()-before, time.Since(start))
	h.waitAnyEvent(names, "RemoteError")
}

func TestLongOutageIsRemoteUnavailableThenRecovers(t *testing.T) {
	h := newHarness(t, withOptions(func(o *controllersOptions) { o.RemoteUnavailableAfter = 500 * time.Millisecond }))
	h.startRunning("u")
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{FailAll: true}))
	o := h.waitReady("u", opsv1.ReasonRemoteUnavailable)
	expect(t, o, "Unknown/Running", "False/RemoteUnavailable", "absent", status.InProgressStatus)
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	o = h.waitReady("u", opsv1.ReasonRunning)
	expect(t, o, "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	h.waitEvent("u", opsv1.ReasonRemoteUnavailable)
}

func TestCancelJumpsTheQueue(t *testing.T) {
	// A budget of one call a second is spent by the fleet's polls; the cancel still goes out
	// and is confirmed at once, because polls leave a reserve only cancels may use.
	h := newHarness(t, withBudget(2, 8))
	names := h.startFleet(8)
	h.cancel(names[3])
	h.waitCancelledAsRequested(names[3])
	h.expectCalls(cancelPath, 0, 1)
}

func TestCancelRetriedAfterTransientFailure(t *testing.T) {
	h := newHarness(t)
	h.startRunning("c")
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{FailNext: 2})
	h.cancel("c")
	h.waitCancelledAsRequested("c")
	if failed, ok := h.calls(cancelPath, 503), h.calls(cancelPath, 200); failed != 2 || ok != 1 {
		t.Errorf("cancel calls: %d failed, %d accepted; want 2 and 1", failed, ok)
	}
	h.waitEvent("c", "CancelFailed")
}

func TestCancelEndpointFailingIsBackedOff(t *testing.T) {
	h := newHarness(t)
	h.startRunning("c")
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{FailNext: 1 << 20})
	h.cancel("c")
	start := time.Now()
	h.waitCalls(cancelPath, 503, 4)
	// Backoff from 100 ms doubling to the 1 s cap: the 4th attempt comes after at least
	// 0.1+0.2+0.4 s (less 10% jitter), never at the 100 ms minimum interval of a hot loop.
	n, elapsed := h.calls(cancelPath, 0), time.Since(start)
	if limit := 4 + int64(elapsed/time.Second); n > limit {
		t.Errorf("%d cancel attempts in %s: not backed off (limit %d)", n, elapsed, limit)
	}
	o := h.get("c")
	expect(t, o, "Unknown/Cancelling", "False/Cancelling", "absent", status.InProgressStatus)
}

func TestFleetCancelsExactlyOnceEach(t *testing.T) {
	h := newHarness(t)
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("f-%d", i)
		op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
		h.apply(name, op, deletionPolicy(opsv1.DeletionPolicyCancel))
		names = append(names, name)
	}
	for _, name := range names {
		h.waitState(name, opsv1.ReasonRunning)
	}
	for _, name := range names {
		h.cancel(name)
	}
	for _, name := range names {
		h.waitState(name, opsv1.ReasonCancelled)
	}
	if n := h.calls(cancelPath, 0); n != int64(len(names)) {
		t.Errorf("%d cancel calls for %d resources, want one each", n, len(names))
	}
}

func TestCancelWaitsForTheBudgetNotForTheNextPoll(t *testing.T) {
	// One token every 2 s, and a poll interval that grows to 10 minutes after the second
	// read. A cancel right after that read finds the budget empty: it must go out as soon as
	// tokens are back, not at the next scheduled poll, and the reads around it must not take
	// every token the cancel needs.
	h := newHarness(t, withBudget(0.5, 1), withOptions(func(o *controllers.Options) {
		o.Poll.Min, o.Poll.Max, o.Poll.AgeFactor = 100*time.Millisecond, 10*time.Minute, 1000
	}))
	h.startRunning("c")
	h.waitCalls(getPath, 200, 2)
	h.cancel("c")
	h.waitCancelledAsRequested("c")
	h.expectCalls(cancelPath, 0, 1)
}

func TestCancelRefusedWhileReadsWork(t *testing.T) {
	// A principal allowed to read operations but not to cancel them: the cancel is not an
	// answer, so it stays pending and Ready says what to fix; once the role is granted, the
	// retried cancel goes through.
	h := newHarness(t)
	op := h.startRunning("c")
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{PermissionDenied: 1})
	h.cancel("c")
	o := h.waitReady("c", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Cancelling", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	if msg := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionReady).Message; !strings.Contains(msg, "Cannot cancel operation "+op) || !strings.Contains(msg, "PERMISSION_DENIED") {
		t.Errorf("Ready message = %q, want it to name the refused cancel and the code", msg)
	}
	if c := o.Status.Cancel; c == nil || c.RequestedAt == nil || c.Outcome != "" {
		t.Errorf("status.cancel = %+v, want requested and not answered", c)
	}
	h.waitEvent("c", "CancelFailed")
	reads := h.calls(getPath, 200)
	h.waitCalls(cancelPath, 403, 2)
	if h.calls(getPath, 200) <= reads {
		t.Error("no successful read between refused cancels")
	}

	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	h.waitCancelledAsRequested("c")
	h.expectCalls(cancelPath, 200, 1)
}
