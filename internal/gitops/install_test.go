package gitops_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

const (
	installNamespace = "routeopt-system"
	managerSA        = "system:serviceaccount:" + installNamespace + ":routeopt-controller-manager"
	// The image config/default renders; make build-installer IMG=... replaces it.
	defaultImage = "routeopt-operator:latest"
	// The test environment installs the CRD without kubectl's annotation, so kubectl apply warns.
	lastApplied = "missing the kubectl.kubernetes.io/last-applied-configuration annotation"
)

// The control plane is started by the first test that needs it; the Argo CD and Grafana tests
// run without one.
var (
	envOnce    sync.Once
	env        *envtest.Environment
	kubeconfig string
	envErr     error
	envDir     string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping test control plane:", err)
		}
	}
	if envDir != "" {
		_ = os.RemoveAll(envDir)
	}
	os.Exit(code)
}

// controlPlane starts kube-apiserver and etcd once and returns a kubeconfig for kubectl.
func controlPlane(t *testing.T) string {
	t.Helper()
	envOnce.Do(func() {
		started := time.Now()
		if env, _, envErr = testenv.Start(); envErr != nil {
			return
		}
		if envDir, envErr = os.MkdirTemp("", "gitops-test-"); envErr != nil {
			return
		}
		kubeconfig = filepath.Join(envDir, "kubeconfig")
		envErr = testenv.Kubeconfig(env, kubeconfig)
		fmt.Printf("test control plane started in %s\n", time.Since(started).Round(time.Millisecond))
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return kubeconfig
}

// kubectl runs the real kubectl; with a control plane when kc is set.
var kubectl = testenv.Kubectl

func mustKubectl(t *testing.T, kc string, args ...string) string {
	t.Helper()
	out, stderr, err := kubectl(t, kc, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	t.Logf("kubectl %s:\n%s%s", strings.Join(args, " "), out, stderr)
	return out
}

// warnings returns the "Warning:" lines kubectl printed, except those in allowed.
func warnings(stderr string, allowed ...string) []string {
	var w []string
	for line := range strings.Lines(stderr) {
		if !strings.HasPrefix(line, "Warning:") {
			continue
		}
		if slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(line, a) }) {
			continue
		}
		w = append(w, strings.TrimSpace(line))
	}
	return w
}

func render(t *testing.T, dir string) []byte {
	t.Helper()
	return []byte(mustKubectlQuiet(t, "", "kustomize", dir))
}

func mustKubectlQuiet(t *testing.T, kc string, args ...string) string {
	t.Helper()
	out, stderr, err := kubectl(t, kc, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// ensureInstallNamespace creates the operator's namespace for real, from the rendered manifests
// (so it carries their Pod Security labels): server-side dry runs need it to exist.
func ensureInstallNamespace(t *testing.T, kc string) {
	t.Helper()
	for _, o := range testenv.DecodeManifests(t, render(t, "config/default")) {
		if o.GetKind() != "Namespace" {
			continue
		}
		if o.GetName() != installNamespace {
			t.Fatalf("config/default renders namespace %q, want %q", o.GetName(), installNamespace)
		}
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "namespace.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, kc, "apply", "-f", path)
		return
	}
	t.Fatal("config/default renders no Namespace")
}

// TestDefaultKustomizeDryRunServer sends `kubectl apply -k config/default` to the real API server
// as a server-side dry run: every object passes validation and admission (Pod Security included)
// without being stored.
func TestDefaultKustomizeDryRunServer(t *testing.T) {
	kc := controlPlane(t)
	ensureInstallNamespace(t, kc)
	out, stderr, err := kubectl(t, kc, "apply", "-k", "config/default", "--dry-run=server")
	t.Logf("kubectl apply -k config/default --dry-run=server:\n%s%s", out, stderr)
	if err != nil {
		t.Fatalf("kubectl apply -k config/default --dry-run=server: %v", err)
	}
	if w := warnings(stderr, lastApplied); len(w) > 0 {
		t.Errorf("the API server warned: %v", w)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/optimizationoperations.ops.routeopt.dev",
		"serviceaccount/routeopt-controller-manager",
		"clusterrole.rbac.authorization.k8s.io/routeopt-manager-role",
		"clusterrole.rbac.authorization.k8s.io/routeopt-metrics-auth-role",
		"clusterrole.rbac.authorization.k8s.io/routeopt-metrics-reader",
		"service/routeopt-controller-manager-metrics-service",
		"deployment.apps/routeopt-controller-manager",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run did not include %s", want)
		}
	}
}

// TestOverlaysDryRunServer sends every overlay in config/overlays, and with them the components
// they use, to the real API server as a server-side dry run, the way
// TestDefaultKustomizeDryRunServer does config/default. A new overlay is checked by being there.
func TestOverlaysDryRunServer(t *testing.T) {
	kc := controlPlane(t)
	ensureInstallNamespace(t, kc)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d overlays in config/overlays, want namespaced and sharded at least", len(files))
	}
	for _, f := range files {
		dir := filepath.ToSlash(filepath.Join("config", "overlays", filepath.Base(filepath.Dir(f))))
		t.Run(filepath.Base(dir), func(t *testing.T) {
			// The namespaces the overlay puts objects in without creating them must exist.
			objs := testenv.DecodeManifests(t, render(t, dir))
			created := map[string]bool{}
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					created[o.GetName()] = true
				}
			}
			var want []string
			for _, o := range objs {
				if ns := o.GetNamespace(); ns != "" && !created[ns] {
					if _, _, err := kubectl(t, kc, "get", "namespace", ns); err != nil {
						mustKubectl(t, kc, "create", "namespace", ns)
					}
				}
				want = append(want, strings.ToLower(o.GetKind())+"."+o.GroupVersionKind().Group+"/"+o.GetName())
			}
			out, stderr, err := kubectl(t, kc, "apply", "-k", dir, "--dry-run=server")
			t.Logf("kubectl apply -k %s --dry-run=server:\n%s%s", dir, out, stderr)
			if err != nil {
				t.Fatalf("kubectl apply -k %s --dry-run=server: %v", dir, err)
			}
			if w := warnings(stderr, lastApplied); len(w) > 0 {
				t.Errorf("the API server warned: %v", w)
			}
			for _, w := range want {
				// kubectl names core objects without a group: service/x, not service./x.
				if !strings.Contains(out, strings.Replace(w, "./", "/", 1)) {
					t.Errorf("the dry run did not include %s", w)
				}
			}
		})
	}
}

