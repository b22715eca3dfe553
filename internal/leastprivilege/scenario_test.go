package leastprivilege_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

const (
	// waitLimit bounds every wait of a run. It only ends a run in which something never
	// happens; nothing here measures how fast the operator is.
	waitLimit = 60 * time.Second
	// transientReads is how many reads the emulator fails at the start of a run. The operator
	// tells each in a RemoteError event; an identical repeat (same object, same
	// resourceVersion) is recorded by patching the first event's series, which needs the events
	// patch permission. The first failure comes with the resource's first status write
	// (Pending), so the second and third are the identical pair.
	transientReads = 3
)

var nsSeq atomic.Int64

// newNamespace creates a namespace for one run.
func newNamespace(t *testing.T, c *cluster) string {
	t.Helper()
	ns := fmt.Sprintf("lp-%d", nsSeq.Add(1))
	ensureNamespace(t, c, ns)
	return ns
}

func ensureNamespace(t *testing.T, c *cluster, ns string) {
	t.Helper()
	err := c.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// runOptions describe one run of the manager.
type runOptions struct {
	c    *cluster
	inst *installation
	// plainNS holds a resource that uses the operator's own identity and is cancelled; keyedNS
	// one that takes its key from a Secret.
	plainNS, keyedNS string
	// noSecrets: the manager runs with --credentials-from-secrets=false, so the Secret-backed
	// resource must report AuthFailed without the Secret ever being read.
	noSecrets bool
	// otherNS, when set, holds a resource the manager must leave alone (not watched).
	otherNS string
	// mayBreak: the run is expected to break, so the manager's log is not worth showing.
	mayBreak bool
}

// run runs the manager and drives it through everything its permissions are for. It returns
// "" when all of it worked, or the first thing that did not. The manager, its resources and
// its Lease are gone when it returns.
func run(t *testing.T, o runOptions) (broke string) {
	t.Helper()
	started := time.Now()
	ctx := context.Background()
	emu := httptest.NewServer(emulator.New(emulator.Options{}))
	defer emu.Close()
	emuAdmin := &emulator.AdminClient{BaseURL: emu.URL}
	if err := emuAdmin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: {FailNext: transientReads},
	}}); err != nil {
		t.Fatal(err)
	}
	newOp := func() string {
		t.Helper()
		name, err := emuAdmin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return name
	}

	c := o.c
	m := startManager(t, c, o.inst, strings.TrimPrefix(emu.URL, "http://"))
	namespaces := []string{o.plainNS, o.keyedNS, o.otherNS}
	defer func() {
		m.stop()
		cleanUp(t, c, m.leaseNS, namespaces)
		if (broke != "" && !o.mayBreak) || t.Failed() {
			t.Logf("manager log:\n%s", shorten(m.log.String(), 20000))
		}
		t.Logf("run took %s", time.Since(started).Round(100*time.Millisecond))
	}()
	r := &runner{t: t, c: c, m: m}

	if o.otherNS != "" {
		createResource(t, c, o.otherNS, "ignored", newOp(), nil)
	}
	createResource(t, c, o.plainNS, "plain", newOp(), nil)
	if broke = r.waitState(o.plainNS, "plain", opsv1.ReasonRunning); broke != "" {
		return broke
	}

	// A resource that starts its own solve from a model in a ConfigMap: the manager watches
	// the metadata of ConfigMaps and reads the one named, uncached, just before it sends.
	if err := c.k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.plainNS, Name: "model"},
		Data:       map[string]string{"request.json": `{"label": "least-privilege", "timeout": "1800s", "model": {"vehicles": [{"label": "van-1"}]}}`},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(ctx, &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.plainNS, Name: "submitted"},
		Spec: opsv1.OptimizationOperationSpec{Submit: &opsv1.SubmitSpec{Parent: "projects/demo-project/locations/global",
			OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: "model", Key: "request.json"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if broke = r.waitState(o.plainNS, "submitted", opsv1.ReasonRunning); broke != "" {
		return broke
	}

	// A resource whose finished solve's response goes to a ConfigMap (spec.resultTo): the
	// manager creates it, after reading uncached whether the name is taken.
	finished, err := emuAdmin.CreateOperation(ctx, emulator.CreateOperationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(ctx, &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.plainNS, Name: "result"},
		Spec:       opsv1.OptimizationOperationSpec{OperationName: finished, ResultTo: &opsv1.ResultTarget{Name: "result-routes"}},
	}); err != nil {
		t.Fatal(err)
	}
	if broke = r.waitResultStored(o.plainNS, "result"); broke != "" {
		return broke
	}

	// A resource with a key in a Secret; the emulator convention switches auth off, but the
	// operator still reads the Secret for it.
	key, err := emulator.NewServiceAccountKey(emu.URL, "solver@demo-project.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.keyedNS, Name: "sa-key", Labels: map[string]string{controllers.CredentialsLabel: "true"}},
		Data:       map[string][]byte{"key.json": key},
	}); err != nil {
		t.Fatal(err)
	}
	createResource(t, c, o.keyedNS, "keyed", newOp(), &opsv1.SecretKeySelector{Name: "sa-key"})

	cancel := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: o.plainNS, Name: "plain"}}
	if err := c.k8s.Patch(ctx, cancel, client.RawPatch(client.Merge.Type(), []byte(`{"spec":{"cancel":true}}`))); err != nil {
		t.Fatal(err)
	}
	if broke = r.waitState(o.plainNS, "plain", opsv1.ReasonCancelled); broke != "" {
		return broke
	}
	if o.noSecrets {
		broke = r.waitSecretUnused(o.keyedNS, "keyed")
	} else {
		broke = r.waitState(o.keyedNS, "keyed", opsv1.ReasonRunning)
	}
	if broke != "" {
		return broke
	}
	if broke = r.waitEvents(o.plainNS, "plain"); broke != "" {
		return broke
	}
	if broke = r.waitLease(); broke != "" {
		return broke
	}
	if broke = r.scrape(o.inst); broke != "" {
		return broke
	}
	if o.otherNS != "" {
		obj := &opsv1.OptimizationOperation{}
		if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: o.otherNS, Name: "ignored"}, obj); err != nil {
			t.Fatal(err)
		}
		if len(obj.Status.Conditions) > 0 || len(obj.Finalizers) > 0 {
			t.Errorf("the manager acted on %s/ignored, outside --watch-namespaces: %+v", o.otherNS, obj.Status.Conditions)
		}
	}
	return m.broken()
}

