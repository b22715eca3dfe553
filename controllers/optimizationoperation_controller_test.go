package controllers_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

const (
	longSolve  = time.Hour
	batchKind  = emulator.KindBatchOptimizeTours
	cancelPath = "CancelOperation"
	getPath    = "GetOperation"
)

// expect checks the three conditions and the kstatus verdict Flux and kpt would compute.
func expect(t testing.TB, o *opsv1.OptimizationOperation, succeeded, ready, stalled string, kstatus status.Status) {
	t.Helper()
	if got := condition(o, opsv1.ConditionSucceeded); got != succeeded {
		t.Errorf("Succeeded = %s, want %s (%s)", got, succeeded, describe(o))
	}
	if got := condition(o, opsv1.ConditionReady); got != ready {
		t.Errorf("Ready = %s, want %s (%s)", got, ready, describe(o))
	}
	if got := condition(o, opsv1.ConditionStalled); got != stalled {
		t.Errorf("Stalled = %s, want %s (%s)", got, stalled, describe(o))
	}
	if got := kstatusOf(t, o); got != kstatus {
		t.Errorf("kstatus = %s, want %s (%s)", got, kstatus, describe(o))
	}
	for _, c := range o.Status.Conditions {
		if !strings.Contains(c.Message, o.Spec.OperationName) {
			t.Errorf("%s message %q does not name the operation", c.Type, c.Message)
		}
	}
}

func kstatusOf(t testing.TB, o *opsv1.OptimizationOperation) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	must(t, err)
	m["apiVersion"], m["kind"] = opsv1.GroupVersion.String(), "OptimizationOperation"
	res, err := status.Compute(toUnstructured(m))
	must(t, err)
	return res.Status
}

func TestRunningThenSucceeded(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("solve", op)

	o := h.waitState("solve", opsv1.ReasonRunning)
	expect(t, o, "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	if o.Status.StartTime == nil || o.Status.MetadataType != "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursLongRunningMetadata" {
		t.Errorf("running status incomplete: startTime=%v metadataType=%q", o.Status.StartTime, o.Status.MetadataType)
	}

	must(t, h.admin.Finish(h.ctx, op))
	o = h.waitState("solve", opsv1.ReasonSucceeded)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	r := o.Status.Result
	if !o.Status.Done || o.Status.CompletionTime == nil || r == nil ||
		r.Type != "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse" || r.Routes == nil || r.TotalCost == "" {
		t.Errorf("succeeded status incomplete: %s result=%+v", describe(o), r)
	}
	if o.Status.Error != nil {
		t.Errorf("error set on success: %+v", o.Status.Error)
	}
	h.waitEvent("solve", opsv1.ReasonSucceeded)
}

func TestBatchSucceeded(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Kind: batchKind})
	h.apply("batch", op)
	o := h.waitState("batch", opsv1.ReasonSucceeded)
	if o.Status.Result == nil || o.Status.Result.Type != "type.googleapis.com/google.maps.routeoptimization.v1.BatchOptimizeToursResponse" {
		t.Errorf("result = %+v", o.Status.Result)
	}
}

func TestFailedWithInvalidArgument(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{ErrorCode: 3, ErrorMessage: "vehicle 0 has no end location"})
	h.apply("bad", op)
	o := h.waitState("bad", opsv1.ReasonFailed)
	expect(t, o, "False/Failed", "False/Failed", "True/Failed", status.FailedStatus)
	if e := o.Status.Error; e == nil || e.Code != 3 || e.Status != "INVALID_ARGUMENT" || e.Message != "vehicle 0 has no end location" {
		t.Errorf("error = %+v", e)
	}
	for _, typ := range []string{opsv1.ConditionSucceeded, opsv1.ConditionReady} {
		if c := findCond(o, typ); !strings.Contains(c, "INVALID_ARGUMENT") || !strings.Contains(c, "vehicle 0") {
			t.Errorf("%s message %q lacks the code or Google's message", typ, c)
		}
	}
	h.waitEvent("bad", opsv1.ReasonFailed)
}

