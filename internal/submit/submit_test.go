package submit_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

const (
	namespace = "team-a"
	parent    = "projects/my-project/locations/global"
)

func withSubmit(s *opsv1.SubmitSpec) *opsv1.OptimizationOperation {
	return &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: namespace},
		Spec:       opsv1.OptimizationOperationSpec{Submit: s},
	}
}

func inlineOp(body string) *opsv1.OptimizationOperation {
	return withSubmit(&opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		Inline: &apiextensionsv1.JSON{Raw: []byte(body)}}})
}

func configMapOp(name, key string) *opsv1.OptimizationOperation {
	return withSubmit(&opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
		ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: name, Key: key}}})
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Data: data}
}

// model is an OptimizeToursRequest in JSON as the REST reference writes it.
const model = `{
  "timeout": "60s",
  "label": "nightly",
  "solvingMode": "DEFAULT_SOLVE",
  "searchMode": "RETURN_FAST",
  "allowLargeDeadlineDespiteInterruptionRisk": true,
  "model": {
    "globalStartTime": "2026-05-04T08:00:00Z",
    "vehicles": [{"label": "van-1", "costPerHour": 30, "startLocation": {"latitude": 48.85, "longitude": 2.35}}],
    "shipments": [
      {"label": "parcel-1", "deliveries": [{"arrivalLocation": {"latitude": 48.86, "longitude": 2.34}, "duration": "300s"}]},
      {"label": "parcel-2", "deliveries": [{"arrivalLocation": {"latitude": 48.87, "longitude": 2.33}}], "allowedVehicleIndices": [0]}
    ]
  }
}`

// wantModel is model as a message.
func wantModel() *rpb.OptimizeToursRequest {
	return &rpb.OptimizeToursRequest{
		Parent: parent, Timeout: durationpb.New(time.Minute), Label: "nightly",
		SolvingMode: rpb.OptimizeToursRequest_DEFAULT_SOLVE, SearchMode: rpb.OptimizeToursRequest_RETURN_FAST,
		AllowLargeDeadlineDespiteInterruptionRisk: true,
	}
}