// TestManagerPodIsRestricted creates the manager's Pod, from the Deployment's template, as a
// server-side dry run in the namespace that enforces the restricted Pod Security level: a pod
// cannot run here, but admission decides as it would in a cluster.
func TestManagerPodIsRestricted(t *testing.T) {
	kc := controlPlane(t)
	ensureInstallNamespace(t, kc)
	dep := renderedDeployment(t)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: dep.Spec.Template.ObjectMeta,
		Spec:       dep.Spec.Template.Spec,
	}
	pod.Name, pod.Namespace = "manager-dry-run", installNamespace
	out, stderr, err := createDryRun(t, kc, pod)
	t.Logf("%s%s", out, stderr)
	if err != nil {
		t.Fatalf("the restricted namespace refused the manager's pod: %v\n%s", err, stderr)
	}
	if w := warnings(stderr); len(w) > 0 {
		t.Errorf("the API server warned: %v", w)
	}

	// The same pod without its security settings is refused: admission really checks.
	loose := pod.DeepCopy()
	loose.Spec.SecurityContext = nil
	loose.Spec.Containers[0].SecurityContext = nil
	if _, stderr, err := createDryRun(t, kc, loose); err == nil || !strings.Contains(stderr, "PodSecurity") {
		t.Errorf("a pod without securityContext was not refused by Pod Security admission: %v %s", err, stderr)
	}
}

func createDryRun(t *testing.T, kc string, obj any) (stdout, stderr string, err error) {
	t.Helper()
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "object.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectl(t, kc, "create", "-f", path, "--dry-run=server")
}

