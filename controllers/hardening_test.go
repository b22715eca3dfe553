package controllers_test

// Adversarial tests: API server writes that fail, processes that die between two writes,
// credentials that change or disappear, and resources that carry hostile or undecodable values.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// errInjected is the API server failure the tests inject.
var errInjected = apierrors.NewServiceUnavailable("injected: the API server is unavailable")

// withStatusWriteFault makes every status write for which fail returns true fail as an
// unavailable API server would, before it reaches the server.
func withStatusWriteFault(fail func(*opsv1.OptimizationOperation) bool) harnessOption {
	return func(h *harness, _ *emulator.Options) {
		h.wrap = func(c client.Client) client.Client { return faultyStatus{Client: c, fail: fail} }
	}
}

type faultyStatus struct {
	client.Client
	fail func(*opsv1.OptimizationOperation) bool
}

func (c faultyStatus) Status() client.SubResourceWriter {
	return faultyStatusWriter{SubResourceWriter: c.Client.Status(), fail: c.fail}
}

type faultyStatusWriter struct {
	client.SubResourceWriter
	fail func(*opsv1.OptimizationOperation) bool
}

func (w faultyStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if o, ok := obj.(*opsv1.OptimizationOperation); ok && w.fail(o) {
		return errInjected
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// carriesAnswer reports whether a status write carries the server's answer to a cancel.
func carriesAnswer(o *opsv1.OptimizationOperation) bool {
	return o.Status.Cancel != nil && o.Status.Cancel.Outcome != ""
}

func TestFailedStatusWriteKeepsTheCancelAnswer(t *testing.T) {
	// The write that carries the accepted cancel fails once: the answer must reach the
	// object with the next write, not be replaced by AlreadyDone, and not be sent twice.
	var failed atomic.Bool
	h := newHarness(t, withStatusWriteFault(func(o *opsv1.OptimizationOperation) bool {
		return carriesAnswer(o) && failed.CompareAndSwap(false, true)
	}))
	h.startRunning("c")
	h.cancel("c")
	o := h.waitCancelledAsRequested("c")
	if !failed.Load() {
		t.Fatal("no status write carried the answer: the fault was never injected")
	}
	if c := o.Status.Cancel; c == nil || c.Outcome != opsv1.CancelAccepted {
		t.Errorf("status.cancel = %+v, want outcome Accepted", c)
	}
	h.expectCalls(cancelPath, 0, 1)
}

func TestAnswerLostToACrashStillReadsCancelledAsRequested(t *testing.T) {
	// The process dies after the server accepted the cancel and before any write carrying
	// the answer landed (every such write fails, then the manager stops). The next process
	// must not claim that no cancel was sent: the request was recorded before it was sent,
	// and the operation ended CANCELLED.
	var down atomic.Bool
	down.Store(true)
	h := newHarness(t, withStatusWriteFault(func(o *opsv1.OptimizationOperation) bool {
		return down.Load() && carriesAnswer(o)
	}))
	h.startRunning("c")
	h.cancel("c")
	h.waitCalls(cancelPath, 200, 1)
	h.stopManager()
	down.Store(false)
	if c := h.get("c").Status.Cancel; c == nil || c.RequestedAt == nil {
		t.Errorf("status.cancel after the crash = %+v, want the request recorded before the cancel was sent", c)
	}

	h.startManager()
	o := h.waitCancelledAsRequested("c")
	if c := o.Status.Cancel; c == nil || strings.Contains(c.Message, "no cancel was sent") {
		t.Errorf("status.cancel = %+v: it claims no cancel was sent, but one was accepted", c)
	}
	h.expectCalls(cancelPath, 0, 1)
}

func TestAPIServerOutageAfterCancelsWereAnswered(t *testing.T) {
	// The API server refuses every write that would record an answer until all ten cancels
	// were answered, and a while after: once it is back, each answer is recorded as the
	// server gave it, and none is sent twice.
	var down atomic.Bool
	down.Store(true)
	h := newHarness(t, withStatusWriteFault(func(o *opsv1.OptimizationOperation) bool {
		return down.Load() && carriesAnswer(o)
	}))
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("o-%d", i))
		h.apply(names[i], h.createOperation(emulator.CreateOperationRequest{Duration: longSolve}))
	}
	for _, name := range names {
		h.waitState(name, opsv1.ReasonRunning)
	}
	for _, name := range names {
		h.cancel(name)
	}
	h.waitCalls(cancelPath, 200, int64(len(names)))
	time.Sleep(time.Second) // the reconciles that got the answers retry their writes meanwhile
	down.Store(false)
	for _, name := range names {
		o := h.waitCancelledAsRequested(name)
		if c := o.Status.Cancel; c == nil || c.Outcome != opsv1.CancelAccepted {
			t.Errorf("%s: status.cancel = %+v, want outcome Accepted", name, c)
		}
	}
	h.expectCalls(cancelPath, 0, int64(len(names)))
}

