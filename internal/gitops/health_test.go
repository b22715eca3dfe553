package gitops_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	"github.com/routeopt/routeopt-operator/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml from config/argocd/health.lua")

// argoHealthKey is the argocd-cm key of the health check (resource.customizations.health.<group>_<Kind>).
const argoHealthKey = "resource.customizations.health.ops.routeopt.dev_OptimizationOperation"

func argoDir() string { return filepath.Join(testenv.RepoRoot(), "config", "argocd") }

// healthStatus is Argo CD's health.HealthStatus.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// healthTests is the layout of health_test.yaml in Argo CD's resource_customizations.
type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

// runHealthLua runs a health script the way Argo CD does for a script from argocd-cm: a Lua
// state without the standard libraries except package, base and table, a one-second deadline,
// the object as the global table obj, and the returned table read as a HealthStatus.
func runHealthLua(script string, obj map[string]any) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	b, err := json.Marshal(fromLua(ret))
	if err != nil {
		return healthStatus{}, err
	}
	var hs healthStatus
	if err := json.Unmarshal(b, &hs); err != nil {
		return healthStatus{}, err
	}
	switch hs.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return healthStatus{}, fmt.Errorf("Lua returned an invalid health status %q", hs.Status)
	}
	return hs, nil
}

// toLua converts an unstructured object as Argo CD does (int64 from the API server's JSON too).
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func fromLua(v lua.LValue) any {
	switch x := v.(type) {
	case lua.LBool:
		return bool(x)
	case lua.LNumber:
		return float64(x)
	case lua.LString:
		return string(x)
	case *lua.LTable:
		if n := x.MaxN(); n > 0 {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, fromLua(x.RawGetInt(i)))
			}
			return arr
		}
		m := map[string]any{}
		x.ForEach(func(k, val lua.LValue) { m[k.String()] = fromLua(val) })
		return m
	}
	return nil
}

func readScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(argoDir(), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readObject reads a YAML manifest into an unstructured object, as the API server's JSON would
// arrive in Argo CD (integers as int64).
func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u.Object
}

func readHealthTests(t *testing.T) healthTests {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(argoDir(), "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ht healthTests
	if err := yaml.UnmarshalStrict(b, &ht); err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	if len(ht.Tests) == 0 {
		t.Fatal("health_test.yaml has no tests")
	}
	return ht
}

// TestArgoCDHealth runs every case of config/argocd/health_test.yaml.
func TestArgoCDHealth(t *testing.T) {
	script := readScript(t)
	for _, tc := range readHealthTests(t).Tests {
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml"), func(t *testing.T) {
			obj := readObject(t, filepath.Join(argoDir(), tc.InputPath))
			got, err := runHealthLua(script, obj)
			if err != nil {
				t.Fatalf("health.lua: %v", err)
			}
			t.Logf("%s -> %s: %s", tc.InputPath, got.Status, got.Message)
			if got != tc.HealthStatus {
				t.Errorf("got\n  %+v\nwant\n  %+v", got, tc.HealthStatus)
			}
		})
	}
}

// TestArgoCDHealthCoversEveryState checks that a captured object of each state is tested, and
// that each is a real object read from an API server rather than written by hand.
func TestArgoCDHealthCoversEveryState(t *testing.T) {
	want := map[string]string{
		"no-status":                "Progressing",
		"pending":                  "Progressing",
		"generation-lagging":       "Progressing",
		"running":                  "Progressing",
		"cancelling":               "Progressing",
		"cancel-unsupported":       "Progressing",
		"succeeded":                "Healthy",
		"completed-despite-cancel": "Healthy",
		"cancelled":                "Healthy",
		"cancelled-elsewhere":      "Degraded",
		"failed":                   "Degraded",
		"not-found":                "Degraded",
		"auth-failed":              "Degraded",
		"auth-failed-secret":       "Degraded",
		"request-rejected":         "Degraded",
		"remote-unavailable":       "Degraded",
		"submitting":               "Progressing",
		"submitted":                "Progressing",
		"not-submitted":            "Healthy",
		"invalid-request":          "Degraded",
		"submit-uncertain":         "Degraded",
	}
	seen := map[string]bool{}
	for _, tc := range readHealthTests(t).Tests {
		name := strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")
		seen[name] = true
		if w, ok := want[name]; ok && tc.HealthStatus.Status != w {
			t.Errorf("%s expects %s, want %s", tc.InputPath, tc.HealthStatus.Status, w)
		}
		obj := &unstructured.Unstructured{Object: readObject(t, filepath.Join(argoDir(), tc.InputPath))}
		if obj.GetAPIVersion() != "ops.routeopt.dev/v1alpha1" || obj.GetKind() != "OptimizationOperation" {
			t.Errorf("%s is a %s %s", tc.InputPath, obj.GetAPIVersion(), obj.GetKind())
		}
		if obj.GetUID() == "" || obj.GetResourceVersion() == "" || obj.GetCreationTimestamp().Time.IsZero() || obj.GetGeneration() == 0 {
			t.Errorf("%s lacks uid, resourceVersion, creationTimestamp or generation: not read from an API server", tc.InputPath)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("health_test.yaml has no case for testdata/%s.yaml", name)
		}
	}
}