func TestCancelAccepted(t *testing.T) {
	h := newHarness(t)
	h.startRunning("c")

	h.cancel("c")
	o := h.waitCancelledAsRequested("c")
	if c := o.Status.Cancel; c == nil || c.Outcome != opsv1.CancelAccepted || c.RequestedAt == nil {
		t.Errorf("cancel = %+v", c)
	}
	if e := o.Status.Error; e == nil || e.Code != 1 || e.Status != "CANCELLED" {
		t.Errorf("error = %+v", e)
	}
	h.expectCalls(cancelPath, 0, 1)
	h.waitEvent("c", "CancelSent")
}

func TestCancelSlowShowsCancelling(t *testing.T) {
	h := newHarness(t, withEmulator(func(o *emulator.Options) { o.CancelDelay = 2 * time.Second }))
	h.startRunning("c")
	h.cancel("c")
	o := h.waitState("c", opsv1.ReasonCancelling)
	expect(t, o, "Unknown/Cancelling", "False/Cancelling", "absent", status.InProgressStatus)
	h.waitCancelledAsRequested("c")
	h.expectCalls(cancelPath, 0, 1)
}

// TestCancelNotTakenThenCompleted: the server answers the cancel UNIMPLEMENTED (as the
// production reference documents) or NOT_FOUND while the operation can still be read. Either
// way the operation runs on, is still tracked, and its completion is reported truthfully.
func TestCancelNotTakenThenCompleted(t *testing.T) {
	for _, tc := range []struct {
		mode     emulator.CancelMode
		outcome  opsv1.CancelOutcome
		code     string
		httpCode int
	}{
		{emulator.CancelUnimplemented, opsv1.CancelUnsupported, "UNIMPLEMENTED", 501},
		{emulator.CancelNotFound, opsv1.CancelNotFound, "NOT_FOUND", 404},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			h := newHarness(t, withEmulator(func(o *emulator.Options) { o.CancelMode = tc.mode }))
			op := h.startRunning("c")
			h.cancel("c")
			o := h.waitState("c", opsv1.ReasonCancelUnsupported)
			expect(t, o, "Unknown/CancelUnsupported", "False/CancelUnsupported", "absent", status.InProgressStatus)
			if c := o.Status.Cancel; c == nil || c.Outcome != tc.outcome || !strings.Contains(c.Message, tc.code) {
				t.Errorf("cancel = %+v", c)
			}
			h.waitEvent("c", "CancelUnsupported")

			must(t, h.admin.Finish(h.ctx, op))
			o = h.waitState("c", opsv1.ReasonCompletedDespiteCancel)
			expect(t, o, "True/CompletedDespiteCancel", "True/CompletedDespiteCancel", "absent", status.CurrentStatus)
			if n := h.calls(cancelPath, 0); n != 1 || h.calls(cancelPath, tc.httpCode) != 1 {
				t.Errorf("cancel calls = %d, want exactly 1, answered %d (an answered cancel is not sent again)", n, tc.httpCode)
			}
		})
	}
}

func TestCancelIgnoredCompletesDespiteCancel(t *testing.T) {
	h := newHarness(t, withEmulator(func(o *emulator.Options) { o.CancelMode = emulator.CancelIgnored }))
	op := h.startRunning("c")
	h.cancel("c")
	// Cancelling shows from the moment the request is stored, before the answer.
	o := h.waitFor("c", "Cancelling, answered", func(o *opsv1.OptimizationOperation) bool {
		return condition(o, opsv1.ConditionSucceeded) == "Unknown/Cancelling" && o.Status.Cancel != nil && o.Status.Cancel.Outcome != ""
	})
	if c := o.Status.Cancel; c.Outcome != opsv1.CancelAccepted || c.AnsweredAt == nil {
		t.Errorf("cancel = %+v, want Accepted with the time of the answer", c)
	}
	must(t, h.admin.Finish(h.ctx, op))
	o = h.waitState("c", opsv1.ReasonCompletedDespiteCancel)
	expect(t, o, "True/CompletedDespiteCancel", "True/CompletedDespiteCancel", "absent", status.CurrentStatus)
}

