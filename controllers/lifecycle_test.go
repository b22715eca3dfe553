package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

func deletionPolicy(p opsv1.DeletionPolicy) func(*opsv1.OptimizationOperation) {
	return func(o *opsv1.OptimizationOperation) { o.Spec.DeletionPolicy = p }
}

func (h *harness) delete(name string) {
	h.t.Helper()
	must(h.t, k8s.Delete(h.ctx, h.get(name)))
}

func TestDeletionOrphanSendsNothing(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("d", op)
	o := h.waitState("d", opsv1.ReasonRunning)
	if len(o.Finalizers) != 0 {
		t.Errorf("Orphan resource has finalizers %v", o.Finalizers)
	}
	h.delete("d")
	h.waitGone("d")
	if n := h.calls(cancelPath, 0); n != 0 {
		t.Errorf("cancel calls = %d, want 0", n)
	}
}

func TestDeletionCancel(t *testing.T) {
	tests := []struct {
		name       string
		emu        func(*emulator.Options)
		creds      bool // reference a Secret that does not exist
		refused    bool // call with a key of an account the API refuses (403)
		wantCalls  int64
		wantEvent  string
		wantRemote bool // the remote operation ends cancelled
	}{
		{name: "accepted", wantCalls: 1, wantEvent: "CancelledOnDelete", wantRemote: true},
		{name: "unimplemented", emu: func(o *emulator.Options) { o.CancelMode = emulator.CancelUnimplemented },
			wantCalls: 1, wantEvent: "CancelOnDeleteFailed"},
		{name: "notfound-on-cancel", emu: func(o *emulator.Options) { o.CancelMode = emulator.CancelNotFound },
			wantCalls: 1, wantEvent: "CancelOnDeleteFailed"},
		{name: "bad-credentials", creds: true, wantCalls: 0, wantEvent: "CancelOnDeleteFailed"},
		{name: "permission-denied", refused: true, wantCalls: 1, wantEvent: "CancelOnDeleteFailed"},
		{name: "unavailable-until-timeout", emu: func(o *emulator.Options) { o.Faults.FailAll = true },
			wantEvent: "CancelOnDeleteFailed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []harnessOption
			if tc.emu != nil {
				opts = append(opts, withEmulator(tc.emu))
			}
			if tc.refused {
				opts = append(opts, withAuth())
			}
			h := newHarness(t, opts...)
			if tc.refused {
				h.putCredentials("sa", serviceAccountKey(t, h, badAccount))
			}
			op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
			h.apply("d", op, deletionPolicy(opsv1.DeletionPolicyCancel), func(o *opsv1.OptimizationOperation) {
				switch {
				case tc.creds:
					o.Spec.CredentialsSecretRef = &opsv1.SecretKeySelector{Name: "absent"}
				case tc.refused:
					o.Spec.CredentialsSecretRef = &opsv1.SecretKeySelector{Name: "sa", Key: "key.json"}
				}
			})
			h.waitFor("d", "finalized", func(o *opsv1.OptimizationOperation) bool {
				return controllerutil.ContainsFinalizer(o, controllers.Finalizer) && len(o.Status.Conditions) > 0
			})
			h.delete("d")
			h.waitGone("d")
			if tc.wantCalls > 0 {
				if n := h.calls(cancelPath, 0); n != tc.wantCalls {
					t.Errorf("cancel calls = %d, want %d", n, tc.wantCalls)
				}
			}
			if tc.name == "unavailable-until-timeout" && h.calls(cancelPath, 503) < 2 {
				t.Errorf("a transient failure was not retried: %d calls", h.calls(cancelPath, 503))
			}
			h.waitEvent("d", tc.wantEvent)
			info, err := h.admin.GetOperation(h.ctx, op)
			must(t, err)
			if cancelled := info.Done && info.ErrorCode == 1; cancelled != tc.wantRemote {
				t.Errorf("remote operation cancelled = %v, want %v (%+v)", cancelled, tc.wantRemote, info)
			}
		})
	}
}

func TestFinalizerFollowsPolicyAndCompletion(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("d", op, deletionPolicy(opsv1.DeletionPolicyCancel))
	h.waitFor("d", "finalized", func(o *opsv1.OptimizationOperation) bool {
		return controllerutil.ContainsFinalizer(o, controllers.Finalizer)
	})
	must(t, h.admin.Finish(h.ctx, op))
	h.waitState("d", opsv1.ReasonSucceeded)
	h.waitFor("d", "finalizer released", func(o *opsv1.OptimizationOperation) bool { return len(o.Finalizers) == 0 })
	h.delete("d")
	h.waitGone("d")
	if n := h.calls(cancelPath, 0); n != 0 {
		t.Errorf("cancel sent for a finished operation: %d", n)
	}
}