// TestArgoCDHealthEdgeCases covers shapes no captured object has.
func TestArgoCDHealthEdgeCases(t *testing.T) {
	script := readScript(t)
	cond := func(typ, status, reason, msg string) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg}
	}
	obj := func(generation int64, status map[string]any) map[string]any {
		o := map[string]any{
			"apiVersion": "ops.routeopt.dev/v1alpha1", "kind": "OptimizationOperation",
			"metadata": map[string]any{"name": "x", "namespace": "default", "generation": generation},
			"spec":     map[string]any{"operationName": "operations/x"},
		}
		if status != nil {
			o["status"] = status
		}
		return o
	}
	cases := []struct {
		name string
		obj  map[string]any
		want healthStatus
	}{
		{"empty status", obj(1, map[string]any{}),
			healthStatus{"Progressing", "Waiting for the operator to report status"}},
		{"observed but no conditions", obj(1, map[string]any{"observedGeneration": int64(1)}),
			healthStatus{"Progressing", "Waiting for the operator to read the operation"}},
		{"no generation in metadata", map[string]any{"metadata": map[string]any{"name": "x"},
			"status": map[string]any{"observedGeneration": int64(1), "conditions": []any{cond("Ready", "True", "Succeeded", "done")}}},
			healthStatus{"Healthy", "done"}},
		{"stale Ready=True", obj(3, map[string]any{"observedGeneration": int64(2),
			"conditions": []any{cond("Ready", "True", "Succeeded", "done")}}),
			healthStatus{"Progressing", "Waiting for the operator to observe generation 3 (status is for generation 2)"}},
		{"Stalled wins over Ready=True", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Ready", "True", "Succeeded", "ready"), cond("Stalled", "True", "Failed", "stalled")}}),
			healthStatus{"Degraded", "ready"}},
		{"Stalled without Ready", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Stalled", "True", "NotFound", "gone")}}),
			healthStatus{"Degraded", "gone"}},
		{"Stalled=False is ignored", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Ready", "False", "Running", "running"), cond("Stalled", "False", "Failed", "")}}),
			healthStatus{"Progressing", "running"}},
		{"Ready=Unknown", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Ready", "Unknown", "Pending", "")}}),
			healthStatus{"Progressing", "Waiting for the operator to read the operation"}},
		{"RemoteUnavailable without Stalled", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Ready", "False", "RemoteUnavailable", "outage")}}),
			healthStatus{"Degraded", "outage"}},
		{"unknown reason", obj(1, map[string]any{"observedGeneration": int64(1),
			"conditions": []any{cond("Ready", "False", "SomethingNew", "new")}}),
			healthStatus{"Progressing", "new"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runHealthLua(script, tc.obj)
			if err != nil {
				t.Fatalf("health.lua: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestArgoCDConfigMap checks that argocd-cm.yaml carries health.lua unchanged under the key Argo
// CD looks up. Run with -update to rewrite it.
func TestArgoCDConfigMap(t *testing.T) {
	script := readScript(t)
	path := filepath.Join(argoDir(), "argocd-cm.yaml")
	if *update {
		var b strings.Builder
		b.WriteString(`# The Argo CD health check of OptimizationOperation (config/argocd/health.lua), as a patch of
# the argocd-cm ConfigMap. Apply it to the namespace Argo CD runs in:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm.yaml
# Generated from health.lua by: go test ./internal/gitops -run TestArgoCDConfigMap -update
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  ` + argoHealthKey + `: |
`)
		for line := range strings.Lines(script) {
			if strings.TrimSpace(line) == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + line)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		t.Errorf("%s is %s %q, want ConfigMap argocd-cm", path, cm.Kind, cm.Name)
	}
	if got := cm.Data[argoHealthKey]; got != script {
		keys := slices.Sorted(maps.Keys(cm.Data))
		t.Errorf("%s: data[%s] differs from health.lua (keys: %v); run: go test ./internal/gitops -run TestArgoCDConfigMap -update",
			path, argoHealthKey, keys)
	}
}

// TestKstatusOfCapturedStates computes kstatus (what Flux and kpt wait on) for the objects
// captured from a real API server in every state, the same ones the Argo CD check is tested
// on, so both tools are known to read each state as documented in docs/gitops.md.
func TestKstatusOfCapturedStates(t *testing.T) {
	want := map[string]status.Status{
		"no-status":                status.CurrentStatus, // no conditions at all: kstatus cannot tell
		"pending":                  status.InProgressStatus,
		"generation-lagging":       status.InProgressStatus,
		"running":                  status.InProgressStatus,
		"cancelling":               status.InProgressStatus,
		"cancel-unsupported":       status.InProgressStatus,
		"succeeded":                status.CurrentStatus,
		"completed-despite-cancel": status.CurrentStatus,
		"cancelled":                status.CurrentStatus,
		"cancelled-elsewhere":      status.FailedStatus,
		"failed":                   status.FailedStatus,
		"not-found":                status.FailedStatus,
		"auth-failed":              status.FailedStatus,
		"auth-failed-secret":       status.FailedStatus,
		"request-rejected":         status.FailedStatus,
		"remote-unavailable":       status.InProgressStatus,
		"submitting":               status.InProgressStatus,
		"submitted":                status.InProgressStatus,
		"not-submitted":            status.CurrentStatus,
		"invalid-request":          status.FailedStatus,
		"submit-uncertain":         status.FailedStatus,
	}
	for _, tc := range readHealthTests(t).Tests {
		name := strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no kstatus expectation for fixture %s", tc.InputPath)
			}
			obj := &unstructured.Unstructured{Object: readObject(t, filepath.Join(argoDir(), tc.InputPath))}
			res, err := status.Compute(obj)
			if err != nil {
				t.Fatalf("kstatus: %v", err)
			}
			t.Logf("%s -> %s: %s", tc.InputPath, res.Status, res.Message)
			if res.Status != w {
				t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, w)
			}
		})
	}
}
