package testenv_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	opsv1alpha1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

const (
	crdName   = "optimizationoperations.ops.routeopt.dev"
	namespace = "default"
	validName = "projects/p/locations/global/operations/123"
)

var nonDNS = regexp.MustCompile(`[^a-z0-9]+`)

var (
	env *envtest.Environment
	cfg *rest.Config
	k8s client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	started := time.Now()
	env, cfg, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping test control plane:", err)
		}
	}()
	fmt.Printf("test control plane started in %s at %s\n", time.Since(started).Round(time.Millisecond), cfg.Host)

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, opsv1alpha1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// newOp returns an unsaved OptimizationOperation with a name unique to the test.
func newOp(t *testing.T, operationName string) *opsv1alpha1.OptimizationOperation {
	t.Helper()
	// A DNS-1123 prefix from the test name: lower case, runs of other characters become '-'.
	name := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	return &opsv1alpha1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: namespace},
		Spec:       opsv1alpha1.OptimizationOperationSpec{OperationName: operationName},
	}
}

func create(t *testing.T, op *opsv1alpha1.OptimizationOperation) *opsv1alpha1.OptimizationOperation {
	t.Helper()
	if err := k8s.Create(ctx(t), op); err != nil {
		t.Fatalf("create %q: %v", op.Spec.OperationName, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), op) })
	return op
}

func get(t *testing.T, op *opsv1alpha1.OptimizationOperation) *opsv1alpha1.OptimizationOperation {
	t.Helper()
	got := &opsv1alpha1.OptimizationOperation{}
	if err := k8s.Get(ctx(t), client.ObjectKeyFromObject(op), got); err != nil {
		t.Fatalf("get %s: %v", op.Name, err)
	}
	return got
}

func TestAPIServerVersion(t *testing.T) {
	versions, err := testenv.PinnedVersions()
	if err != nil {
		t.Fatal(err)
	}
	pinned := versions["KUBERNETES_VERSION"] // e.g. 1.37.2
	parts := strings.SplitN(pinned, ".", 3)
	if len(parts) != 3 {
		t.Fatalf("KUBERNETES_VERSION %q in hack/versions.env is not major.minor.patch", pinned)
	}

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	t.Logf("kube-apiserver /version: gitVersion=%s major=%s minor=%s goVersion=%s platform=%s",
		info.GitVersion, info.Major, info.Minor, info.GoVersion, info.Platform)
	if info.Major != "1" || info.Minor != "37" {
		t.Errorf("/version reports major %q minor %q, want major \"1\" minor \"37\"", info.Major, info.Minor)
	}
	if info.Major != parts[0] || info.Minor != parts[1] || info.GitVersion != "v"+pinned {
		t.Errorf("/version reports %s (major %q minor %q), hack/versions.env pins %s",
			info.GitVersion, info.Major, info.Minor, pinned)
	}
}

func TestCRDEstablished(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(ctx(t), types.NamespacedName{Name: crdName}, crd); err != nil {
		t.Fatalf("get CRD %s: %v", crdName, err)
	}
	for _, want := range []apiextensionsv1.CustomResourceDefinitionConditionType{
		apiextensionsv1.Established, apiextensionsv1.NamesAccepted,
	} {
		found := false
		for _, c := range crd.Status.Conditions {
			if c.Type == want {
				found = true
				if c.Status != apiextensionsv1.ConditionTrue {
					t.Errorf("CRD condition %s is %s: %s", c.Type, c.Status, c.Message)
				}
			}
		}
		if !found {
			t.Errorf("CRD has no %s condition", want)
		}
	}
	if got := crd.Spec.Names.Kind; got != "OptimizationOperation" {
		t.Errorf("CRD kind %q", got)
	}
	served := false
	for _, v := range crd.Spec.Versions {
		if v.Name == opsv1alpha1.GroupVersion.Version && v.Served && v.Storage {
			served = true
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("version %s has no status subresource", v.Name)
			}
		}
	}
	if !served {
		t.Errorf("CRD does not serve and store %s", opsv1alpha1.GroupVersion.Version)
	}
}