// TestBuildEachMethod: each method gives the real request message with parent from the spec.
func TestBuildEachMethod(t *testing.T) {
	tests := []struct {
		name   string
		obj    *opsv1.OptimizationOperation
		cm     *corev1.ConfigMap
		method string
		check  func(t *testing.T, m proto.Message)
	}{
		{"optimizeToursUri", withSubmit(&opsv1.SubmitSpec{Parent: "projects/my-project", OptimizeToursURI: &opsv1.OptimizeToursURIRequest{
			Input: opsv1.CloudStorageFile{URI: "gs://b/in.json"}, Output: opsv1.CloudStorageFile{URI: "gs://b/out.txtpb"}}}), nil,
			submit.MethodOptimizeToursURI, func(t *testing.T, m proto.Message) {
				want := &rpb.OptimizeToursUriRequest{Parent: "projects/my-project", Input: &rpb.Uri{Uri: "gs://b/in.json"}, Output: &rpb.Uri{Uri: "gs://b/out.txtpb"}}
				if !proto.Equal(m, want) {
					t.Errorf("request = %v, want %v", m, want)
				}
			}},
		{"batchOptimizeTours", withSubmit(&opsv1.SubmitSpec{Parent: parent, BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{
			ModelConfigs: []opsv1.AsyncModelConfig{
				{DisplayName: "mon", InputConfig: opsv1.InputConfig{GCSSource: opsv1.CloudStorageObject{URI: "gs://in/mon.json"}, DataFormat: opsv1.DataFormatJSON},
					OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://out/mon/"}, DataFormat: opsv1.DataFormatProtoText}},
				{InputConfig: opsv1.InputConfig{GCSSource: opsv1.CloudStorageObject{URI: "gs://in/tue.txtpb"}, DataFormat: opsv1.DataFormatProtoText},
					OutputConfig: opsv1.OutputConfig{GCSDestination: opsv1.CloudStorageObject{URI: "gs://out/tue/"}, DataFormat: opsv1.DataFormatJSON}},
			}}}), nil,
			submit.MethodBatchOptimizeTours, func(t *testing.T, m proto.Message) {
				req := m.(*rpb.BatchOptimizeToursRequest)
				if req.GetParent() != parent || len(req.GetModelConfigs()) != 2 {
					t.Fatalf("request = %v", req)
				}
				c := req.GetModelConfigs()[0]
				if c.GetDisplayName() != "mon" || c.GetInputConfig().GetGcsSource().GetUri() != "gs://in/mon.json" ||
					c.GetInputConfig().GetDataFormat() != rpb.DataFormat_JSON ||
					c.GetOutputConfig().GetGcsDestination().GetUri() != "gs://out/mon/" ||
					c.GetOutputConfig().GetDataFormat() != rpb.DataFormat_PROTO_TEXT {
					t.Errorf("model config 0 = %v", c)
				}
				if f := req.GetModelConfigs()[1].GetInputConfig().GetDataFormat(); f != rpb.DataFormat_PROTO_TEXT {
					t.Errorf("model config 1 input format = %v", f)
				}
			}},
		{"optimizeToursLongRunning inline", inlineOp(model), nil, submit.MethodOptimizeToursLongRunning, checkModel},
		{"optimizeToursLongRunning from a ConfigMap", configMapOp("model", "request.json"),
			configMap("model", map[string]string{"request.json": model, "other": "{}"}), submit.MethodOptimizeToursLongRunning, checkModel},
		{"optimizeToursLongRunning from binaryData", configMapOp("model", "request.json"),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "model", Namespace: namespace}, BinaryData: map[string][]byte{"request.json": []byte(model)}},
			submit.MethodOptimizeToursLongRunning, checkModel},
		{"snake_case names and the same parent", inlineOp(`{"parent":"` + parent + `","solving_mode":"VALIDATE_ONLY","model":{}}`), nil,
			submit.MethodOptimizeToursLongRunning, func(t *testing.T, m proto.Message) {
				req := m.(*rpb.OptimizeToursRequest)
				if req.GetSolvingMode() != rpb.OptimizeToursRequest_VALIDATE_ONLY || req.GetParent() != parent {
					t.Errorf("request = %v", req)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := submit.Build(tc.obj, tc.cm)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if req.Method != tc.method {
				t.Errorf("method = %s, want %s", req.Method, tc.method)
			}
			if h, _ := submit.Hash(req.Message); req.Hash != h || len(h) != 64 {
				t.Errorf("hash = %q, want Hash(message) = %q", req.Hash, h)
			}
			tc.check(t, req.Message)
		})
	}
}

func checkModel(t *testing.T, m proto.Message) {
	t.Helper()
	req, ok := m.(*rpb.OptimizeToursRequest)
	if !ok {
		t.Fatalf("message is %T", m)
	}
	want := wantModel()
	got := proto.Clone(req).(*rpb.OptimizeToursRequest)
	got.Model = nil
	if !proto.Equal(got, want) {
		t.Errorf("request without model = %v, want %v", got, want)
	}
	if n := len(req.GetModel().GetShipments()); n != 2 || req.GetModel().GetShipments()[0].GetDeliveries()[0].GetDuration().AsDuration() != 5*time.Minute {
		t.Errorf("model = %v", req.GetModel())
	}
}

