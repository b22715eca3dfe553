package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// These tests check the CRD's schema and CEL rules for spec.submit on a real kube-apiserver, in
// the style of internal/testenv's tests for operationName and cancel.

const (
	namespace = "default"
	parent    = "projects/my-project/locations/global"
	trackName = "projects/p/locations/global/operations/123"
)

var (
	env *envtest.Environment
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if env, _, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	if err = opsv1.AddToScheme(scheme); err == nil {
		k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// object returns an unsaved OptimizationOperation with a generated name.
func object(spec opsv1.OptimizationOperationSpec) *opsv1.OptimizationOperation {
	return &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "submit-", Namespace: namespace},
		Spec:       spec,
	}
}

// createObject creates obj and deletes it when the test ends.
func createObject(t *testing.T, obj *opsv1.OptimizationOperation) error {
	t.Helper()
	err := k8s.Create(t.Context(), obj)
	if err == nil {
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
	return err
}

func mustCreate(t *testing.T, obj *opsv1.OptimizationOperation) *opsv1.OptimizationOperation {
	t.Helper()
	if err := createObject(t, obj); err != nil {
		t.Fatalf("create: %v", err)
	}
	return obj
}

func inline(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

const inlineRequest = `{"timeout":"60s","label":"nightly","model":{"vehicles":[{"label":"van-1","costPerHour":30}],"shipments":[{"label":"parcel-1","deliveries":[{}]}]}}`

// Valid submits, one per method and source.
func uriSubmit() *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: parent, OptimizeToursURI: &opsv1.OptimizeToursURIRequest{
		Input:  opsv1.CloudStorageFile{URI: "gs://my-bucket/in/model.json"},
		Output: opsv1.CloudStorageFile{URI: "gs://my-bucket/out/solution.txtpb"},
	}}
}

func batchSubmit() *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: "projects/my-project", BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{
		ModelConfigs: []opsv1.AsyncModelConfig{{
			DisplayName:  "monday",
			InputConfig:  opsv1.InputConfig{GCSSource: opsv1.CloudStorageObject{URI: "gs://in-bucket/monday.json"}, DataFormat: opsv1.DataFormatJSON},
			OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://out-bucket/monday/"}, DataFormat: opsv1.DataFormatProtoText},
		}},
	}}
}

func configMapSubmit() *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: "model-abc123", Key: "request.json"},
	}}
}

func inlineSubmit() *opsv1.SubmitSpec {
	return &opsv1.SubmitSpec{Parent: "projects/123456789012/locations/us-central1", OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		Inline: inline(inlineRequest),
	}}
}

// TestSubmitAcceptedForEachMethod: a valid object of each method is accepted and reads back as
// written, the inline request included (nothing in it is pruned).
func TestSubmitAcceptedForEachMethod(t *testing.T) {
	for name, submit := range map[string]*opsv1.SubmitSpec{
		"optimizeToursUri": uriSubmit(), "batchOptimizeTours": batchSubmit(),
		"optimizeToursLongRunning from a ConfigMap": configMapSubmit(),
		"optimizeToursLongRunning inline":           inlineSubmit(),
	} {
		t.Run(name, func(t *testing.T) {
			obj := mustCreate(t, object(opsv1.OptimizationOperationSpec{Submit: submit}))
			got := &opsv1.OptimizationOperation{}
			if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), got); err != nil {
				t.Fatal(err)
			}
			if got.Spec.OperationName != "" {
				t.Errorf("operationName = %q, want none", got.Spec.OperationName)
			}
			if submit.OptimizeToursLongRunning != nil && submit.OptimizeToursLongRunning.Inline != nil {
				if !jsonEqual(t, got.Spec.Submit.OptimizeToursLongRunning.Inline.Raw, []byte(inlineRequest)) {
					t.Errorf("inline = %s, want %s", got.Spec.Submit.OptimizeToursLongRunning.Inline.Raw, inlineRequest)
				}
				got.Spec.Submit.OptimizeToursLongRunning.Inline = submit.OptimizeToursLongRunning.Inline
			}
			if gb, wb := mustJSON(t, got.Spec.Submit), mustJSON(t, submit); gb != wb {
				t.Errorf("submit reads back as\n%s\nwant\n%s", gb, wb)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, x) == mustJSON(t, y)
}

// TestExactlyOneOfOperationNameAndSubmit: both and neither are refused with one message.
func TestExactlyOneOfOperationNameAndSubmit(t *testing.T) {
	cases := []struct {
		name string
		spec opsv1.OptimizationOperationSpec
	}{
		{"both", opsv1.OptimizationOperationSpec{OperationName: trackName, Submit: uriSubmit()}},
		{"neither", opsv1.OptimizationOperationSpec{}},
		{"neither, only cancel", opsv1.OptimizationOperationSpec{Cancel: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, createObject(t, object(tc.spec)), "set exactly one of spec.operationName")
		})
	}
	t.Run("operationName alone", func(t *testing.T) {
		mustCreate(t, object(opsv1.OptimizationOperationSpec{OperationName: trackName}))
	})
}