func TestRoundTrip(t *testing.T) {
	op := newOp(t, validName)
	op.Spec.PollInterval = opsv1alpha1.DurationOf(45 * time.Second)
	op.Spec.CredentialsSecretRef = &opsv1alpha1.SecretKeySelector{Name: "sa-key"}
	create(t, op)

	got := get(t, op)
	if got.Spec.OperationName != validName {
		t.Errorf("operationName %q, want %q", got.Spec.OperationName, validName)
	}
	if got.Spec.PollInterval == nil || *got.Spec.PollInterval != "45s" {
		t.Errorf("pollInterval %v, want 45s", got.Spec.PollInterval)
	}
	// Defaults from the CRD schema.
	if got.Spec.DeletionPolicy != opsv1alpha1.DeletionPolicyOrphan {
		t.Errorf("deletionPolicy defaulted to %q, want Orphan", got.Spec.DeletionPolicy)
	}
	if got.Spec.Cancel {
		t.Error("cancel defaulted to true")
	}
	if got.Spec.CredentialsSecretRef == nil || got.Spec.CredentialsSecretRef.Key != "key.json" {
		t.Errorf("credentialsSecretRef %+v, want key defaulted to key.json", got.Spec.CredentialsSecretRef)
	}
	if got.Generation != 1 {
		t.Errorf("generation %d, want 1", got.Generation)
	}

	list := &opsv1alpha1.OptimizationOperationList{}
	if err := k8s.List(ctx(t), list, client.InNamespace(namespace)); err != nil {
		t.Fatalf("list: %v", err)
	}
	found := false
	for _, item := range list.Items {
		found = found || item.Name == op.Name
	}
	if !found {
		t.Errorf("list does not contain %s", op.Name)
	}
}

func TestStatusSubresourceIsSeparateFromSpec(t *testing.T) {
	op := create(t, newOp(t, validName))

	// A status update carries a changed spec; only the status may change.
	withStatus := get(t, op)
	withStatus.Spec.Cancel = true
	withStatus.Status.Done = true
	withStatus.Status.ObservedGeneration = withStatus.Generation
	if err := k8s.Status().Update(ctx(t), withStatus); err != nil {
		t.Fatalf("status update: %v", err)
	}
	got := get(t, op)
	if got.Spec.Cancel {
		t.Error("a status update changed spec.cancel")
	}
	if !got.Status.Done {
		t.Error("a status update did not set status.done")
	}
	if got.Generation != 1 {
		t.Errorf("a status update moved generation to %d", got.Generation)
	}

	// A spec update carries a changed status; only the spec may change.
	withSpec := got.DeepCopy()
	withSpec.Spec.Cancel = true
	withSpec.Status.Done = false
	withSpec.Status.ObservedGeneration = 42
	if err := k8s.Update(ctx(t), withSpec); err != nil {
		t.Fatalf("spec update: %v", err)
	}
	got = get(t, op)
	if !got.Spec.Cancel {
		t.Error("a spec update did not set spec.cancel")
	}
	if !got.Status.Done || got.Status.ObservedGeneration != 1 {
		t.Errorf("a spec update changed status to %+v", got.Status)
	}
	if got.Generation != 2 {
		t.Errorf("generation %d after a spec change, want 2", got.Generation)
	}
}

