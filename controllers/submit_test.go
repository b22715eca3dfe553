package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

const submitParent = "projects/demo-project/locations/global"

// submitMethods are the methods that start solves.
var submitMethods = []string{submit.MethodOptimizeToursURI, submit.MethodBatchOptimizeTours, submit.MethodOptimizeToursLongRunning}

// toursJSON is an OptimizeToursRequest as the REST reference writes it, labelled so that the
// emulator counts its solves under label, and solved for timeout.
func toursJSON(label, timeout string) string {
	return fmt.Sprintf(`{"label": %q, "timeout": %q, "model": {
  "vehicles": [{"label": "van-1", "costPerKilometer": 1}],
  "shipments": [{"label": "parcel-1", "deliveries": [{"arrivalLocation": {"latitude": 48.86, "longitude": 2.34}, "duration": "300s"}]}]}}`,
		label, timeout)
}

func toursInline(label, timeout string) *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: submitParent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		Inline: &apiextensionsv1.JSON{Raw: []byte(toursJSON(label, timeout))}}}
}

func toursFromConfigMap(name, key string) *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: submitParent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: name, Key: key}}}
}

func uriSpec() *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: submitParent, OptimizeToursURI: &opsv1.OptimizeToursURIRequest{
		Input: opsv1.CloudStorageFile{URI: "gs://plans/in/model.json"}, Output: opsv1.CloudStorageFile{URI: "gs://plans/out/solution.json"}}}
}

func batchSpec(label string) *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: "projects/demo-project", BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{
		ModelConfigs: []opsv1.AsyncModelConfig{{DisplayName: label,
			InputConfig:  opsv1.InputConfig{GCSSource: opsv1.CloudStorageObject{URI: "gs://plans/in/monday.json"}, DataFormat: opsv1.DataFormatJSON},
			OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://plans/out/monday/"}, DataFormat: opsv1.DataFormatJSON}}}}}
}

// shortSolves makes the emulator's solves without a timeout of their own end after d.
func shortSolves(d time.Duration) harnessOption {
	return withEmulator(func(o *emulator.Options) { o.LongRunningDuration, o.BatchDuration = d, d })
}

// withRequestTimeout bounds each call of the operator to the emulator.
func withRequestTimeout(d time.Duration) harnessOption {
	return func(h *harness, _ *emulator.Options) { h.remote.Timeout = d }
}

// applySubmit creates an OptimizationOperation that starts its own solve.
func (h *harness) applySubmit(name string, s *opsv1.SubmitSpec, mutate ...func(*opsv1.OptimizationOperation)) {
	h.t.Helper()
	h.apply(name, "", append([]func(*opsv1.OptimizationOperation){func(o *opsv1.OptimizationOperation) { o.Spec.Submit = s }}, mutate...)...)
}

// putConfigMap creates or replaces a ConfigMap of the harness namespace.
func (h *harness) putConfigMap(name string, data map[string]string) {
	h.t.Helper()
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, cm); err == nil {
		cm.Data = data
		must(h.t, k8s.Update(h.ctx, cm))
		return
	}
	must(h.t, k8s.Create(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}, Data: data}))
}

func (h *harness) solves() emulator.SolveCounters {
	h.t.Helper()
	s, err := h.admin.Solves(h.ctx)
	must(h.t, err)
	return s
}

// submitCalls counts the requests of all submit methods the emulator received, whatever their
// answer.
func (h *harness) submitCalls() int64 {
	h.t.Helper()
	var n int64
	for _, m := range submitMethods {
		n += h.calls(m, 0)
	}
	return n
}

// waitTracked waits until name has an operation name and its operation has been read.
func (h *harness) waitTracked(name string) *opsv1.OptimizationOperation {
	h.t.Helper()
	return h.waitFor(name, "tracking its operation", func(o *opsv1.OptimizationOperation) bool {
		return o.Status.OperationName != "" && o.Status.StartTime != nil
	})
}

// expectSubmitted checks the record of a resource whose request the server answered on
// attempt number attempts, and that its request started exactly solves solves.
func (h *harness) expectSubmitted(o *opsv1.OptimizationOperation, attempts int32, solves int64) {
	h.t.Helper()
	st := o.Status.Submit
	switch {
	case st == nil:
		h.t.Fatalf("%s: no status.submit: %s", o.Name, describe(o))
	case o.Status.OperationName == "" || st.Outcome != opsv1.SubmitSubmitted || st.SubmittedAt == nil || st.AttemptedAt == nil:
		h.t.Errorf("%s: status.submit = %+v, operationName %q; want Submitted with times and a name", o.Name, st, o.Status.OperationName)
	case st.Attempts != attempts:
		h.t.Errorf("%s: %d attempts recorded, want %d", o.Name, st.Attempts, attempts)
	}
	if n := h.solves().ByHash[st.RequestHash]; n != solves {
		h.t.Errorf("%s: %d solves started at the emulator for its request, want %d", o.Name, n, solves)
	}
	if _, err := h.admin.GetOperation(h.ctx, o.Status.OperationName); err != nil {
		h.t.Errorf("%s: its operation %s: %v", o.Name, o.Status.OperationName, err)
	}
}