func createResource(t *testing.T, c *cluster, ns, name, op string, secret *opsv1.SecretKeySelector) {
	t.Helper()
	obj := &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       opsv1.OptimizationOperationSpec{OperationName: op, CredentialsSecretRef: secret},
	}
	if err := c.k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %s/%s: %v", ns, name, err)
	}
}

// cleanUp deletes the run's resources (a stopped manager cannot release their finalizers, and
// the control plane has no namespace controller to empty a deleted namespace) and the Lease,
// so the next run starts its leader election from scratch.
func cleanUp(t *testing.T, c *cluster, leaseNS string, namespaces []string) {
	t.Helper()
	ctx := context.Background()
	for _, ns := range namespaces {
		if ns == "" {
			continue
		}
		var list opsv1.OptimizationOperationList
		if err := c.k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Errorf("list %s: %v", ns, err)
			continue
		}
		for i := range list.Items {
			o := &list.Items[i]
			if len(o.Finalizers) > 0 {
				if err := c.k8s.Patch(ctx, o, client.RawPatch(client.Merge.Type(), []byte(`{"metadata":{"finalizers":null}}`))); err != nil {
					t.Errorf("release %s/%s: %v", ns, o.Name, err)
				}
			}
			if err := c.k8s.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				t.Errorf("delete %s/%s: %v", ns, o.Name, err)
			}
		}
		if err := c.k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns)); err != nil {
			t.Errorf("delete secrets in %s: %v", ns, err)
		}
	}
	leases, err := c.kube.CoordinationV1().Leases(leaseNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("list leases: %v", err)
		return
	}
	for _, l := range leases.Items {
		if err := c.kube.CoordinationV1().Leases(leaseNS).Delete(ctx, l.Name, metav1.DeleteOptions{}); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete lease %s: %v", l.Name, err)
		}
	}
}

type runner struct {
	t *testing.T
	c *cluster
	m *manager
}