// TestBuildInvalidRequest: each way a request can be wrong is an *InvalidRequestError that
// names where it is and, inside a JSON request, the field's path.
func TestBuildInvalidRequest(t *testing.T) {
	const inlineSource = "spec.submit.optimizeToursLongRunning.inline"
	tests := []struct {
		name          string
		obj           *opsv1.OptimizationOperation
		cm            *corev1.ConfigMap
		source, field string
		reason        string // substring
	}{
		{"unknown top-level field", inlineOp(`{"timeout":"60s","lable":"x"}`), nil, inlineSource, "lable", `unknown field "lable"`},
		{"unknown nested field", inlineOp(`{"model":{"shipments":[{"label":"a"},{"label":"b","deliveries":[{"arivalLocation":{}}]}]}}`), nil,
			inlineSource, "model.shipments[1].deliveries[0].arivalLocation", `unknown field "arivalLocation"`},
		{"unknown field in a map value", inlineOp(`{"model":{"vehicles":[{"extraVisitDurationForVisitType":{"a":"1s"}, "loadLimits":{"kg":{"maxLod":"5"}}}]}}`), nil,
			inlineSource, `model.vehicles[0].loadLimits["kg"].maxLod`, `unknown field "maxLod"`},
		{"bad enum", inlineOp(`{"solvingMode":"SOLVE_FAST"}`), nil, inlineSource, "solvingMode", "SOLVE_FAST"},
		{"bad duration", inlineOp(`{"model":{"shipments":[{"deliveries":[{"duration":"5 minutes"}]}]}}`), nil,
			inlineSource, "model.shipments[0].deliveries[0].duration", `invalid google.protobuf.Duration value "5 minutes"`},
		{"bad timestamp", inlineOp(`{"model":{"globalStartTime":"tomorrow"}}`), nil, inlineSource, "model.globalStartTime", "Timestamp"},
		{"string for a number", inlineOp(`{"model":{"vehicles":[{"costPerHour":"thirty"}]}}`), nil, inlineSource, "model.vehicles[0].costPerHour", "costPerHour"},
		{"bad element of a repeated scalar", inlineOp(`{"model":{"shipments":[{"allowedVehicleIndices":[0,"one"]}]}}`), nil,
			inlineSource, "model.shipments[0].allowedVehicleIndices[1]", "allowedVehicleIndices"},
		{"not JSON", inlineOp(`{"model": }`), nil, inlineSource, "", "line 1"},
		{"an array, not an object", inlineOp(`[{"model":{}}]`), nil, inlineSource, "", "JSON object"},
		{"parent differs", inlineOp(`{"parent":"projects/other-project"}`), nil, inlineSource, "parent", "differs from spec.submit.parent"},
		{"too large inline", inlineOp(`{"label":"` + strings.Repeat("x", submit.MaxInlineBytes) + `"}`), nil, inlineSource, "", "put it in a ConfigMap"},
		{"ConfigMap missing", configMapOp("model", "request.json"), nil,
			"spec.submit.optimizeToursLongRunning.configMapKeyRef", "", "ConfigMap team-a/model does not exist"},
		{"ConfigMap key missing", configMapOp("model", "request.json"), configMap("model", map[string]string{"req.json": model, "b": ""}),
			"spec.submit.optimizeToursLongRunning.configMapKeyRef", "", `ConfigMap team-a/model has no key "request.json" (its keys: b, req.json)`},
		{"unknown field in a ConfigMap", configMapOp("model", "request.json"), configMap("model", map[string]string{"request.json": "{\n  \"model\": {\n    \"vehicle\": []\n  }\n}"}),
			"ConfigMap team-a/model key request.json", "model.vehicle", `unknown field "vehicle" (line 3:5)`},
		{"both sources", withSubmit(&opsv1.SubmitSpec{Parent: parent, OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
			ConfigMapKeyRef: &opsv1.ConfigMapKeySelector{Name: "m", Key: "k"}, Inline: &apiextensionsv1.JSON{Raw: []byte(`{}`)}}}), nil,
			"spec.submit.optimizeToursLongRunning", "", "exactly one of configMapKeyRef and inline"},
		{"no method", withSubmit(&opsv1.SubmitSpec{Parent: parent}), nil, "spec.submit", "", "exactly one method"},
		{"no submit", withSubmit(nil), nil, "spec", "", "spec.submit is not set"},
		{"bad data format", withSubmit(&opsv1.SubmitSpec{Parent: parent, BatchOptimizeTours: &opsv1.BatchOptimizeToursRequest{
			ModelConfigs: []opsv1.AsyncModelConfig{{InputConfig: opsv1.InputConfig{DataFormat: "CSV"}}}}}), nil,
			"spec.submit.batchOptimizeTours", "modelConfigs[0].inputConfig.dataFormat", `"CSV" is not a data format`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := submit.Build(tc.obj, tc.cm)
			var ie *submit.InvalidRequestError
			if !errors.As(err, &ie) {
				t.Fatalf("Build = %v, want an *InvalidRequestError", err)
			}
			t.Logf("%v", err)
			if ie.Source != tc.source || ie.Field != tc.field || !strings.Contains(ie.Reason, tc.reason) {
				t.Errorf("error = {Source: %q, Field: %q, Reason: %q}, want source %q, field %q, reason containing %q",
					ie.Source, ie.Field, ie.Reason, tc.source, tc.field, tc.reason)
			}
			if len(ie.Error()) > 2000 {
				t.Errorf("message is %d bytes long", len(ie.Error()))
			}
		})
	}
}

