package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/result"
)

// hourlyPolls makes every scheduled read an hour away, the first aside: within a test, a read
// comes only when something asks for it.
func hourlyPolls() harnessOption {
	return withOptions(func(o *controllersOptions) {
		o.Poll = policy.PollConfig{Min: time.Hour, Max: time.Hour, AgeFactor: 0.2}
	})
}

// annotateWith sets annotations of the resource with a merge patch, as kubectl annotate
// --overwrite does.
func (h *harness) annotateWith(name string, annotations map[string]string) {
	h.t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	must(h.t, err)
	obj := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}}
	must(h.t, k8s.Patch(h.ctx, obj, client.RawPatch("application/merge-patch+json", b)))
}

// TestRereadOnRequest: reconcile.fluxcd.io/requestedAt reads a resource now. The resource names
// an operation that does not exist yet, so it ends NotFound, whose next read is
// --max-poll-interval (an hour here) away; the operation is then created. Annotating reads it
// within seconds, and records the value; the same value again, or another annotation, reads
// nothing; a new value reads once more.
func TestRereadOnRequest(t *testing.T) {
	h := newHarness(t, hourlyPolls())
	opName := "projects/demo-project/locations/global/operations/reread-1"
	h.apply("reread", opName)
	h.waitState("reread", opsv1.ReasonNotFound)
	h.createOperation(emulator.CreateOperationRequest{Name: opName, Duration: longSolve})
	reads := h.calls(getPath, 0)
	time.Sleep(time.Second)
	if n := h.calls(getPath, 0); n != reads {
		t.Fatalf("%d reads without a request, within an hour-long back-off", n-reads)
	}

	const value = "2026-05-04T10:11:12Z"
	start := time.Now()
	h.annotateWith("reread", map[string]string{opsv1.AnnotationRequestedAt: value})
	h.waitState("reread", opsv1.ReasonRunning)
	took := time.Since(start)
	t.Logf("Running %s after the annotation", took.Round(10*time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("Running only %s after the annotation", took)
	}
	o := h.waitFor("reread", "handled", func(o *opsv1.OptimizationOperation) bool { return o.Status.LastHandledReconcileAt == value })
	if n := h.calls(getPath, 0) - reads; n != 1 {
		t.Errorf("%d reads for one request, want 1", n)
	}
	expect(t, o, "Unknown/Running", "False/Running", "absent", status.InProgressStatus)

	// The same value again, and a change of another annotation: no read.
	reads = h.calls(getPath, 0)
	h.annotateWith("reread", map[string]string{opsv1.AnnotationRequestedAt: value})
	h.annotateWith("reread", map[string]string{"example.com/note": "touched"})
	time.Sleep(2 * time.Second)
	if n := h.calls(getPath, 0) - reads; n != 0 {
		t.Errorf("%d reads after the same value again, want none", n)
	}

	// A new value: one more read.
	h.annotateWith("reread", map[string]string{opsv1.AnnotationRequestedAt: "2"})
	h.waitFor("reread", "handled 2", func(o *opsv1.OptimizationOperation) bool { return o.Status.LastHandledReconcileAt == "2" })
	time.Sleep(time.Second)
	if n := h.calls(getPath, 0) - reads; n != 1 {
		t.Errorf("%d reads for the new value, want 1", n)
	}
}

// TestRereadOfFinishedOperation: a resource whose operation is done records the value without a
// read.
func TestRereadOfFinishedOperation(t *testing.T) {
	h := newHarness(t, hourlyPolls())
	h.apply("finished", h.createOperation(emulator.CreateOperationRequest{}))
	h.waitState("finished", opsv1.ReasonSucceeded)
	reads := h.calls(getPath, 0)
	h.annotateWith("finished", map[string]string{opsv1.AnnotationRequestedAt: "1"})
	h.waitFor("finished", "handled", func(o *opsv1.OptimizationOperation) bool { return o.Status.LastHandledReconcileAt == "1" })
	if n := h.calls(getPath, 0) - reads; n != 0 {
		t.Errorf("%d reads of a finished operation, want none", n)
	}
}

// operationResponse reads the operation's response as any client of the API would, with Google's
// own client.
func operationResponse(t *testing.T, emuURL, name string) *routeoptimizationpb.OptimizeToursResponse {
	t.Helper()
	c, err := lroauto.NewOperationsRESTClient(context.Background(), option.WithEndpoint(emuURL), option.WithoutAuthentication())
	must(t, err)
	defer func() { _ = c.Close() }()
	op, err := c.GetOperation(context.Background(), &longrunningpb.GetOperationRequest{Name: name})
	must(t, err)
	resp := &routeoptimizationpb.OptimizeToursResponse{}
	must(t, op.GetResponse().UnmarshalTo(resp))
	return resp
}

func getConfigMap(t *testing.T, ns, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cm)
	return cm, err
}