func TestFixedSecretRetriesARefusedCancelAtOnce(t *testing.T) {
	// A refused cancel backs off towards --max-poll-interval (10 min here); a new key in the
	// Secret is tried at once, for the cancel as for reads.
	h := newHarness(t, withAuth(), withOptions(func(o *controllers.Options) { o.Poll.Max = 10 * time.Minute }))
	h.putCredentials("sa", serviceAccountKey(t, h, goodAccount))
	h.startRunning("c", secretRef("sa"))
	h.fault(emulator.MethodCancelOperation, emulator.MethodFault{PermissionDenied: 1})
	h.cancel("c")
	h.waitReady("c", opsv1.ReasonAuthFailed)
	h.waitCalls(cancelPath, 403, 1)

	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	h.putCredentials("sa", serviceAccountKey(t, h, goodAccount)) // a new key of an account allowed to cancel
	h.waitCancelledAsRequested("c")
	h.expectCalls(cancelPath, 200, 1)
}

func TestDeletionCancelsWithTheLastWorkingCredentials(t *testing.T) {
	// A GitOps prune deletes the Secret and the resource together, the Secret first: the
	// cancel on delete still goes out, with the key that worked before.
	h := newHarness(t, withAuth())
	h.putCredentials("sa", serviceAccountKey(t, h, goodAccount))
	op := h.startRunning("d", secretRef("sa"), deletionPolicy(opsv1.DeletionPolicyCancel))
	must(t, k8s.Delete(h.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "sa"}}))
	h.delete("d")
	h.waitGone("d")
	info, err := h.admin.GetOperation(h.ctx, op)
	must(t, err)
	if !info.Done || info.ErrorCode != 1 {
		t.Errorf("remote operation not cancelled on delete: %+v; events: %v", info, h.events("d"))
	}
	h.expectCalls(cancelPath, 200, 1)
}

func TestLongFailureMessageStillGetsAnEvent(t *testing.T) {
	// The API server refuses event notes over 1024 bytes: a failure with a long message must
	// still be told in an event, shortened.
	h := newHarness(t)
	msg := strings.Repeat("the depot is closed on that day; ", 100) // 3,300 characters
	op := h.createOperation(emulator.CreateOperationRequest{ErrorCode: 3, ErrorMessage: msg})
	h.apply("f", op)
	h.waitState("f", opsv1.ReasonFailed)
	h.waitEvent("f", opsv1.ReasonFailed)
	var list corev1.EventList
	must(t, k8s.List(h.ctx, &list, client.InNamespace(h.ns)))
	for _, e := range list.Items {
		if n := len(e.Message); n > 1024 {
			t.Errorf("event %s has a note of %d bytes", e.Reason, n)
		}
	}
}

func TestUndecodablePollIntervalIsOneObjectsProblem(t *testing.T) {
	// 99999999999h matches a Go duration's syntax but overflows it. The API refuses it; an
	// object stored before that rule existed is reported on itself, and the others in its
	// namespace keep working.
	h := newHarness(t)
	bad := func(name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		must(t, u.UnmarshalJSON(fmt.Appendf(nil, `{"apiVersion":"ops.routeopt.dev/v1alpha1","kind":"OptimizationOperation",
			"metadata":{"name":%q,"namespace":%q},
			"spec":{"operationName":"projects/p/locations/global/operations/1","pollInterval":"99999999999h"}}`, name, h.ns)))
		return u
	}
	if err := k8s.Create(h.ctx, bad("refused")); err == nil {
		t.Error("pollInterval 99999999999h was accepted")
	} else {
		t.Logf("refused: %v", err)
	}

	// Stored while the operator was down, before an upgrade added the rule.
	h.stopManager()
	withoutDurationRules(t, func() error { return k8s.Create(h.ctx, bad("stored-before")) })
	h.startManager()
	h.startRunning("canary")
	h.cancel("canary")
	h.waitCancelledAsRequested("canary")
	o := h.waitReady("stored-before", opsv1.ReasonInvalidSpec)
	expect(t, o, "Unknown/Pending", "False/InvalidSpec", "True/InvalidSpec", status.FailedStatus)
	if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, "spec.pollInterval") {
		t.Errorf("Ready message does not name the field: %q", msg)
	}
}

