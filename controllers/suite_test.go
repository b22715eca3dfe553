package controllers_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

var (
	testEnv *envtest.Environment
	restCfg *rest.Config
	k8s     client.Client
	scheme  = runtime.NewScheme()
	nsSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(opsv1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))

	var err error
	testEnv, restCfg, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers integration tests need a local control plane:", err)
		os.Exit(1)
	}
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		_ = testEnv.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
	}
	os.Exit(code)
}

// zapLevel keeps test logs quiet unless ROUTEOPT_TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("ROUTEOPT_TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors only
}

// testOptions are fast versions of the operator's defaults: the same policy, shorter clocks.
func testOptions() controllers.Options {
	return controllers.Options{
		Poll:                   policy.PollConfig{Min: 100 * time.Millisecond, Max: time.Second, AgeFactor: 0.2},
		RemoteUnavailableAfter: time.Hour,
		// Long enough for a retry: deletionTimestamp has whole seconds, and deletion backs
		// off at least 2 s between cancels, so a 3 s timeout left room for one only by luck.
		DeletionCancelTimeout:   10 * time.Second,
		CredentialsRecheck:      200 * time.Millisecond,
		MaxConcurrentReconciles: 4,
		CredentialsFromSecrets:  true,
	}
}

// harness is one test's world: its own namespace, emulator and manager.
type harness struct {
	t      testing.TB
	ctx    context.Context
	ns     string
	emu    *httptest.Server
	admin  *emulator.AdminClient
	budget *budget.Budget
	opts   controllers.Options
	remote remote.Config
	qps    float64
	burst  int
	auth   bool
	// wrap, when set, wraps the manager's client: tests inject API server failures with it.
	wrap func(client.Client) client.Client
	stop context.CancelFunc
	done chan struct{}
}

type harnessOption func(*harness, *emulator.Options)

func withEmulator(f func(*emulator.Options)) harnessOption {
	return func(_ *harness, o *emulator.Options) { f(o) }
}

func withOptions(f func(*controllers.Options)) harnessOption {
	return func(h *harness, _ *emulator.Options) { f(&h.opts) }
}

func withBudget(qps float64, burst int) harnessOption {
	return func(h *harness, _ *emulator.Options) { h.qps, h.burst = qps, burst }
}

// withAuth makes the operator call the emulator as it calls Google: over its endpoint, with
// credentials, instead of through the emulator convention that disables auth.
func withAuth() harnessOption {
	return func(h *harness, o *emulator.Options) {
		h.auth = true
		o.RequireToken = true
		o.AcceptedTokens = []string{"emulator-token:" + goodAccount}
	}
}

func newHarness(t testing.TB, options ...harnessOption) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, opts: testOptions(), qps: 50, burst: 20}
	emuOpts := emulator.Options{}
	for _, o := range options {
		o(h, &emuOpts)
	}
	h.emu = httptest.NewServer(emulator.New(emuOpts))
	t.Cleanup(h.emu.Close)
	h.admin = &emulator.AdminClient{BaseURL: h.emu.URL}
	host := strings.TrimPrefix(h.emu.URL, "http://")
	if h.auth {
		h.remote.Endpoint = h.emu.URL
		h.remote.TrustedTokenURIs = []string{emulator.TokenURL(h.emu.URL)}
	} else {
		h.remote.EmulatorHost = host
	}

	h.ns = fmt.Sprintf("t%d-%s", nsSeq.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(h.ns) > 60 {
		h.ns = h.ns[:60]
	}
	h.ns = strings.TrimRight(h.ns, "-")
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}))
	h.startManager()
	return h
}

// startManager runs a manager watching only this test's namespace, as the operator's binary
// does with --watch-namespaces.
func (h *harness) startManager() {
	t := h.t
	t.Helper()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	must(t, err)
	h.budget = budget.New(h.qps, h.burst)
	c := mgr.GetClient()
	if h.wrap != nil {
		c = h.wrap(c)
	}
	r := &controllers.OptimizationOperationReconciler{
		Client:    c,
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("routeopt-operator"),
		Clients:   remote.NewFactory(h.ctx, h.remote, nil),
		Budget:    h.budget,
		Options:   h.opts,
	}
	must(t, r.SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(h.ctx)
	h.stop, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(h.stopManager)
}

func (h *harness) stopManager() {
	if h.stop == nil {
		return
	}
	h.stop()
	<-h.done
	h.stop = nil
}

// createOperation creates a remote operation in the emulator through its admin API.
func (h *harness) createOperation(req emulator.CreateOperationRequest) string {
	h.t.Helper()
	name, err := h.admin.CreateOperation(h.ctx, req)
	must(h.t, err)
	return name
}

// apply creates an OptimizationOperation for the remote operation name.
func (h *harness) apply(name, opName string, mutate ...func(*opsv1.OptimizationOperation)) *opsv1.OptimizationOperation {
	h.t.Helper()
	obj := &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name},
		Spec:       opsv1.OptimizationOperationSpec{OperationName: opName},
	}
	for _, m := range mutate {
		m(obj)
	}
	must(h.t, k8s.Create(h.ctx, obj))
	return obj
}

// fault makes the emulator inject f into every call of method (and nothing else).
func (h *harness) fault(method string, f emulator.MethodFault) {
	h.t.Helper()
	must(h.t, h.admin.SetFaults(h.ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{method: f}}))
}