func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	t.Logf("-> %v", errOrAccepted(err))
	switch {
	case err == nil:
		t.Errorf("accepted, want a rejection mentioning %q", want)
	case !apierrors.IsInvalid(err):
		t.Errorf("failed with %v, want an Invalid error", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func errOrAccepted(err error) string {
	if err == nil {
		return "accepted"
	}
	return "rejected: " + err.Error()
}

// TestSubmitValidation: malformed parents, URIs, enums, sizes and method choices are refused at
// admission, each naming the field.
func TestSubmitValidation(t *testing.T) {
	type mod func(s *opsv1.SubmitSpec)
	uri := func(f mod) *opsv1.SubmitSpec { s := uriSubmit(); f(s); return s }
	batch := func(f mod) *opsv1.SubmitSpec { s := batchSubmit(); f(s); return s }
	cases := []struct {
		name   string
		submit *opsv1.SubmitSpec
		want   string // substring of the error
	}{
		{"parent empty", uri(func(s *opsv1.SubmitSpec) { s.Parent = "" }), "spec.submit.parent"},
		{"parent without projects/", uri(func(s *opsv1.SubmitSpec) { s.Parent = "my-project" }), "spec.submit.parent"},
		{"parent project id too short", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/abcde" }), "spec.submit.parent"},
		{"parent project id too long", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/a" + strings.Repeat("b", 30) }), "spec.submit.parent"},
		{"parent project id upper case", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/My-Project" }), "spec.submit.parent"},
		{"parent project id ends with hyphen", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/my-project-" }), "spec.submit.parent"},
		{"parent project id starts with a digit", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/1my-project" }), "spec.submit.parent"},
		{"parent domain-scoped", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/example.com:my-project" }), "spec.submit.parent"},
		{"parent with an operation", uri(func(s *opsv1.SubmitSpec) { s.Parent = parent + "/operations/1" }), "spec.submit.parent"},
		{"parent empty location", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/my-project/locations/" }), "spec.submit.parent"},
		{"parent trailing slash", uri(func(s *opsv1.SubmitSpec) { s.Parent = "projects/my-project/" }), "spec.submit.parent"},
		{"input not gs://", uri(func(s *opsv1.SubmitSpec) {
			s.OptimizeToursURI.Input.URI = "https://storage.googleapis.com/b/model.json"
		}), "spec.submit.optimizeToursUri.input.uri"},
		{"input without object", uri(func(s *opsv1.SubmitSpec) { s.OptimizeToursURI.Input.URI = "gs://my-bucket/" }), "spec.submit.optimizeToursUri.input.uri"},
		{"input bucket upper case", uri(func(s *opsv1.SubmitSpec) { s.OptimizeToursURI.Input.URI = "gs://My-Bucket/model.json" }), "spec.submit.optimizeToursUri.input.uri"},
		{"input with a newline", uri(func(s *opsv1.SubmitSpec) { s.OptimizeToursURI.Input.URI = "gs://my-bucket/a\nb.json" }), "spec.submit.optimizeToursUri.input.uri"},
		{"output extension", uri(func(s *opsv1.SubmitSpec) { s.OptimizeToursURI.Output.URI = "gs://my-bucket/out/solution.csv" }), "must end in .json or .txtpb"},
		{"output missing", uri(func(s *opsv1.SubmitSpec) { s.OptimizeToursURI.Output.URI = "" }), "spec.submit.optimizeToursUri.output.uri"},
		{"batch no model configs", batch(func(s *opsv1.SubmitSpec) { s.BatchOptimizeTours.ModelConfigs = nil }), "spec.submit.batchOptimizeTours.modelConfigs"},
		{"batch 101 model configs", batch(func(s *opsv1.SubmitSpec) {
			for len(s.BatchOptimizeTours.ModelConfigs) < 101 {
				s.BatchOptimizeTours.ModelConfigs = append(s.BatchOptimizeTours.ModelConfigs, s.BatchOptimizeTours.ModelConfigs[0])
			}
		}), "spec.submit.batchOptimizeTours.modelConfigs"},
		{"batch bad input format", batch(func(s *opsv1.SubmitSpec) { s.BatchOptimizeTours.ModelConfigs[0].InputConfig.DataFormat = "CSV" }), "spec.submit.batchOptimizeTours.modelConfigs[0].inputConfig.dataFormat"},
		{"batch unspecified output format", batch(func(s *opsv1.SubmitSpec) {
			s.BatchOptimizeTours.ModelConfigs[0].OutputConfig.DataFormat = "DATA_FORMAT_UNSPECIFIED"
		}), "spec.submit.batchOptimizeTours.modelConfigs[0].outputConfig.dataFormat"},
		{"batch missing format", batch(func(s *opsv1.SubmitSpec) { s.BatchOptimizeTours.ModelConfigs[0].OutputConfig.DataFormat = "" }), "dataFormat"},
		{"batch source not gs://", batch(func(s *opsv1.SubmitSpec) {
			s.BatchOptimizeTours.ModelConfigs[0].InputConfig.GCSSource.URI = "/data/model.json"
		}), "spec.submit.batchOptimizeTours.modelConfigs[0].inputConfig.gcsSource.uri"},
		{"batch display name too long", batch(func(s *opsv1.SubmitSpec) { s.BatchOptimizeTours.ModelConfigs[0].DisplayName = strings.Repeat("x", 257) }), "displayName"},
		{"no method", &opsv1.SubmitSpec{Parent: parent}, "set exactly one method in spec.submit"},
		{"two methods", uri(func(s *opsv1.SubmitSpec) { s.BatchOptimizeTours = batchSubmit().BatchOptimizeTours }), "set exactly one method in spec.submit"},
		{"long-running with both sources", &opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
			ConfigMapKeyRef: configMapSubmit().OptimizeToursLongRunning.ConfigMapKeyRef, Inline: inline(inlineRequest)}}, "spec.submit.optimizeToursLongRunning"},
		{"long-running with no source", &opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{}}, "spec.submit.optimizeToursLongRunning"},
		{"ConfigMap without key", &opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
			ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: "model"}}}, "spec.submit.optimizeToursLongRunning.configMapKeyRef.key"},
		{"ConfigMap bad name", &opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
			ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: "Model_1", Key: "k"}}}, "spec.submit.optimizeToursLongRunning.configMapKeyRef.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, createObject(t, object(opsv1.OptimizationOperationSpec{Submit: tc.submit})), tc.want)
		})
	}
	for _, p := range []string{"projects/my-project", "projects/abcdef", "projects/a" + strings.Repeat("b", 29),
		"projects/42", "projects/my-project/locations/us-central1", "projects/my-project/locations/global"} {
		t.Run("parent "+p, func(t *testing.T) {
			s := uriSubmit()
			s.Parent = p
			mustCreate(t, object(opsv1.OptimizationOperationSpec{Submit: s}))
		})
	}
}