// TestHashIsStableAndContentBound: the same content hashes the same however it is written
// (order of fields, spacing, camelCase or snake_case, inline or ConfigMap), and any change of
// content, parent included, changes the hash.
func TestHashIsStableAndContentBound(t *testing.T) {
	hash := func(obj *opsv1.OptimizationOperation, cm *corev1.ConfigMap) string {
		t.Helper()
		req, err := submit.Build(obj, cm)
		if err != nil {
			t.Fatal(err)
		}
		return req.Hash
	}
	base := hash(inlineOp(`{"label":"a","timeout":"60s","model":{"vehicles":[{"label":"v"}]}}`), nil)
	same := []string{
		hash(inlineOp(`{"timeout":"60s","model":{"vehicles":[{"label":"v"}]},"label":"a"}`), nil),
		hash(inlineOp("{\n  \"label\": \"a\",\n  \"timeout\": \"60s\"\n,\"model\":{\"vehicles\":[{\"label\":\"v\"}]}}"), nil),
		hash(inlineOp(`{"label":"a","timeout":"60.000s","model":{"vehicles":[{"label":"v"}]},"parent":"`+parent+`"}`), nil),
		hash(configMapOp("m", "k"), configMap("m", map[string]string{"k": `{"label":"a","timeout":"60s","model":{"vehicles":[{"label":"v"}]}}`})),
	}
	for i, h := range same {
		if h != base {
			t.Errorf("form %d hashes %s, want %s", i, h, base)
		}
	}
	other := inlineOp(`{"label":"a","timeout":"60s","model":{"vehicles":[{"label":"v"}]}}`)
	other.Spec.Submit.Parent = "projects/my-project"
	for i, h := range []string{
		hash(inlineOp(`{"label":"b","timeout":"60s","model":{"vehicles":[{"label":"v"}]}}`), nil),
		hash(inlineOp(`{"label":"a","timeout":"61s","model":{"vehicles":[{"label":"v"}]}}`), nil),
		hash(inlineOp(`{"label":"a","timeout":"60s","model":{"vehicles":[{"label":"v"},{}]}}`), nil),
		hash(other, nil),
	} {
		if h == base {
			t.Errorf("change %d kept the hash", i)
		}
	}
	// Repeated builds give the same hash (deterministic encoding of maps).
	withMap := inlineOp(`{"model":{"vehicles":[{"loadLimits":{"kg":{"maxLoad":"5"},"m3":{"maxLoad":"2"},"pallets":{"maxLoad":"9"}}}]}}`)
	first := hash(withMap, nil)
	for range 20 {
		if h := hash(withMap, nil); h != first {
			t.Fatalf("hash of the same request changed: %s then %s", first, h)
		}
	}
}