// TestInstaller applies dist/install.yaml (make build-installer) for real, twice, then checks what
// the manager's service account may do.
func TestInstaller(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "dist", "install.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `make build-installer` (make test runs it first)", err)
	}
	// The installer is the rendering of config/default, image aside.
	image := regexp.MustCompile(`(?m)^(\s*image:) .*$`)
	fresh := render(t, "config/default")
	if !bytes.Equal(image.ReplaceAll(data, []byte("$1 X")), image.ReplaceAll(fresh, []byte("$1 X"))) {
		t.Fatalf("%s is older than config/: run `make build-installer`", path)
	}

	kc := controlPlane(t)
	for i := range 2 {
		out, stderr, err := kubectl(t, kc, "apply", "-f", path)
		t.Logf("kubectl apply -f dist/install.yaml (%d):\n%s%s", i+1, out, stderr)
		if err != nil {
			t.Fatalf("kubectl apply -f dist/install.yaml: %v", err)
		}
		if w := warnings(stderr, lastApplied); len(w) > 0 {
			t.Errorf("the API server warned: %v", w)
		}
		if i == 1 && strings.Contains(out, " created") {
			t.Errorf("a second apply created objects again:\n%s", out)
		}
	}
	mustKubectl(t, kc, "get", "-f", path)

	// What the manager's service account may do: what it needs, and nothing broader.
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"list", "optimizationoperations.ops.routeopt.dev", "-A"}, "yes"},
		{[]string{"watch", "optimizationoperations.ops.routeopt.dev", "-A"}, "yes"},
		{[]string{"patch", "optimizationoperations.ops.routeopt.dev", "-n", "default"}, "yes"},
		{[]string{"patch", "optimizationoperations.ops.routeopt.dev", "--subresource=status", "-n", "default"}, "yes"},
		{[]string{"update", "optimizationoperations.ops.routeopt.dev", "--subresource=finalizers", "-n", "default"}, "no"},
		{[]string{"get", "optimizationoperations.ops.routeopt.dev", "--subresource=status", "-n", "default"}, "no"},
		{[]string{"delete", "optimizationoperations.ops.routeopt.dev", "-n", "default"}, "no"},
		{[]string{"get", "secrets", "-n", "default"}, "yes"},
		{[]string{"list", "secrets", "-n", "default"}, "no"},
		{[]string{"watch", "secrets", "-n", "default"}, "no"},
		{[]string{"create", "events.events.k8s.io", "-n", "default"}, "yes"},
		{[]string{"create", "leases.coordination.k8s.io", "-n", installNamespace}, "yes"},
		{[]string{"create", "tokenreviews.authentication.k8s.io"}, "yes"},
		{[]string{"create", "subjectaccessreviews.authorization.k8s.io"}, "yes"},
	}
	for _, tc := range cases {
		args := append([]string{"auth", "can-i"}, tc.args...)
		args = append(args, "--as", managerSA)
		out, _, _ := kubectl(t, kc, args...) // exits 1 on "no"
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("manager may %s: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}

// TestDeploymentHardening checks the manager Deployment that config/default renders.
func TestDeploymentHardening(t *testing.T) {
	dep := renderedDeployment(t)
	spec := dep.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/manager"}) {
		t.Errorf("command %v, want [/manager] (the Dockerfile's binary)", c.Command)
	}
	if c.Image != defaultImage {
		t.Errorf("image %q, want %q", c.Image, defaultImage)
	}
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--metrics-secure=f") }) {
		t.Errorf("args %v turn metrics authentication off", c.Args)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", p)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities %+v, want drop [ALL] and add none", sc.Capabilities)
	}
	if spec.ServiceAccountName != "routeopt-controller-manager" {
		t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		t.Error("the manager needs its service account token")
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != 8443 {
		t.Errorf("container ports %v, want metrics on 8443", ports)
	}
}

// TestGracePeriodOutlastsACall: a rollout stops the manager while a call may be in flight; the
// pod must live until the call's answer is stored, or a slow submit ends in SubmitUncertain.
func TestGracePeriodOutlastsACall(t *testing.T) {
	spec := renderedDeployment(t).Spec.Template.Spec
	timeout := controllers.DefaultRequestTimeout
	for _, a := range spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--request-timeout="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			timeout = d
		}
	}
	need := timeout + controllers.FinalWriteTimeout
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v, want at least %s (--request-timeout %s + the final status write %s)",
			g, need, timeout, controllers.FinalWriteTimeout)
	}
}