// withoutDurationRules runs create while the CRD validates spec.pollInterval as the release
// before did (no bound on its numbers, no range rule). The API server applies a changed schema within a
// moment, so create is retried until it succeeds.
func withoutDurationRules(t *testing.T, create func() error) {
	t.Helper()
	const crdName = "optimizationoperations.ops.routeopt.dev"
	var orig *apiextensionsv1.JSONSchemaProps
	set := func(drop bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			must(t, k8s.Get(context.Background(), client.ObjectKey{Name: crdName}, crd))
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			p := spec.Properties["pollInterval"]
			if orig == nil {
				orig = p.DeepCopy()
			}
			if drop {
				// The schema of the release before: any number of digits, no range rule.
				p.XValidations, p.Pattern = nil, `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
			} else {
				p = *orig
			}
			spec.Properties["pollInterval"] = p
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
			err := k8s.Update(context.Background(), crd)
			if err == nil {
				return
			}
			if !apierrors.IsConflict(err) || time.Now().After(deadline) {
				t.Fatalf("update CRD: %v", err)
			}
		}
	}
	set(true)
	defer set(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := create()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create with the rule removed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSecretMustOptInAsCredentials(t *testing.T) {
	// A tenant who may create resources must not borrow any key of the namespace, nor learn
	// what an unlabelled Secret holds.
	h := newHarness(t, withAuth())
	key := serviceAccountKey(t, h, goodAccount)
	h.putSecret("tls-cert", map[string][]byte{"tls.key": []byte("-----BEGIN PRIVATE KEY-----"), "key.json": key})
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("a", op, secretRef("tls-cert"))

	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Pending", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	msg := findCond(o, opsv1.ConditionReady)
	if !strings.Contains(msg, controllers.CredentialsLabel) {
		t.Errorf("Ready message does not say how to opt in: %q", msg)
	}
	if strings.Contains(msg, "tls.key") || strings.Contains(msg, "PRIVATE") {
		t.Errorf("Ready message reveals what the Secret holds: %q", msg)
	}
	h.expectCalls(getPath, 0, 0)

	h.putCredentials("tls-cert", key)
	h.waitState("a", opsv1.ReasonRunning)
}

func TestKeyNamingAnotherTokenEndpointIsRefused(t *testing.T) {
	// A tenant's key whose token_uri points at a host of the tenant's choosing: the operator
	// must not post a signed assertion there, and must not copy that host's answer into status.
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "secret-from-the-internal-network", http.StatusForbidden)
	}))
	t.Cleanup(evil.Close)
	h := newHarness(t, withAuth())
	key, err := emulator.NewServiceAccountKey(evil.URL, goodAccount)
	must(t, err)
	h.putCredentials("sa", key)
	h.apply("a", h.createOperation(emulator.CreateOperationRequest{Duration: longSolve}), secretRef("sa"))
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	expect(t, o, "Unknown/Pending", "False/AuthFailed", "True/AuthFailed", status.FailedStatus)
	msg := findCond(o, opsv1.ConditionReady)
	if !strings.Contains(msg, "token_uri") || strings.Contains(msg, "secret-from") {
		t.Errorf("Ready message = %q, want it to name token_uri and nothing the host said", msg)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the key's token endpoint was called %d times", n)
	}
	h.expectCalls(getPath, 0, 0)
}

func TestEmptyKeyIsCalledEmpty(t *testing.T) {
	h := newHarness(t, withAuth())
	h.putCredentials("sa", nil)
	h.apply("a", h.createOperation(emulator.CreateOperationRequest{Duration: longSolve}), secretRef("sa"))
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, "is empty") || strings.Contains(msg, "has no key") {
		t.Errorf("Ready message for an empty key = %q, want it to say the key is empty", msg)
	}
}

func TestCredentialsFromSecretsCanBeTurnedOff(t *testing.T) {
	h := newHarness(t, withAuth(), withOptions(func(o *controllers.Options) { o.CredentialsFromSecrets = false }))
	h.putCredentials("sa", serviceAccountKey(t, h, goodAccount))
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("a", op, secretRef("sa"))
	o := h.waitReady("a", opsv1.ReasonAuthFailed)
	if msg := findCond(o, opsv1.ConditionReady); !strings.Contains(msg, "--credentials-from-secrets") {
		t.Errorf("Ready message does not say why the Secret is not used: %q", msg)
	}
	h.expectCalls(getPath, 0, 0)
}

func secretRef(name string) func(*opsv1.OptimizationOperation) {
	return func(o *opsv1.OptimizationOperation) {
		o.Spec.CredentialsSecretRef = &opsv1.SecretKeySelector{Name: name, Key: "key.json"}
	}
}

func TestFailedStatusWriteIsNotLeftForTheNextPoll(t *testing.T) {
	// The write that first says Running fails once, and the next poll is ten minutes away:
	// the status must still say Running soon, not stay Pending until then.
	var failed atomic.Bool
	h := newHarness(t,
		withOptions(func(o *controllers.Options) { o.Poll.Min, o.Poll.Max = 10*time.Minute, 10*time.Minute }),
		withStatusWriteFault(func(o *opsv1.OptimizationOperation) bool {
			return o.Status.StartTime != nil && failed.CompareAndSwap(false, true)
		}))
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("w", op)
	h.waitState("w", opsv1.ReasonRunning)
	if !failed.Load() {
		t.Fatal("the fault was never injected")
	}
	t.Logf("%d reads: the one whose status write failed, and the one that stored it", h.calls(getPath, 200))
}