// TestSubmitTransitions: operationName and submit cannot be changed, added or removed, and the
// inline request cannot change either, however deep the change is.
func TestSubmitTransitions(t *testing.T) {
	cases := []struct {
		name      string
		start     opsv1.OptimizationOperationSpec
		patchType types.PatchType
		patch     string
		want      string // substring of the error; empty means accepted
	}{
		{"submit unchanged", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"parent":"` + parent + `"}}}`, ""},
		{"cancel on a submit", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"cancel":true,"deletionPolicy":"Cancel"}}`, ""},
		{"parent changed", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"parent":"projects/other-project"}}}`, "submit is immutable: the request may already have been sent"},
		{"uri changed", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursUri":{"input":{"uri":"gs://my-bucket/in/other.json"}}}}}`, "submit is immutable"},
		{"method switched", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.JSONPatchType,
			`[{"op":"remove","path":"/spec/submit/optimizeToursUri"},{"op":"add","path":"/spec/submit/optimizeToursLongRunning","value":{"inline":{}}}]`, "submit is immutable"},
		{"batch display name changed", opsv1.OptimizationOperationSpec{Submit: batchSubmit()}, types.JSONPatchType,
			`[{"op":"replace","path":"/spec/submit/batchOptimizeTours/modelConfigs/0/displayName","value":"tuesday"}]`, "submit is immutable"},
		{"ConfigMap key changed", opsv1.OptimizationOperationSpec{Submit: configMapSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursLongRunning":{"configMapKeyRef":{"key":"other.json"}}}}}`, "submit is immutable"},
		{"inline unchanged", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursLongRunning":{"inline":{"timeout":"60s"}}}}}`, ""},
		{"inline value changed", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursLongRunning":{"inline":{"timeout":"61s"}}}}}`, "submit is immutable"},
		{"inline deep value changed", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.JSONPatchType,
			`[{"op":"replace","path":"/spec/submit/optimizeToursLongRunning/inline/model/vehicles/0/costPerHour","value":31}]`, "submit is immutable"},
		{"inline key renamed", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.JSONPatchType,
			`[{"op":"move","from":"/spec/submit/optimizeToursLongRunning/inline/label","path":"/spec/submit/optimizeToursLongRunning/inline/searchMode"}]`, "submit is immutable"},
		{"inline key added", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursLongRunning":{"inline":{"solvingMode":"VALIDATE_ONLY"}}}}}`, "submit is immutable"},
		{"inline replaced by a ConfigMap", opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}, types.MergePatchType,
			`{"spec":{"submit":{"optimizeToursLongRunning":{"inline":null,"configMapKeyRef":{"name":"m","key":"k"}}}}}`, "submit is immutable"},
		{"submit removed for an operationName", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"submit":null,"operationName":"` + trackName + `"}}`, "submit is immutable: it cannot be added or removed"},
		{"operationName added to a submit", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"operationName":"` + trackName + `"}}`, "set exactly one of spec.operationName"},
		{"submit removed", opsv1.OptimizationOperationSpec{Submit: uriSubmit()}, types.MergePatchType,
			`{"spec":{"submit":null}}`, "set exactly one of spec.operationName"},
		{"operationName replaced by a submit", opsv1.OptimizationOperationSpec{OperationName: trackName}, types.MergePatchType,
			`{"spec":{"operationName":null,"submit":` + mustJSON(t, uriSubmit()) + `}}`, "operationName is immutable: it cannot be added or removed"},
		{"submit added to an operationName", opsv1.OptimizationOperationSpec{OperationName: trackName}, types.MergePatchType,
			`{"spec":{"submit":` + mustJSON(t, uriSubmit()) + `}}`, "set exactly one of spec.operationName"},
		{"operationName changed", opsv1.OptimizationOperationSpec{OperationName: trackName}, types.MergePatchType,
			`{"spec":{"operationName":"operations/other"}}`, "operationName is immutable: create a new OptimizationOperation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := mustCreate(t, object(tc.start))
			err := k8s.Patch(t.Context(), obj, client.RawPatch(tc.patchType, []byte(tc.patch)))
			if tc.want == "" {
				if err != nil {
					t.Errorf("patch %s rejected: %v", tc.patch, err)
				}
				return
			}
			wantInvalid(t, err, tc.want)
		})
	}
}