func TestCredentialsFromSecret(t *testing.T) {
	h := newHarness(t, withAuth())
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	ref := func(o *opsv1.OptimizationOperation) {
		o.Spec.CredentialsSecretRef = &opsv1.SecretKeySelector{Name: "sa", Key: "key.json"}
	}
	h.apply("a", op, ref)

	// 1. The Secret does not exist.
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Pending", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, "sa") || !strings.Contains(msg, "does not exist") {
		t.Errorf("message does not say what to fix: %q", msg)
	}

	// 2. The Secret, opted in, has the wrong key.
	h.putCredentials("sa", nil)
	h.putSecret("sa", map[string][]byte{"credentials.json": serviceAccountKey(t, h, goodAccount)})
	o = h.waitFor("a", "wrong-key message", func(o *opsv1.OptimizationOperation) bool {
		return strings.Contains(findCond(o, opsv1.ConditionReady), `no key "key.json"`)
	})
	if !strings.Contains(findCond(o, opsv1.ConditionReady), "credentials.json") {
		t.Errorf("message does not list the keys present: %q", findCond(o, opsv1.ConditionReady))
	}

	// 3. A key of an account the API refuses: the server answers 403.
	h.putCredentials("sa", serviceAccountKey(t, h, badAccount))
	o = h.waitFor("a", "permission denied", func(o *opsv1.OptimizationOperation) bool {
		return strings.Contains(findCond(o, opsv1.ConditionReady), "PERMISSION_DENIED")
	})
	expect(t, o, "Unknown/Pending", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	denied := h.calls(getPath, 403)

	// 4. Fixing the Secret is noticed without waiting for the backoff.
	h.putCredentials("sa", serviceAccountKey(t, h, goodAccount))
	o = h.waitState("a", opsv1.ReasonRunning)
	expect(t, o, "Unknown/Running", "False/Running", "absent", status.InProgressStatus)
	if n := h.calls(getPath, 403); n > denied+1 {
		t.Errorf("refused credentials were retried %d more times instead of backing off", n-denied)
	}

	// 5. Refused again while it runs: Ready says why, Succeeded keeps the last state seen.
	h.putCredentials("sa", serviceAccountKey(t, h, badAccount))
	o = h.waitReady("a", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Running", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
}

func TestMissingTokenIsAuthFailed(t *testing.T) {
	// The emulator convention sends no credentials; an endpoint that requires them answers
	// 401 UNAUTHENTICATED.
	h := newHarness(t, withEmulator(func(o *emulator.Options) { o.RequireToken = true }))
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("a", op)
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	if !strings.Contains(findCond(o, opsv1.ConditionReady), "UNAUTHENTICATED") {
		t.Errorf("Ready message = %q", findCond(o, opsv1.ConditionReady))
	}
}

func TestNoApplicationDefaultCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
	h := newHarness(t, withAuth())
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("a", op)
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Pending", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, "Workload Identity") {
		t.Errorf("Ready message does not say what to fix: %q", msg)
	}
	if n := h.calls(getPath, 0); n != 0 {
		t.Errorf("%d calls sent without credentials", n)
	}
}

func TestStatusWrittenOnlyOnChange(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("w", op, func(o *opsv1.OptimizationOperation) { o.Spec.PollInterval = ptrDuration(100 * time.Millisecond) })
	o := h.waitState("w", opsv1.ReasonRunning)
	rv := o.ResourceVersion
	start := h.calls(getPath, 200)
	h.waitCalls(getPath, 200, start+20)
	o = h.get("w")
	if o.ResourceVersion != rv {
		t.Errorf("status written during %d polls that learned nothing: resourceVersion %s -> %s (%s)",
			h.calls(getPath, 200)-start, rv, o.ResourceVersion, describe(o))
	}
	t.Logf("%d polls of a running operation, 0 writes", h.calls(getPath, 200)-start)
}

func TestRestartBetweenCancelRequestAndSend(t *testing.T) {
	h := newHarness(t)
	h.startRunning("r")

	h.stopManager()
	h.cancel("r") // requested while no operator runs
	if n := h.calls(cancelPath, 0); n != 0 {
		t.Fatalf("cancel sent with the operator stopped: %d", n)
	}
	h.startManager()
	h.waitCancelledAsRequested("r")

	// A second restart after the outcome is recorded sends nothing more.
	h.stopManager()
	h.startManager()
	h.patchSpec("r", `{"spec":{"pollInterval":"1s"}}`)
	h.waitFor("r", "observed", func(o *opsv1.OptimizationOperation) bool { return o.Status.ObservedGeneration == o.Generation })
	h.expectCalls(cancelPath, 0, 1)
}

// runningWithUnansweredCancel starts a long solve tracked by resource name, then asks for a
// cancel while every cancel call answers 503, and waits until status.cancel records the
// request with no answer. It returns the remote operation's name.
func (h *harness) runningWithUnansweredCancel(name string, mutate ...func(*opsv1.OptimizationOperation)) string {
	h.t.Helper()
	op := h.startRunning(name, mutate...)
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{FailNext: 1 << 20})
	h.cancel(name)
	h.waitFor(name, "cancel recorded, unanswered", func(o *opsv1.OptimizationOperation) bool {
		c := o.Status.Cancel
		return c != nil && c.RequestedAt != nil && c.Outcome == "" && h.calls(cancelPath, 503) > 0
	})
	return op
}