func TestCancelledElsewhereIsStalled(t *testing.T) {
	h := newHarness(t)
	op := h.startRunning("c")
	cancelViaGoogleAPI(t, h, op) // someone else, e.g. a script using the API directly
	o := h.waitState("c", opsv1.ReasonCancelled)
	expect(t, o, "False/Cancelled", "False/Cancelled", "True/Cancelled", status.FailedStatus)
	if o.Status.Cancel != nil {
		t.Errorf("cancel record set although no cancel was requested here: %+v", o.Status.Cancel)
	}
}

func TestCancelAfterDoneRecordsAlreadyDone(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{})
	h.apply("c", op)
	before := h.waitState("c", opsv1.ReasonSucceeded)
	gets := h.calls(getPath, 0)

	h.cancel("c")
	o := h.waitFor("c", "cancel recorded", func(o *opsv1.OptimizationOperation) bool {
		return o.Status.Cancel != nil && o.Status.ObservedGeneration == o.Generation
	})
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	if o.Status.Cancel.Outcome != opsv1.CancelAlreadyDone {
		t.Errorf("cancel = %+v", o.Status.Cancel)
	}
	if h.calls(cancelPath, 0) != 0 || h.calls(getPath, 0) != gets {
		t.Errorf("a finished operation was called again: cancels=%d gets=%d (before %d)", h.calls(cancelPath, 0), h.calls(getPath, 0), gets)
	}
	if !o.Status.CompletionTime.Equal(before.Status.CompletionTime) {
		t.Errorf("terminal status changed")
	}
}

func TestCancelRequestedWhenAlreadyFinishedRemotely(t *testing.T) {
	// The operation finished after the last read; the cancel's first read sees it done, so no
	// cancel is sent and the outcome is the operation's own.
	h := newHarness(t, withOptions(func(o *controllersOptions) { o.Poll.Max, o.Poll.Min = time.Hour, time.Hour }))
	op := h.startRunning("c")
	must(t, h.admin.Finish(h.ctx, op))
	h.cancel("c")
	o := h.waitState("c", opsv1.ReasonSucceeded)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	if o.Status.Cancel == nil || o.Status.Cancel.Outcome != opsv1.CancelAlreadyDone {
		t.Errorf("cancel = %+v", o.Status.Cancel)
	}
	if n := h.calls(cancelPath, 0); n != 0 {
		t.Errorf("cancel calls = %d, want 0", n)
	}
}

func TestNotFoundNeverSeen(t *testing.T) {
	h := newHarness(t)
	h.apply("missing", "projects/demo-project/locations/global/operations/does-not-exist")
	o := h.waitState("missing", opsv1.ReasonNotFound)
	expect(t, o, "False/NotFound", "False/NotFound", "True/NotFound", status.FailedStatus)
	if o.Status.Done {
		t.Errorf("done set for an operation never seen")
	}
	if !strings.Contains(findCond(o, opsv1.ConditionReady), "NOT_FOUND") {
		t.Errorf("message lacks the code: %s", describe(o))
	}
}

func TestExpiredBeforeDoneSeen(t *testing.T) {
	h := newHarness(t)
	op := h.startRunning("e")
	must(t, h.admin.Expire(h.ctx, op))
	o := h.waitState("e", opsv1.ReasonNotFound)
	expect(t, o, "False/NotFound", "False/NotFound", "True/NotFound", status.FailedStatus)
}

func TestTerminalStatusIsFinal(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{})
	h.apply("f", op)
	before := h.waitState("f", opsv1.ReasonSucceeded)
	gets := h.calls(getPath, 0)
	must(t, h.admin.Expire(h.ctx, op))
	// Touch the spec, which wakes the reconciler: it must not read the operation again, and a
	// 404 now would not overwrite the outcome anyway.
	h.patchSpec("f", `{"spec":{"pollInterval":"2s"}}`)
	o := h.waitFor("f", "observed", func(o *opsv1.OptimizationOperation) bool { return o.Status.ObservedGeneration == o.Generation })
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	if n := h.calls(getPath, 0); n != gets {
		t.Errorf("a finished operation was read again: %d reads, %d before", n, gets)
	}
	if !o.Status.CompletionTime.Equal(before.Status.CompletionTime) || !o.Status.Done {
		t.Errorf("terminal status changed: %s", describe(o))
	}
}

func findCond(o *opsv1.OptimizationOperation, typ string) string {
	for _, c := range o.Status.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}