// wait polls check until it says done or names a failure, the manager breaks, or waitLimit
// passes. check returns done, a failure ("" for none) and the state it saw, for the message.
func (r *runner) wait(what string, check func() (done bool, failure, state string)) string {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if b := r.m.broken(); b != "" {
			return b
		}
		done, failure, state := check()
		switch {
		case done:
			return ""
		case failure != "":
			return failure
		case time.Now().After(deadline):
			return fmt.Sprintf("%s did not happen within %s; last seen: %s", what, waitLimit, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *runner) get(ns, name string) (*opsv1.OptimizationOperation, error) {
	obj := &opsv1.OptimizationOperation{}
	err := r.c.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
	return obj, err
}

// waitState waits for the Succeeded condition's reason of the current generation.
func (r *runner) waitState(ns, name, reason string) string {
	r.t.Helper()
	return r.wait(fmt.Sprintf("%s/%s %s", ns, name, reason), func() (bool, string, string) {
		obj, err := r.get(ns, name)
		if err != nil {
			return false, "", err.Error()
		}
		if c := authFailed(obj); c != nil {
			return false, fmt.Sprintf("%s/%s: AuthFailed: %s", ns, name, c.Message), ""
		}
		if c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionReady); c != nil && c.Reason == opsv1.ReasonInvalidRequest {
			return false, fmt.Sprintf("%s/%s: InvalidRequest: %s", ns, name, c.Message), ""
		}
		c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionSucceeded)
		return c != nil && c.Reason == reason && obj.Status.ObservedGeneration == obj.Generation, "", describe(obj)
	})
}

// waitResultStored waits for ResultStored=True; the condition's message tells a refused write.
func (r *runner) waitResultStored(ns, name string) string {
	r.t.Helper()
	return r.wait(fmt.Sprintf("%s/%s ResultStored", ns, name), func() (bool, string, string) {
		obj, err := r.get(ns, name)
		if err != nil {
			return false, "", err.Error()
		}
		c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionResultStored)
		switch {
		case c == nil:
			return false, "", describe(obj)
		case c.Status == metav1.ConditionTrue:
			return true, "", ""
		case c.Reason == opsv1.ReasonResultWriteFailed:
			return false, fmt.Sprintf("%s/%s: ResultStored %s: %s", ns, name, c.Reason, c.Message), ""
		}
		return false, "", describe(obj)
	})
}

func authFailed(obj *opsv1.OptimizationOperation) *metav1.Condition {
	for i, c := range obj.Status.Conditions {
		if c.Reason == opsv1.ReasonAuthFailed {
			return &obj.Status.Conditions[i]
		}
	}
	return nil
}

// waitSecretUnused waits for AuthFailed on a resource whose Secret the manager must not read.
// A message about a refused read would mean it tried; Running would mean it used the key.
func (r *runner) waitSecretUnused(ns, name string) string {
	r.t.Helper()
	return r.wait(fmt.Sprintf("%s/%s AuthFailed", ns, name), func() (bool, string, string) {
		obj, err := r.get(ns, name)
		if err != nil {
			return false, "", err.Error()
		}
		if c := authFailed(obj); c != nil {
			if strings.Contains(strings.ToLower(c.Message), "forbidden") {
				return false, fmt.Sprintf("%s/%s: the manager tried to read its Secret: %s", ns, name, c.Message), ""
			}
			r.t.Logf("%s/%s: %s", ns, name, c.Message)
			return true, "", ""
		}
		if c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionSucceeded); c != nil && c.Reason == opsv1.ReasonRunning {
			return false, fmt.Sprintf("%s/%s is Running: the manager used the key from its Secret", ns, name), ""
		}
		return false, "", describe(obj)
	})
}

// waitEvents waits for the events.k8s.io Events the operator writes about a resource: its
// transitions, and the repeated RemoteError as one event with a series.
func (r *runner) waitEvents(ns, name string) string {
	r.t.Helper()
	return r.wait("events about "+ns+"/"+name, func() (bool, string, string) {
		list, err := r.c.kube.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, "", err.Error()
		}
		seen := map[string]int32{}
		for _, e := range list.Items {
			if e.Regarding.Kind != "OptimizationOperation" || e.Regarding.Name != name {
				continue
			}
			n := int32(1)
			if e.Series != nil {
				n = e.Series.Count
			}
			seen[e.Reason] = max(seen[e.Reason], n)
		}
		// Running, the expected start, gets no event (quietStart): Cancelling, then Cancelled do.
		done := seen[opsv1.ReasonCancelling] > 0 && seen[opsv1.ReasonCancelled] > 0 && seen["RemoteError"] >= 2
		return done, "", fmt.Sprintf("events by reason (series count): %v; want Cancelling, Cancelled and RemoteError (count 2 or more)", seen)
	})
}