// waitResultStored waits for the ResultStored condition's reason.
func (h *harness) waitResultStored(name, reason string) *opsv1.OptimizationOperation {
	h.t.Helper()
	return h.waitFor(name, "ResultStored "+reason, func(o *opsv1.OptimizationOperation) bool {
		c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionResultStored)
		return c != nil && c.Reason == reason
	})
}

// checkStored checks that the ConfigMap of o's spec.resultTo holds exactly the response of its
// operation, and belongs to o.
func checkStored(t *testing.T, emuURL string, o *opsv1.OptimizationOperation) *corev1.ConfigMap {
	t.Helper()
	cm, err := getConfigMap(t, o.Namespace, o.Spec.ResultTo.Name)
	must(t, err)
	got, err := result.Decode(cm)
	must(t, err)
	want := operationResponse(t, emuURL, o.Status.OperationName)
	if !proto.Equal(got, want) {
		t.Errorf("ConfigMap %s/%s holds another response than operation %s's", cm.Namespace, cm.Name, o.Status.OperationName)
	}
	if ref := metav1.GetControllerOf(cm); ref == nil || ref.UID != o.UID {
		t.Errorf("ConfigMap %s/%s is not controlled by the resource: %+v", cm.Namespace, cm.Name, cm.OwnerReferences)
	}
	if result.Check(cm, o.UID) != result.Complete {
		t.Errorf("ConfigMap %s/%s does not read as complete", cm.Namespace, cm.Name)
	}
	return cm
}

// TestResultToConfigMap: a solve started through spec.submit with spec.resultTo; once it
// succeeds the ConfigMap holds its whole OptimizeToursResponse, and status.result its summary.
func TestResultToConfigMap(t *testing.T) {
	h := newHarness(t)
	h.applySubmit("routes", toursInline("result", "2s"), func(o *opsv1.OptimizationOperation) {
		o.Spec.ResultTo = &opsv1.ResultTarget{Name: "routes-result"}
	})
	o := h.waitResultStored("routes", opsv1.ReasonResultStored)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	cm := checkStored(t, h.emu.URL, o)
	if cm.Immutable == nil || !*cm.Immutable || cm.Data[opsv1.ResultKeyJSON] == "" {
		t.Errorf("ConfigMap: immutable %v, keys %d data, %d binaryData", cm.Immutable, len(cm.Data), len(cm.BinaryData))
	}

	want := operationResponse(t, h.emu.URL, o.Status.OperationName)
	r := o.Status.Result
	var visits int32
	for _, route := range want.GetRoutes() {
		visits += int32(len(route.GetVisits()))
	}
	m := want.GetMetrics().GetAggregatedRouteMetrics()
	if r == nil || r.VehiclesUsed == nil || *r.VehiclesUsed != want.GetMetrics().GetUsedVehicleCount() ||
		r.Visits == nil || *r.Visits != visits || r.TravelDistanceMeters == nil || *r.TravelDistanceMeters != int64(m.GetTravelDistanceMeters()) ||
		r.TravelDuration != opsv1.Duration(m.GetTravelDuration().AsDuration().String()) || visits == 0 {
		t.Errorf("status.result = %+v, want the summary of %v", r, want.GetMetrics())
	}
	if h.events("routes")[opsv1.ConditionResultStored] != 1 {
		t.Errorf("events %v, want one ResultStored", h.events("routes"))
	}
}

// bigResponse is an OptimizeToursResponse whose JSON does not fit in a ConfigMap even
// compressed: random vehicle labels, which gzip cannot shrink much.
func bigResponse(t *testing.T) json.RawMessage {
	t.Helper()
	resp := &routeoptimizationpb.OptimizeToursResponse{RequestLabel: "big"}
	for i := range 6000 {
		b := make([]byte, 240)
		_, _ = rand.Read(b)
		resp.Routes = append(resp.Routes, &routeoptimizationpb.ShipmentRoute{VehicleIndex: int32(i),
			VehicleLabel: base64.StdEncoding.EncodeToString(b)})
	}
	js, err := protojson.Marshal(resp)
	must(t, err)
	return js
}