func TestRestartWithCancelRecordedButUnanswered(t *testing.T) {
	// The operator recorded the request in status, but every send failed before it stopped:
	// the next process finds the request in the object and sends it, exactly once.
	h := newHarness(t)
	h.runningWithUnansweredCancel("r")

	h.stopManager()
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	h.startManager()
	h.waitCancelledAsRequested("r")
	h.expectCalls(cancelPath, 200, 1)
}

func TestFinishedWhileCancelUnanswered(t *testing.T) {
	// The solve ends with a response while the cancel endpoint keeps failing: the record gets
	// an outcome (nothing more will be sent) and the state is the plain truth, Succeeded.
	h := newHarness(t)
	op := h.runningWithUnansweredCancel("c", deletionPolicy(opsv1.DeletionPolicyCancel))
	must(t, h.admin.Finish(h.ctx, op))

	o := h.waitState("c", opsv1.ReasonSucceeded)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	if c := o.Status.Cancel; c == nil || c.Outcome != opsv1.CancelAlreadyDone {
		t.Errorf("status.cancel = %+v, want outcome AlreadyDone", c)
	}
	h.waitFor("c", "finalizer released", func(o *opsv1.OptimizationOperation) bool { return len(o.Finalizers) == 0 })
	if n := h.calls(cancelPath, 200); n != 0 {
		t.Errorf("accepted cancels = %d, want 0", n)
	}
}

func TestObservedGenerationFollowsSpec(t *testing.T) {
	h := newHarness(t)
	h.startRunning("g")
	h.patchSpec("g", `{"spec":{"pollInterval":"30s"}}`)
	o := h.waitFor("g", "observed", func(o *opsv1.OptimizationOperation) bool { return o.Status.ObservedGeneration == o.Generation })
	for _, c := range o.Status.Conditions {
		if c.ObservedGeneration != o.Generation {
			t.Errorf("%s observedGeneration %d, want %d", c.Type, c.ObservedGeneration, o.Generation)
		}
	}
	if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded); c == nil || c.Reason != opsv1.ReasonRunning {
		t.Errorf("state changed: %s", describe(o))
	}
}

func TestDeleteWithUnansweredCancelSendsIt(t *testing.T) {
	// deletionPolicy Orphan, but the user asked for a cancel that has not gone through yet:
	// deleting the resource must not drop that request.
	h := newHarness(t)
	op := h.startRunning("d")
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{FailNext: 2})
	h.cancel("d")
	h.waitFor("d", "holding a finalizer", func(o *opsv1.OptimizationOperation) bool {
		return controllerutil.ContainsFinalizer(o, controllers.Finalizer)
	})
	h.delete("d")
	h.waitGone("d")
	info, err := h.admin.GetOperation(h.ctx, op)
	must(t, err)
	if !info.Done || info.ErrorCode != 1 {
		t.Errorf("remote operation not cancelled: %+v", info)
	}
	h.expectCalls(cancelPath, 200, 1)
}

func TestPollIntervalMustBeAGoDuration(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"90s", true}, {"1h30m", true}, {"250ms", true}, {"1d", false}, {"P1D", false}, {"-5s", false}, {"5", false}} {
		obj := &opsv1.OptimizationOperation{}
		obj.Namespace, obj.Name = h.ns, "p-"+strings.NewReplacer(".", "", "-", "m").Replace(strings.ToLower(tc.value))
		obj.Spec.OperationName = "projects/p/locations/global/operations/1"
		obj.Spec.PollInterval = nil
		raw := fmt.Sprintf(`{"apiVersion":"ops.routeopt.dev/v1alpha1","kind":"OptimizationOperation","metadata":{"name":%q,"namespace":%q},"spec":{"operationName":"projects/p/locations/global/operations/1","pollInterval":%q}}`, obj.Name, h.ns, tc.value)
		u := &unstructured.Unstructured{}
		must(t, u.UnmarshalJSON([]byte(raw)))
		err := k8s.Create(h.ctx, u)
		if (err == nil) != tc.ok {
			t.Errorf("pollInterval %q: err = %v, want ok=%v", tc.value, err, tc.ok)
		}
		t.Logf("pollInterval %q: %v", tc.value, err)
	}
}

func TestShutdownKeepsTheCancelAnswer(t *testing.T) {
	// The manager stops while the read that follows an accepted cancel is in flight: the
	// answer is already known, and the status write at the end of that reconcile must still
	// record it, or the next leader would send the cancel again.
	h := newHarness(t)
	h.startRunning("s")
	// Slow reads, but within the request timeout: the read before the cancel must succeed.
	h.fault(emulator.MethodGetOperation, emulator.MethodFault{Latency: 5 * time.Second})
	h.cancel("s")
	h.waitEvent("s", "CancelSent")
	h.stopManager()
	if c := h.get("s").Status.Cancel; c == nil || c.Outcome != opsv1.CancelAccepted {
		t.Fatalf("status.cancel after shutdown = %+v, want outcome Accepted", c)
	}

	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	h.startManager()
	h.waitCancelledAsRequested("s")
	h.expectCalls(cancelPath, 0, 1)
}