// TestSubmitEachMethod: each method, and a request read from a ConfigMap, is sent once, its
// operation tracked to Succeeded, and one solve started at the emulator.
func TestSubmitEachMethod(t *testing.T) {
	h := newHarness(t, shortSolves(time.Second))
	h.putConfigMap("model", map[string]string{"request.json": toursJSON("from-configmap", "1s")})
	tests := []struct {
		name, method string
		spec         *opsv1.SubmitSpec
		resultType   string
	}{
		{"uri", submit.MethodOptimizeToursURI, uriSpec(),
			"type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursUriResponse"},
		{"batch", submit.MethodBatchOptimizeTours, batchSpec("monday"),
			"type.googleapis.com/google.maps.routeoptimization.v1.BatchOptimizeToursResponse"},
		{"inline", submit.MethodOptimizeToursLongRunning, toursInline("inline", "1s"),
			"type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse"},
		{"configmap", submit.MethodOptimizeToursLongRunning, toursFromConfigMap("model", "request.json"),
			"type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.calls(tc.method, 0)
			h.applySubmit(tc.name, tc.spec)
			o := h.waitState(tc.name, opsv1.ReasonSucceeded)
			expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
			h.expectSubmitted(o, 1, 1)
			if n := h.calls(tc.method, 0) - before; n != 1 {
				t.Errorf("%d %s requests, want 1", n, tc.method)
			}
			if o.Status.Result == nil || o.Status.Result.Type != tc.resultType {
				t.Errorf("result %+v, want type %s", o.Status.Result, tc.resultType)
			}
			if !strings.Contains(o.Status.Submit.Message, o.Status.OperationName) {
				t.Errorf("status.submit.message %q does not name the operation", o.Status.Submit.Message)
			}
			h.waitEvent(tc.name, "Submitted")
		})
	}
	if s := h.solves(); s.ByLabel["inline"] != 1 || s.ByLabel["from-configmap"] != 1 || s.ByLabel["monday"] != 1 {
		t.Errorf("solves by label = %v", s.ByLabel)
	}
}

// TestSubmitInvalidRequestFromConfigMap: a request the operator cannot build is InvalidRequest
// before any call, and is sent the moment the ConfigMap is fixed (or created).
func TestSubmitInvalidRequestFromConfigMap(t *testing.T) {
	tests := []struct {
		name    string
		initial map[string]string // nil: no ConfigMap
		msgHas  string
	}{
		{"unknown field", map[string]string{"request.json": `{"lable": "typo", "model": {}}`}, `lable`},
		{"bad value", map[string]string{"request.json": `{"timeout": "soon", "model": {}}`}, `timeout`},
		{"missing key", map[string]string{"other.json": `{}`}, `no key "request.json"`},
		{"missing ConfigMap", nil, "does not exist"},
	}
	h := newHarness(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm, name := fmt.Sprintf("model-%d", i), fmt.Sprintf("invalid-%d", i)
			calls, solves := h.submitCalls(), len(h.solves().ByHash)
			if tc.initial != nil {
				h.putConfigMap(cm, tc.initial)
			}
			h.applySubmit(name, toursFromConfigMap(cm, "request.json"))
			o := h.waitState(name, opsv1.ReasonInvalidRequest)
			expect(t, o, "Unknown/InvalidRequest", "False/InvalidRequest", "True/InvalidRequest", status.FailedStatus)
			if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, tc.msgHas) || !strings.Contains(msg, "Nothing was sent") {
				t.Errorf("Ready message %q does not say that nothing was sent because of %s", msg, tc.msgHas)
			}
			if n, s := h.submitCalls()-calls, len(h.solves().ByHash)-solves; n != 0 || s != 0 {
				t.Fatalf("%d submit requests and %d solves before the request was fixed, want none", n, s)
			}
			if o.Status.Submit != nil {
				t.Errorf("status.submit = %+v, want none: nothing was attempted", o.Status.Submit)
			}
			h.waitEvent(name, opsv1.ReasonInvalidRequest)

			// The ConfigMap's watch wakes the resource: no spec change, no timer.
			h.putConfigMap(cm, map[string]string{"request.json": toursJSON(name, "600s")})
			o = h.waitTracked(name)
			h.expectSubmitted(o, 1, 1)
			if n := h.submitCalls() - calls; n != 1 {
				t.Errorf("%d submit requests after the fix, want 1", n)
			}
		})
	}
}