// TestResultTooLarge: a response too large for one ConfigMap is not written; the resource still
// succeeded, and the condition says what to do instead.
func TestResultTooLarge(t *testing.T) {
	h := newHarness(t)
	op := h.createOperation(emulator.CreateOperationRequest{Response: bigResponse(t)})
	h.apply("big", op, func(o *opsv1.OptimizationOperation) { o.Spec.ResultTo = &opsv1.ResultTarget{Name: "big-result"} })
	o := h.waitResultStored("big", opsv1.ReasonResultTooLarge)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionResultStored)
	t.Logf("ResultStored: %s", c.Message)
	if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "optimizeToursUri") || !strings.Contains(c.Message, "MiB") {
		t.Errorf("ResultStored = %s: %s", c.Status, c.Message)
	}
	if _, err := getConfigMap(t, h.ns, "big-result"); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigMap was written: %v", err)
	}
	if n := h.events("big")["ResultNotStored"]; n != 1 {
		t.Errorf("%d ResultNotStored events, want 1", n)
	}
}

// TestResultNotOwned: a ConfigMap of the name that the operator did not create for this resource
// is never written over; once it is deleted, the response is written.
func TestResultNotOwned(t *testing.T) {
	h := newHarness(t)
	h.putConfigMap("taken", map[string]string{"note": "someone else's"})
	h.apply("blocked", h.createOperation(emulator.CreateOperationRequest{}), func(o *opsv1.OptimizationOperation) {
		o.Spec.ResultTo = &opsv1.ResultTarget{Name: "taken"}
	})
	o := h.waitResultStored("blocked", opsv1.ReasonResultNotOwned)
	expect(t, o, "True/Succeeded", "True/Succeeded", "absent", status.CurrentStatus)
	cm, err := getConfigMap(t, h.ns, "taken")
	must(t, err)
	if cm.Data["note"] != "someone else's" || len(cm.Data) != 1 || len(cm.OwnerReferences) != 0 {
		t.Errorf("the ConfigMap in the way was changed: %+v", cm)
	}
	must(t, k8s.Delete(h.ctx, cm))
	o = h.waitResultStored("blocked", opsv1.ReasonResultStored)
	checkStored(t, h.emu.URL, o)
}