// TestSubmitStatus: the status subresource takes the new fields, including the NotSubmitted
// cancel outcome, and validates the hash.
func TestSubmitStatus(t *testing.T) {
	obj := mustCreate(t, object(opsv1.OptimizationOperationSpec{Submit: inlineSubmit()}))
	now := metav1.NewTime(time.Date(2026, 5, 4, 10, 11, 12, 0, time.UTC))
	obj.Status = opsv1.OptimizationOperationStatus{
		OperationName: "projects/123456789012/locations/us-central1/operations/42",
		Submit: &opsv1.SubmitStatus{AttemptedAt: &now, RequestHash: strings.Repeat("ab", 32), Attempts: 1,
			Outcome: opsv1.SubmitSubmitted, SubmittedAt: &now},
		Cancel: &opsv1.CancelStatus{Outcome: opsv1.CancelNotSubmitted, Message: "nothing was sent"},
	}
	if err := k8s.Status().Update(t.Context(), obj); err != nil {
		t.Fatalf("status update: %v", err)
	}
	got := &opsv1.OptimizationOperation{}
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.OperationName != obj.Status.OperationName || got.Status.Submit == nil ||
		!got.Status.Submit.AttemptedAt.Equal(&now) || got.Status.Submit.Outcome != opsv1.SubmitSubmitted {
		t.Errorf("status reads back as %+v", got.Status)
	}
	got.Status.Submit.RequestHash = "not-a-hash"
	wantInvalid(t, k8s.Status().Update(t.Context(), got), "status.submit.requestHash")
}