// TestCancelAndNameTransitions checks the CRD's CEL transition rules on the real apiserver.
// TestStatusDoneIsAlwaysSerialized checks that status.done reads false, not absent, once any
// status is written, even by a merge patch that carries no done (the operator writes only what
// changed): the Done column shows false rather than a blank, and
// kubectl wait --for=jsonpath='{.status.done}'=true compares a value that exists.
func TestStatusDoneIsAlwaysSerialized(t *testing.T) {
	op := create(t, newOp(t, validName))
	raw := func() map[string]any {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(opsv1alpha1.GroupVersion.WithKind("OptimizationOperation"))
		if err := k8s.Get(ctx(t), client.ObjectKeyFromObject(op), u); err != nil {
			t.Fatalf("get %s: %v", op.Name, err)
		}
		return u.Object
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(raw(), "status", "done"); found {
		t.Error("status.done is set before any status was written")
	}
	patch := []byte(`{"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"False","reason":"Pending","message":"m","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}`)
	if err := k8s.Status().Patch(ctx(t), op, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("status patch: %v", err)
	}
	done, found, err := unstructured.NestedFieldNoCopy(raw(), "status", "done")
	if err != nil || !found || done != false {
		t.Errorf("after a status write, status.done = %v (found %v, %v), want false", done, found, err)
	}
}

func TestCancelAndNameTransitions(t *testing.T) {
	cases := []struct {
		name        string
		startCancel bool
		patchType   types.PatchType
		patch       string
		wantReject  string // substring of the error; empty means the patch must be accepted
	}{
		{"cancel false to true", false, types.MergePatchType, `{"spec":{"cancel":true}}`, ""},
		{"cancel true to true", true, types.MergePatchType, `{"spec":{"cancel":true}}`, ""},
		{"cancel true to false", true, types.MergePatchType, `{"spec":{"cancel":false}}`, "one-way latch"},
		{"cancel true removed (merge patch null)", true, types.MergePatchType, `{"spec":{"cancel":null}}`, "one-way latch"},
		{"cancel true removed (JSON patch remove)", true, types.JSONPatchType, `[{"op":"remove","path":"/spec/cancel"}]`, "one-way latch"},
		{"operationName changed", false, types.MergePatchType, `{"spec":{"operationName":"operations/other"}}`, "immutable"},
		{"operationName unchanged", false, types.MergePatchType, `{"spec":{"operationName":"` + validName + `"}}`, ""},
		{"deletionPolicy changed", true, types.MergePatchType, `{"spec":{"deletionPolicy":"Cancel"}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := newOp(t, validName)
			op.Spec.Cancel = tc.startCancel
			create(t, op)
			err := k8s.Patch(ctx(t), op, client.RawPatch(tc.patchType, []byte(tc.patch)))
			t.Logf("cancel=%v, %s patch %s -> %v", tc.startCancel, tc.patchType, tc.patch, errOrAccepted(err))
			switch {
			case tc.wantReject == "" && err != nil:
				t.Errorf("patch rejected: %v", err)
			case tc.wantReject != "" && err == nil:
				t.Errorf("patch accepted, want rejection mentioning %q; object now %+v", tc.wantReject, get(t, op).Spec)
			case tc.wantReject != "" && !apierrors.IsInvalid(err):
				t.Errorf("patch failed with %v, want an Invalid error", err)
			case tc.wantReject != "" && !strings.Contains(err.Error(), tc.wantReject):
				t.Errorf("error %q does not mention %q", err, tc.wantReject)
			}
		})
	}
}

// TestOperationNameValidation creates objects with well-formed and malformed operation names.
func TestOperationNameValidation(t *testing.T) {
	cases := []struct {
		operationName string
		valid         bool
	}{
		{"projects/p/locations/global/operations/123", true},
		{"projects/my-project/locations/us-central1/operations/abc_DEF.1~2", true},
		{"operations/abc", true},
		{"operations/abc/def", true},
		{"", false},
		{"foo", false},
		{"operations", false},
		{"operations/", false},
		{"projects//locations/x/operations/y", false},
		{"projects/p/locations//operations/y", false},
		{"projects/p/locations/x/operations/", false},
		{"projects/p/locations/x/operations/a?b", false},
		{"projects/p/locations/x/operations/a#b", false},
		{"operations/abc?alt=json", false},
		{"operations/abc#frag", false},
		{"projects/p/locations/x/operations/a..b", false},
		{"operations/a/../b", false},
		{"operations/a..b", false},
		{"projects/p/locations/x/operations/y/", false},
		{"/projects/p/locations/x/operations/y", false},
		{"projects/p/operations/y", false},
		{"https://example.com/v1/operations/y", false},
		{"operations/a b", false},
		{"operations/" + strings.Repeat("a", 600), false},
	}
	for _, tc := range cases {
		label := tc.operationName
		if len(label) > 60 {
			label = fmt.Sprintf("%s...(%d chars)", label[:30], len(label))
		}
		t.Run(fmt.Sprintf("%q", label), func(t *testing.T) {
			op := newOp(t, tc.operationName)
			err := k8s.Create(ctx(t), op)
			if err == nil {
				t.Cleanup(func() { _ = k8s.Delete(context.Background(), op) })
			}
			t.Logf("operationName %q (want valid=%v) -> %v", label, tc.valid, errOrAccepted(err))
			switch {
			case tc.valid && err != nil:
				t.Errorf("rejected: %v", err)
			case !tc.valid && err == nil:
				t.Errorf("accepted a malformed operation name")
			case !tc.valid && !apierrors.IsInvalid(err):
				t.Errorf("failed with %v, want an Invalid error", err)
			case !tc.valid && !strings.Contains(err.Error(), "spec.operationName"):
				t.Errorf("error does not point at spec.operationName: %v", err)
			}
		})
	}
}

// TestSample creates the sample manifest of config/samples on the apiserver.
func TestSample(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "config", "samples", "ops_v1alpha1_optimizationoperation.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	op := &opsv1alpha1.OptimizationOperation{}
	if err := utilyaml.Unmarshal(data, op); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if op.APIVersion != opsv1alpha1.GroupVersion.String() || op.Kind != "OptimizationOperation" {
		t.Errorf("%s has apiVersion %q kind %q", path, op.APIVersion, op.Kind)
	}
	op.Namespace = namespace
	create(t, op)
	t.Logf("created %s/%s from %s", op.Namespace, op.Name, path)
}

// TestKubeconfig drives the written kubeconfig with client-go and, when installed, kubectl.
func TestKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := testenv.Kubeconfig(env, path); err != nil {
		t.Fatal(err)
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.ServerVersion(); err != nil {
		t.Fatalf("GET /version with the written kubeconfig: %v", err)
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("kubectl not on PATH; checked the kubeconfig with client-go only")
		return
	}
	op := create(t, newOp(t, "operations/kubectl"))
	cmd := exec.CommandContext(ctx(t), kubectl, "--kubeconfig", path, "get", "optimizationoperations",
		"-n", namespace, op.Name, "-o", "jsonpath={.spec.operationName}")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if string(out) != "operations/kubectl" {
		t.Errorf("kubectl printed %q", out)
	}
	t.Logf("%s -> %s", strings.Join(cmd.Args[3:], " "), out)
}

func errOrAccepted(err error) string {
	if err == nil {
		return "accepted"
	}
	return "rejected: " + err.Error()
}