// TestResultSurvivesKills runs the manager binary while solves with spec.resultTo finish, and
// kills it with SIGKILL in the two moments of the write that a restart must get right, held
// open by admission policies of the API server:
//
//  1. the solves are done and recorded, their responses held only in memory: the ConfigMaps'
//     creation is refused, then the manager is killed. The next one reads the operations again.
//  2. the ConfigMaps are written, ResultStored is not: the status writes that record it are
//     refused, then the manager is killed. The next one finds them complete, reads nothing
//     again, and records them.
//
// Every resource must end with exactly its ConfigMap, complete, holding its operation's response.
func TestResultSurvivesKills(t *testing.T) {
	const resources = 10
	started := time.Now()
	emu := httptest.NewServer(emulator.New(emulator.Options{}))
	defer emu.Close()
	admin := &emulator.AdminClient{BaseURL: emu.URL}
	ctx := context.Background()
	ns := fmt.Sprintf("resultkill-%d", nsSeq.Add(1))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	m := newManagerBinary(t, emu.URL, "--watch-namespaces="+ns, "--min-poll-interval=100ms", "--max-poll-interval=1s",
		"--credentials-recheck-interval=200ms")
	for i := range resources {
		must(t, k8s.Create(ctx, &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("r%d", i)},
			Spec: opsv1.OptimizationOperationSpec{Submit: toursInline(fmt.Sprintf("resultkill-%d", i), "1s"),
				ResultTo: &opsv1.ResultTarget{Name: fmt.Sprintf("r%d-result", i)}},
		}))
	}
	// waitAll waits until every resource's ResultStored condition has the reason, and the
	// number of result ConfigMaps is configMaps.
	waitAll := func(cmd *exec.Cmd, reason string, configMaps int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var list opsv1.OptimizationOperationList
			must(t, k8s.List(ctx, &list, client.InNamespace(ns)))
			n := 0
			for i := range list.Items {
				if c := meta.FindStatusCondition(list.Items[i].Status.Conditions, opsv1.ConditionResultStored); c != nil && c.Reason == reason {
					n++
				}
			}
			if n == resources && len(resultConfigMaps(t, ns)) == configMaps {
				return
			}
			if time.Now().After(deadline) {
				m.stop(cmd)
				t.Fatalf("%d of %d resources ResultStored %s, %d ConfigMaps, after 60 s; manager log:\n%s",
					n, resources, reason, len(resultConfigMaps(t, ns)), lastLogLines(m.logs.String(), 30))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 1. Done, responses in memory only.
	unblock := denyInNamespace(t, ns, "result-configmaps", "configmaps", "", "CREATE", "false")
	cmd := m.start()
	waitAll(cmd, opsv1.ReasonResultWriteFailed, 0)
	m.kill(cmd)
	unblock()
	reads := callsOf(t, admin, emulator.MethodGetOperation)
	t.Logf("killed with %d solves done and their responses only in memory", resources)

	// 2. ConfigMaps written, not recorded.
	unblock = denyInNamespace(t, ns, "result-recorded", "optimizationoperations/status", opsv1.GroupVersion.Group, "UPDATE",
		"!has(object.status.conditions) || !object.status.conditions.exists(c, c.type == 'ResultStored' && c.status == 'True')")
	cmd = m.start()
	waitAll(cmd, opsv1.ReasonResultWriteFailed, resources)
	m.kill(cmd)
	unblock()
	again := callsOf(t, admin, emulator.MethodGetOperation) - reads
	t.Logf("killed with %d ConfigMaps written and not recorded; %d operations were read again for their responses", resources, again)
	if again != resources {
		t.Errorf("%d reads for %d responses lost with the process, want one each", again, resources)
	}

	// 3. The last manager records what is there, without reading anything again.
	reads = callsOf(t, admin, emulator.MethodGetOperation)
	cmd = m.start()
	waitAll(cmd, opsv1.ReasonResultStored, resources)
	m.stop(cmd)
	if n := callsOf(t, admin, emulator.MethodGetOperation) - reads; n != 0 {
		t.Errorf("%d reads to record ConfigMaps already written, want none", n)
	}
	var list opsv1.OptimizationOperationList
	must(t, k8s.List(ctx, &list, client.InNamespace(ns)))
	for i := range list.Items {
		o := &list.Items[i]
		checkStored(t, emu.URL, o)
		if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionResultStored); !strings.Contains(c.Message, "restarted") {
			t.Errorf("%s: ResultStored says %q", o.Name, c.Message)
		}
	}
	t.Logf("%d results stored across two kills; %s in all", resources, time.Since(started).Round(time.Second))
	if t.Failed() {
		t.Logf("manager log (last lines):\n%s", lastLogLines(m.logs.String(), 30))
	}
}

// resultConfigMaps lists the ConfigMaps the operator wrote in ns.
func resultConfigMaps(t *testing.T, ns string) []corev1.ConfigMap {
	t.Helper()
	var cms corev1.ConfigMapList
	must(t, k8s.List(context.Background(), &cms, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "routeopt-operator"}))
	return cms.Items
}

// denyInNamespace makes the API server refuse, with 403, the operation on resource (of group)
// in ns when the CEL expression is false, through a ValidatingAdmissionPolicy. It returns the
// function that lifts the refusal, and waits until it holds.
func denyInNamespace(t *testing.T, ns, name, resource, group, operation, expression string) func() {
	t.Helper()
	ctx := context.Background()
	name = ns + "-" + name
	fail := admissionregistrationv1.Fail
	forbidden := metav1.StatusReasonForbidden
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationType(operation)},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{resource}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: expression, Reason: &forbidden, Message: "held by " + t.Name()}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	must(t, k8s.Create(ctx, policy))
	must(t, k8s.Create(ctx, binding))
	lift := func() {
		_ = k8s.Delete(ctx, binding)
		_ = k8s.Delete(ctx, policy)
		// The API server applies policies from an informer: wait until a probe passes.
		waitAdmission(t, ns, resource, true)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding); _ = k8s.Delete(ctx, policy) })
	waitAdmission(t, ns, resource, false)
	return lift
}

// waitAdmission waits until a probe ConfigMap can (allowed) or cannot be created in ns, with a
// server-side dry run that stores nothing. For other resources, which have no such probe, it
// gives the API server's policy informer two seconds.
func waitAdmission(t *testing.T, ns, resource string, allowed bool) {
	t.Helper()
	if resource != "configmaps" {
		time.Sleep(2 * time.Second)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admission-probe"}}
		err := k8s.Create(context.Background(), probe, client.DryRunAll)
		if (err == nil) == allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admission policy did not take effect within 30 s (allowed %v): %v", allowed, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