// TestSubmitRetriedWhenNothingStarted: answers that say the request was not processed (429
// RESOURCE_EXHAUSTED, 503 UNAVAILABLE with Google's envelope) are retried after a back-off,
// and exactly one solve starts.
func TestSubmitRetriedWhenNothingStarted(t *testing.T) {
	tests := []struct {
		name  string
		fault emulator.MethodFault
		code  int
	}{
		{"429 then success", emulator.MethodFault{ResourceExhausted: 1, RetryDelay: 300 * time.Millisecond}, 429},
		{"503 then success", emulator.MethodFault{FailNext: 1 << 20}, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.fault(submit.MethodOptimizeToursLongRunning, tc.fault)
			h.applySubmit("retried", toursInline("retried", "600s"))
			h.waitCalls(submit.MethodOptimizeToursLongRunning, tc.code, 2)
			o := h.get("retried")
			expect(t, o, "Unknown/Submitting", "False/Submitting", "absent", status.InProgressStatus)
			if st := o.Status.Submit; st == nil || st.Outcome != opsv1.SubmitNotStarted && st.Outcome != "" {
				t.Errorf("status.submit after refusals = %+v, want outcome NotStarted (or an attempt under way)", st)
			}
			must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
			o = h.waitTracked("retried")
			refused := h.calls(submit.MethodOptimizeToursLongRunning, tc.code)
			h.expectSubmitted(o, int32(refused)+1, 1)
			if n := h.calls(submit.MethodOptimizeToursLongRunning, 200); n != 1 {
				t.Errorf("%d accepted submits, want 1", n)
			}
			if s := h.solves(); s.ByLabel["retried"] != 1 {
				t.Errorf("solves by label %v, want one for retried", s.ByLabel)
			}
			h.waitEvent("retried", "SubmitFailed")
		})
	}
}

// TestSubmitHangIsUncertainAcrossRestart: a request the server took whose answer never came
// may have started a solve: the resource is SubmitUncertain and nothing is sent again, by this
// manager or the next. A stale approval changes nothing; one naming the attempt allows exactly
// one more.
func TestSubmitHangIsUncertainAcrossRestart(t *testing.T) {
	h := newHarness(t, withRequestTimeout(time.Second))
	const method = submit.MethodOptimizeToursLongRunning
	h.fault(method, emulator.MethodFault{HangNext: 1})
	h.applySubmit("hung", toursInline("hung", "600s"))
	o := h.waitState("hung", opsv1.ReasonSubmitUncertain)
	expect(t, o, "Unknown/SubmitUncertain", "False/SubmitUncertain", "True/SubmitUncertain", status.FailedStatus)
	attempted := o.Status.Submit.AttemptedAt.UTC().Format(time.RFC3339)
	msg := findCond(o, opsv1.ConditionReady)
	for _, want := range []string{"may have started a solve", "billed", "cannot be looked up",
		fmt.Sprintf("kubectl annotate optop hung -n %s %s=%s --overwrite", h.ns, opsv1.AnnotationResubmit, attempted)} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not contain %q", msg, want)
		}
	}
	if st := o.Status.Submit; st.Outcome != opsv1.SubmitUncertain || st.Attempts != 1 || o.Status.OperationName != "" {
		t.Errorf("status.submit = %+v, operationName %q; want one Uncertain attempt and no name", st, o.Status.OperationName)
	}
	if s := h.solves(); s.ByLabel["hung"] != 1 {
		t.Fatalf("solves %v: the hung request should have started one", s.ByLabel)
	}
	h.waitEvent("hung", opsv1.ReasonSubmitUncertain)

	// A new manager finds the attempt and sends nothing. It is known to have looked once it
	// started another resource's solve, created after it came up.
	h.stopManager()
	h.startManager()
	h.applySubmit("probe", toursInline("probe", "600s"))
	h.waitTracked("probe")
	if n := h.calls(method, 0); n != 2 {
		t.Errorf("%d %s requests after the restart, want 2 (the hung one and the probe's)", n, method)
	}

	// An annotation that names another attempt (one kept in Git, say) approves nothing.
	stale := o.Status.Submit.AttemptedAt.Add(-time.Hour).UTC().Format(time.RFC3339)
	h.annotate("hung", stale)
	h.waitFor("hung", "telling that the annotation approves nothing", func(o *opsv1.OptimizationOperation) bool {
		return strings.Contains(findCond(o, opsv1.ConditionReady), "approves nothing")
	})
	if n := h.solves().ByLabel["hung"]; n != 1 {
		t.Errorf("%d solves for hung after a stale annotation, want 1", n)
	}

	// Naming the attempt approves exactly one more.
	h.annotate("hung", attempted)
	o = h.waitTracked("hung")
	h.expectSubmitted(o, 2, 2) // both attempts sent the same request
	if o.Status.Submit.AttemptedAt.UTC().Format(time.RFC3339) == attempted {
		t.Errorf("the new attempt recorded attemptedAt %s again, want a later time", attempted)
	}
	// The annotation is still there, naming the old attempt: it approves nothing more. A spec
	// change wakes the reconciler, which only tracks.
	h.patchSpec("hung", `{"spec":{"pollInterval":"2s"}}`)
	h.waitFor("hung", "observing generation 2", func(o *opsv1.OptimizationOperation) bool { return o.Status.ObservedGeneration == 2 })
	if n := h.solves().ByLabel["hung"]; n != 2 {
		t.Errorf("%d solves for hung, want 2: the first and the one approved", n)
	}
	if n := h.calls(method, 0); n != 3 {
		t.Errorf("%d %s requests, want 3", n, method)
	}
}