// waitCancelledAsRequested waits until name is Cancelled and checks that it reads as the end
// of a cancel asked for here: Ready, not Stalled, kstatus Current.
func (h *harness) waitCancelledAsRequested(name string) *opsv1.OptimizationOperation {
	h.t.Helper()
	o := h.waitState(name, opsv1.ReasonCancelled)
	expect(h.t, o, "False/Cancelled", "True/Cancelled", "absent", status.CurrentStatus)
	return o
}

// expectCalls checks how many calls of method the emulator answered with the HTTP code (0:
// with any code).
func (h *harness) expectCalls(method string, code int, want int64) {
	h.t.Helper()
	if n := h.calls(method, code); n != want {
		h.t.Errorf("%s calls answered with HTTP %d (0: any) = %d, want %d", method, code, n, want)
	}
}

// startRunning creates an hour-long remote operation and a resource for it, waits until the
// resource says Running, and returns the operation's name.
func (h *harness) startRunning(name string, mutate ...func(*opsv1.OptimizationOperation)) string {
	h.t.Helper()
	op := h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply(name, op, mutate...)
	h.waitState(name, opsv1.ReasonRunning)
	return op
}

func (h *harness) get(name string) *opsv1.OptimizationOperation {
	h.t.Helper()
	obj := &opsv1.OptimizationOperation{}
	must(h.t, k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, obj))
	return obj
}

// patchSpec applies a JSON merge patch to the spec, as kubectl patch --type merge does.
func (h *harness) patchSpec(name, patch string) {
	h.t.Helper()
	obj := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}}
	must(h.t, k8s.Patch(h.ctx, obj, client.RawPatch("application/merge-patch+json", []byte(patch))))
}

func (h *harness) cancel(name string) { h.patchSpec(name, `{"spec":{"cancel":true}}`) }

// waitFor polls the object until cond holds. The limit only bounds a broken test; nothing
// asserts how fast the operator is.
func (h *harness) waitFor(name, what string, cond func(*opsv1.OptimizationOperation) bool) *opsv1.OptimizationOperation {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var obj *opsv1.OptimizationOperation
	for time.Now().Before(deadline) {
		obj = &opsv1.OptimizationOperation{}
		err := k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, obj)
		if err == nil && cond(obj) {
			return obj
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("%s/%s never became %s; last status: %s", h.ns, name, what, describe(obj))
	return nil
}

// waitState waits for the Succeeded condition's reason (the State column).
func (h *harness) waitState(name, reason string) *opsv1.OptimizationOperation {
	h.t.Helper()
	return h.waitFor(name, reason, func(o *opsv1.OptimizationOperation) bool {
		c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded)
		return c != nil && c.Reason == reason && o.Status.ObservedGeneration == o.Generation
	})
}

// waitReady waits for the Ready condition's reason.
func (h *harness) waitReady(name, reason string) *opsv1.OptimizationOperation {
	h.t.Helper()
	return h.waitFor(name, "Ready "+reason, func(o *opsv1.OptimizationOperation) bool {
		c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionReady)
		return c != nil && c.Reason == reason
	})
}

func (h *harness) waitGone(name string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		err := k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &opsv1.OptimizationOperation{})
		if client.IgnoreNotFound(err) == nil && err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("%s/%s was never deleted: %s", h.ns, name, describe(h.get(name)))
}

// calls counts the emulator's answers to method with HTTP status code (0: any status).
func (h *harness) calls(method string, code int) int64 {
	h.t.Helper()
	c, err := h.admin.Counters(h.ctx)
	must(h.t, err)
	var n int64
	for status, count := range c[method] {
		if code == 0 || status == code {
			n += count
		}
	}
	return n
}

// events lists the events about the object, by reason.
func (h *harness) events(name string) map[string]int {
	h.t.Helper()
	var list corev1.EventList
	must(h.t, k8s.List(h.ctx, &list, client.InNamespace(h.ns)))
	out := map[string]int{}
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			out[e.Reason]++
		}
	}
	return out
}

// waitCalls waits until the emulator answered at least n calls of method with the HTTP code
// (0: any code). The limit only bounds a broken test.
func (h *harness) waitCalls(method string, code int, n int64) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for h.calls(method, code) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("the emulator answered %d calls of %s with HTTP %d (0: any), want at least %d", h.calls(method, code), method, code, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) waitEvent(name, reason string) {
	h.t.Helper()
	h.waitAnyEvent([]string{name}, reason)
}

// waitAnyEvent waits for an event with reason about any of the named objects.
func (h *harness) waitAnyEvent(names []string, reason string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range names {
			if h.events(name)[reason] > 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("no %s event for %s/%v; events of the first: %v", reason, h.ns, names, h.events(names[0]))
}

func describe(o *opsv1.OptimizationOperation) string {
	if o == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "gen=%d observed=%d done=%v", o.Generation, o.Status.ObservedGeneration, o.Status.Done)
	if o.Status.Cancel != nil {
		fmt.Fprintf(&b, " cancel=%s(%s)", o.Status.Cancel.Outcome, o.Status.Cancel.Message)
	}
	if o.Status.Error != nil {
		fmt.Fprintf(&b, " error=%d/%s", o.Status.Error.Code, o.Status.Error.Message)
	}
	for _, c := range o.Status.Conditions {
		fmt.Fprintf(&b, " [%s=%s/%s: %s]", c.Type, c.Status, c.Reason, c.Message)
	}
	return b.String()
}

// condition returns "Status/Reason" of a condition type, or "absent".
func condition(o *opsv1.OptimizationOperation, typ string) string {
	c := meta.FindStatusCondition(o.Status.Conditions, typ)
	if c == nil {
		return "absent"
	}
	return string(c.Status) + "/" + c.Reason
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