// waitLease waits until the leader-election Lease names a holder, and for the core Event
// leader election writes about it.
func (r *runner) waitLease() string {
	r.t.Helper()
	ctx := context.Background()
	var holder string
	if b := r.wait("a Lease held in "+r.m.leaseNS, func() (bool, string, string) {
		leases, err := r.c.kube.CoordinationV1().Leases(r.m.leaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err.Error()
		}
		for _, l := range leases.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				holder = *l.Spec.HolderIdentity
				return true, "", ""
			}
		}
		return false, "", fmt.Sprintf("%d leases, none held", len(leases.Items))
	}); b != "" {
		return b
	}
	want := holder + " became leader"
	return r.wait("the LeaderElection event", func() (bool, string, string) {
		events, err := r.c.kube.CoreV1().Events(r.m.leaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err.Error()
		}
		for _, e := range events.Items {
			if e.Reason == "LeaderElection" && e.Message == want {
				return true, "", ""
			}
		}
		return false, "", fmt.Sprintf("no core Event %q among %d in %s", want, len(events.Items), r.m.leaseNS)
	})
}

// scrape reads the metrics endpoint as Prometheus would, with a token bound to the
// metrics-reader ClusterRole: the manager checks it with a TokenReview and a
// SubjectAccessReview.
func (r *runner) scrape(inst *installation) string {
	r.t.Helper()
	if r.m.metricsURL == "" {
		return ""
	}
	_, broke := r.scrapeBody(inst)
	return broke
}

// scrapeBody is scrape that also returns what the endpoint served.
func (r *runner) scrapeBody(inst *installation) (body, broke string) {
	r.t.Helper()
	token := scraperToken(r.t, r.c, inst)
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's self-signed certificate
	}}
	var code int
	if b := r.wait("a scrape of "+r.m.metricsURL, func() (bool, string, string) {
		req, err := http.NewRequest(http.MethodGet, r.m.metricsURL, nil)
		if err != nil {
			return false, err.Error(), ""
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpc.Do(req)
		if err != nil {
			return false, "", err.Error() // not listening yet
		}
		defer func() { _ = resp.Body.Close() }()
		data, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(data)
		return true, "", ""
	}); b != "" {
		return "", b
	}
	if code != http.StatusOK || !strings.Contains(body, "routeopt_") {
		return "", fmt.Sprintf("the metrics endpoint answered HTTP %d: %s", code, shorten(strings.TrimSpace(body), 300))
	}
	return body, ""
}

// scraperToken returns a token of a ServiceAccount bound to the installation's metrics-reader
// ClusterRole (the one that grants GET /metrics).
func scraperToken(t *testing.T, c *cluster, inst *installation) string {
	t.Helper()
	c.scraperOnce.Do(func() {
		ctx := context.Background()
		reader := ""
		for _, o := range inst.objs {
			if o.GetKind() != "ClusterRole" {
				continue
			}
			var cr rbacv1.ClusterRole
			fromUnstructured(t, o, &cr)
			for _, rule := range cr.Rules {
				if slices.Contains(rule.NonResourceURLs, "/metrics") {
					reader = cr.Name
				}
			}
		}
		if reader == "" {
			c.scraperErr = fmt.Errorf("the installation has no ClusterRole that grants GET /metrics")
			return
		}
		ensureNamespace(t, c, "monitoring")
		objs := []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "prometheus"}},
			&rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + reader},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "monitoring", Name: "prometheus"}},
			},
		}
		for _, o := range objs {
			if err := c.k8s.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				c.scraperErr = err
				return
			}
		}
		c.scraper, c.scraperErr = testenv.ServiceAccountToken(ctx, c.admin, "monitoring", "prometheus", 2*time.Hour)
	})
	if c.scraperErr != nil {
		t.Fatal(c.scraperErr)
	}
	return c.scraper
}

func describe(o *opsv1.OptimizationOperation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d, observed %d, finalizers %v", o.Generation, o.Status.ObservedGeneration, o.Finalizers)
	for _, c := range o.Status.Conditions {
		fmt.Fprintf(&b, " [%s=%s/%s: %s]", c.Type, c.Status, c.Reason, c.Message)
	}
	return b.String()
}