func (h *harness) annotate(name, value string) {
	h.t.Helper()
	obj := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, opsv1.AnnotationResubmit, value)
	must(h.t, k8s.Patch(h.ctx, obj, client.RawPatch("application/merge-patch+json", []byte(patch))))
}

// TestSubmitCancelledWhileUncertain: a cancel cannot reach an operation whose name the
// operator never learned; the resource says so and sends nothing.
func TestSubmitCancelledWhileUncertain(t *testing.T) {
	h := newHarness(t, withRequestTimeout(time.Second))
	h.fault(submit.MethodOptimizeToursLongRunning, emulator.MethodFault{HangNext: 1})
	h.applySubmit("hung", toursInline("hung", "600s"))
	h.waitState("hung", opsv1.ReasonSubmitUncertain)
	h.cancel("hung")
	o := h.waitFor("hung", "saying the cancel cannot be sent", func(o *opsv1.OptimizationOperation) bool {
		return o.Status.ObservedGeneration == 2 && strings.Contains(findCond(o, opsv1.ConditionReady), "cannot cancel an operation whose name it never learned")
	})
	expect(t, o, "Unknown/SubmitUncertain", "False/SubmitUncertain", "True/SubmitUncertain", status.FailedStatus)
	if strings.Contains(findCond(o, opsv1.ConditionReady), "kubectl annotate") {
		t.Errorf("a cancelled resource offers to resubmit: %s", findCond(o, opsv1.ConditionReady))
	}
	h.expectCalls(cancelPath, 0, 0)
	if n := h.calls(submit.MethodOptimizeToursLongRunning, 0); n != 1 {
		t.Errorf("%d submits, want 1", n)
	}
}

// TestSubmitCancelledBeforeSending: spec.cancel before the request was sent ends the resource
// Cancelled as requested, with outcome NotSubmitted, and nothing is sent; also after answers
// that started nothing.
func TestSubmitCancelledBeforeSending(t *testing.T) {
	h := newHarness(t)
	h.applySubmit("never", toursInline("never", "600s"), func(o *opsv1.OptimizationOperation) { o.Spec.Cancel = true })

	h.fault(submit.MethodOptimizeToursLongRunning, emulator.MethodFault{ResourceExhausted: 1, RetryDelay: time.Hour})
	h.applySubmit("refused", toursInline("refused", "600s"))
	h.waitCalls(submit.MethodOptimizeToursLongRunning, 429, 1)
	h.waitFor("refused", "refused once", func(o *opsv1.OptimizationOperation) bool {
		return o.Status.Submit != nil && o.Status.Submit.Outcome == opsv1.SubmitNotStarted
	})
	h.cancel("refused")

	for _, name := range []string{"never", "refused"} {
		o := h.waitCancelledAsRequested(name)
		c := o.Status.Cancel
		if !o.Status.Done || c == nil || c.Outcome != opsv1.CancelNotSubmitted || c.RequestedAt != nil || o.Status.OperationName != "" {
			t.Errorf("%s: done=%v cancel=%+v operationName=%q; want done, outcome NotSubmitted, no cancel request, no name", name, o.Status.Done, c, o.Status.OperationName)
		}
		if !strings.Contains(findCond(o, opsv1.ConditionReady), "before a solve was started") {
			t.Errorf("%s: Ready message %q", name, findCond(o, opsv1.ConditionReady))
		}
	}
	if s := h.solves(); len(s.ByHash) != 0 {
		t.Errorf("solves %v, want none", s.ByHash)
	}
	if n := h.submitCalls(); n != 1 {
		t.Errorf("%d submit requests, want the one refused", n)
	}
	if o := h.get("never"); o.Status.Submit != nil {
		t.Errorf("never: status.submit %+v, want none: nothing was attempted", o.Status.Submit)
	}
	h.expectCalls(cancelPath, 0, 0)
}