// TestKubectlExplainAndWideColumn: kubectl explain documents spec.submit for users, and
// kubectl get -o wide shows the operation name from status.
func TestKubectlExplainAndWideColumn(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := testenv.Kubeconfig(env, kc); err != nil {
		t.Fatal(err)
	}
	// The apiserver publishes a new CRD's OpenAPI a moment after it is established.
	var out, stderr string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, stderr, err = testenv.Kubectl(t, kc, "explain", "optop.spec.submit")
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, stderr)
	}
	t.Logf("kubectl explain optop.spec.submit:\n%s", out)
	for _, want := range []string{"submit is the request that starts the solve", "ops.routeopt.dev/resubmit",
		"parent", "optimizeToursUri", "batchOptimizeTours", "optimizeToursLongRunning"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain optop.spec.submit lacks %q", want)
		}
	}
	out, stderr, err = testenv.Kubectl(t, kc, "explain", "optop.spec.submit.optimizeToursLongRunning.inline")
	if err != nil || !strings.Contains(out, "64 KiB") {
		t.Errorf("kubectl explain ...inline: %v\n%s%s", err, out, stderr)
	}

	obj := mustCreate(t, object(opsv1.OptimizationOperationSpec{Submit: uriSubmit()}))
	obj.Status.OperationName = "projects/my-project/locations/global/operations/777"
	if err := k8s.Status().Update(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = testenv.Kubectl(t, kc, "get", "optop", "-n", namespace, obj.Name, "-o", "wide")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, stderr)
	}
	t.Logf("kubectl get -o wide:\n%s", out)
	for _, want := range []string{"DONE", "STATE", "CANCEL", "AGE", "OPERATION", obj.Status.OperationName} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get -o wide lacks %q", want)
		}
	}
}