// TestDockerfile checks that the image the Dockerfile builds is what the Deployment runs.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:1\.26 AS builder$`),
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static:nonroot$`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/manager"\]$`),
		regexp.MustCompile(`CGO_ENABLED=0`),
		regexp.MustCompile(`(?m)go build .*-o manager \./cmd$`),
	} {
		if !want.MatchString(df) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}
	if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), "cmd", "main.go")); err != nil {
		t.Errorf("the Dockerfile builds ./cmd: %v", err)
	}
}

// TestSamples sends every sample and the Workload Identity overlay to the API server as a
// server-side dry run, and checks that the overlay annotates the operator's service account.
func TestSamples(t *testing.T) {
	kc := controlPlane(t)
	ensureInstallNamespace(t, kc)

	out := mustKubectl(t, kc, "apply", "-k", "config/samples", "-n", "default", "--dry-run=server")
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		n++
		for _, o := range testenv.DecodeManifests(t, mustRead(t, f)) {
			if o.GetKind() == "OptimizationOperation" && !strings.Contains(out, "optimizationoperation.ops.routeopt.dev/"+o.GetName()) {
				t.Errorf("config/samples/kustomization.yaml does not include %s", filepath.Base(f))
			}
		}
		if _, stderr, err := kubectl(t, kc, "create", "-f", f, "-n", "default", "--dry-run=server"); err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(f), err, stderr)
		}
	}
	if n < 7 {
		t.Errorf("want a sample for each use (track, cancel, deletionPolicy, secret, and a submit per method), found %d", n)
	}
	// The model in a ConfigMap with a content-hash name: kustomize must write the generated name
	// into spec.submit, or the resource would name a ConfigMap that does not exist.
	cmModel := mustKubectl(t, kc, "apply", "-k", "config/samples/configmap-model", "-n", "default", "--dry-run=server", "-o", "yaml")
	var cmName, ref string
	for _, o := range testenv.DecodeManifests(t, []byte(cmModel)) {
		for _, item := range append([]*unstructured.Unstructured{o}, itemsOf(t, o)...) {
			switch item.GetKind() {
			case "ConfigMap":
				cmName = item.GetName()
			case "OptimizationOperation":
				ref, _, _ = unstructured.NestedString(item.Object, "spec", "submit", "optimizeToursLongRunning", "configMapKeyRef", "name")
			}
		}
	}
	if !strings.HasPrefix(cmName, "morning-model-") || ref != cmName {
		t.Errorf("config/samples/configmap-model: ConfigMap %q, spec.submit names %q; want the generated name in both", cmName, ref)
	}

	wi := render(t, "config/samples/workload-identity")
	found := false
	for _, o := range testenv.DecodeManifests(t, wi) {
		if o.GetKind() == "ServiceAccount" && o.GetName() == "routeopt-controller-manager" {
			found = strings.HasSuffix(o.GetAnnotations()["iam.gke.io/gcp-service-account"], ".iam.gserviceaccount.com")
		}
	}
	if !found {
		t.Error("config/samples/workload-identity does not annotate routeopt-controller-manager with iam.gke.io/gcp-service-account")
	}
	mustKubectl(t, kc, "apply", "-k", "config/samples/workload-identity", "--dry-run=server")

	// The Grafana dashboard ConfigMap and the Argo CD settings patch are valid objects too.
	mustKubectl(t, kc, "apply", "-k", "config/grafana", "-n", "default", "--dry-run=server")
	mustKubectl(t, kc, "create", "-f", "config/argocd/argocd-cm.yaml", "-n", "default", "--dry-run=server")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func renderedDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	for _, o := range testenv.DecodeManifests(t, render(t, "config/default")) {
		if o.GetKind() != "Deployment" {
			continue
		}
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		dep := &appsv1.Deployment{}
		if err := yaml.UnmarshalStrict(data, dep); err != nil {
			t.Fatalf("Deployment: %v", err)
		}
		return dep
	}
	t.Fatal("config/default renders no Deployment")
	return nil
}

// itemsOf returns the items of a List (kubectl -o yaml prints several objects as one List).
func itemsOf(t *testing.T, o *unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	if !o.IsList() {
		return nil
	}
	list, err := o.ToList()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}