// TestSubmitDeletion: deleting a resource before its request was answered sends nothing;
// once an operation exists, deletionPolicy Cancel cancels it.
func TestSubmitDeletion(t *testing.T) {
	t.Run("before submission", func(t *testing.T) {
		h := newHarness(t)
		h.fault(submit.MethodOptimizeToursLongRunning, emulator.MethodFault{ResourceExhausted: 1, RetryDelay: time.Hour})
		h.applySubmit("d", toursInline("d", "600s"), deletionPolicy(opsv1.DeletionPolicyCancel))
		h.waitCalls(submit.MethodOptimizeToursLongRunning, 429, 1)
		h.waitFor("d", "holding the finalizer", func(o *opsv1.OptimizationOperation) bool {
			return controllerutil.ContainsFinalizer(o, controllers.Finalizer)
		})
		h.delete("d")
		h.waitGone("d")
		h.expectCalls(cancelPath, 0, 0)
		if n := h.submitCalls(); n != 1 {
			t.Errorf("%d submit requests, want the one refused", n)
		}
	})
	t.Run("after submission", func(t *testing.T) {
		h := newHarness(t)
		h.applySubmit("d", toursInline("d", "600s"), deletionPolicy(opsv1.DeletionPolicyCancel))
		o := h.waitTracked("d")
		h.delete("d")
		h.waitGone("d")
		h.expectCalls(cancelPath, 200, 1)
		info, err := h.admin.GetOperation(h.ctx, o.Status.OperationName)
		must(t, err)
		if !info.Done {
			t.Errorf("operation %s not cancelled: %+v", o.Status.OperationName, info)
		}
	})
}

// TestSubmitBurstKeepsTheCap: 200 resources created at once are all sent, never more than the
// cap in a window at the emulator. The cap is the manager's (--max-submits-per-minute) with its
// window shortened from a minute to 5 s, so that 200 resources need five windows, about 20 s,
// instead of four minutes: 40 submits per 5 s.
func TestSubmitBurstKeepsTheCap(t *testing.T) {
	const (
		n      = 200
		limit  = 40
		window = 5 * time.Second
	)
	h := newHarness(t, withBudget(100, 50), withOptions(func(o *controllersOptions) {
		o.MaxSubmitsPerMinute, o.SubmitWindow = limit, window
		o.MaxConcurrentReconciles = 8
	}))
	start := time.Now()
	for i := range n {
		h.applySubmit(fmt.Sprintf("burst-%d", i), toursInline(fmt.Sprintf("burst-%d", i), "1s"))
	}
	for i := range n {
		h.waitFor(fmt.Sprintf("burst-%d", i), "submitted", func(o *opsv1.OptimizationOperation) bool { return o.Status.OperationName != "" })
	}
	elapsed := time.Since(start)
	calls, err := h.admin.Calls(h.ctx)
	must(t, err)
	const method = submit.MethodOptimizeToursLongRunning
	most, at := calls.MaxInWindow(window, method)
	perMinute, _ := calls.MaxInWindow(time.Minute, method)
	t.Logf("%d resources sent in %s: at most %d submits in a %s window (from %s), %d in a minute",
		n, elapsed.Round(time.Second), most, window, at.Format(time.TimeOnly), perMinute)
	if most > limit {
		t.Errorf("%d submits in the %s from %s, more than the cap of %d", most, window, at, limit)
	}
	if total := calls.Total(method); total != n {
		t.Errorf("%d submits at the emulator, want %d: one each", total, n)
	}
	s := h.solves()
	for i := range n {
		if c := s.ByLabel[fmt.Sprintf("burst-%d", i)]; c != 1 {
			t.Errorf("burst-%d started %d solves, want 1", i, c)
		}
	}
}
