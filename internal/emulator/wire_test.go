package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// call sends a raw HTTP request and returns status, headers and the decoded
// JSON body (nil if the body is not JSON).
func call(t *testing.T, method, u, body string, hdr ...string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		m = nil
	}
	return resp.StatusCode, resp.Header, m
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// checkEnvelope asserts the AIP-193 error shape and returns the error object.
func checkEnvelope(t *testing.T, code int, body map[string]any, wantStatus string) map[string]any {
	t.Helper()
	if !reflect.DeepEqual(keys(body), []string{"error"}) {
		t.Fatalf("error body keys %v, want [error]", keys(body))
	}
	e := body["error"].(map[string]any)
	for _, k := range keys(e) {
		if !slices.Contains([]string{"code", "details", "message", "status"}, k) {
			t.Errorf("unexpected envelope field %q", k)
		}
	}
	if int(e["code"].(float64)) != code || e["status"] != wantStatus || e["message"] == "" {
		t.Errorf("envelope = %v, want code %d status %s", e, code, wantStatus)
	}
	for _, d := range asSlice(e["details"]) {
		if tu := d.(map[string]any)["@type"].(string); !strings.HasPrefix(tu, "type.googleapis.com/google.rpc.") {
			t.Errorf("detail type %s is not google.rpc.*", tu)
		}
	}
	return e
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestWireFormat(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	base := e.url + "/v1/"

	// Creation answers the running operation: name and metadata, no done.
	code, hdr, op := call(t, "POST", base+"projects/p/locations/l:optimizeToursLongRunning",
		`{"model":{"vehicles":[{}],"shipments":[{"deliveries":[{}]},{"allowedVehicleIndices":[0],"ignore":true}]},"timeout":"60s"}`)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("create: %d %s", code, hdr.Get("Content-Type"))
	}
	if !reflect.DeepEqual(keys(op), []string{"metadata", "name"}) {
		t.Fatalf("running operation keys %v, want [metadata name]", keys(op))
	}
	if got := op["metadata"].(map[string]any)["@type"]; got != "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursLongRunningMetadata" {
		t.Errorf("metadata @type %v", got)
	}
	name := op["name"].(string)

	// Done: response with the exact @type; enums follow $alt.
	e.clock.Advance(time.Minute)
	_, _, op = call(t, "GET", base+name, "")
	if !reflect.DeepEqual(keys(op), []string{"done", "metadata", "name", "response"}) || op["done"] != true {
		t.Fatalf("done operation = %v", op)
	}
	resp := op["response"].(map[string]any)
	if resp["@type"] != "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse" {
		t.Errorf("response @type %v", resp["@type"])
	}
	reason := func(op map[string]any) any {
		sk := asSlice(op["response"].(map[string]any)["skippedShipments"])
		return asSlice(sk[0].(map[string]any)["reasons"])[0].(map[string]any)["code"]
	}
	if got := reason(op); got != "SHIPMENT_IGNORED" {
		t.Errorf("enum as name = %v", got)
	}
	_, _, op = call(t, "GET", base+name+"?%24alt="+url.QueryEscape("json;enum-encoding=int"), "")
	if got := reason(op); got != float64(9) {
		t.Errorf("enum with enum-encoding=int = %v, want 9", got)
	}

	// Cancel: empty body and {"name"} both answer {}; cancelled operations
	// carry error.code 1 and no response.
	for _, body := range []string{"", `{"name":"NAME"}`} {
		n, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		code, _, got := call(t, "POST", base+n+":cancel", strings.ReplaceAll(body, "NAME", n))
		if code != 200 || len(got) != 0 {
			t.Fatalf("cancel with body %q: %d %v", body, code, got)
		}
		_, _, op = call(t, "GET", base+n, "")
		errObj, _ := op["error"].(map[string]any)
		if op["done"] != true || errObj["code"] != float64(1) || op["response"] != nil {
			t.Fatalf("cancelled operation = %v", op)
		}
	}
}

func TestWireErrors(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	base := e.url + "/v1/"
	running, err := e.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		status                   string
	}{
		{"unknown operation", "GET", "projects/p/locations/l/operations/nope", "", 404, "NOT_FOUND"},
		{"malformed name", "GET", "projects/p/locations/l/operations/a%20b", "", 400, "INVALID_ARGUMENT"},
		{"too many segments", "GET", "projects/p/locations/l/operations/a/b", "", 400, "INVALID_ARGUMENT"},
		{"unknown URL", "GET", "v2beta/things", "", 404, "NOT_FOUND"},
		{"unknown verb", "POST", "projects/p:optimizeEverything", "{}", 404, "NOT_FOUND"},
		{"bad parent", "POST", "projects/p/zones/z:batchOptimizeTours", "{}", 400, "INVALID_ARGUMENT"},
		{"unknown body field", "POST", "projects/p:optimizeToursLongRunning", `{"shipmentModel":{}}`, 400, "INVALID_ARGUMENT"},
		{"body not JSON", "POST", "projects/p:optimizeToursLongRunning", `model=1`, 400, "INVALID_ARGUMENT"},
		{"batch missing format", "POST", "projects/p:batchOptimizeTours", `{"modelConfigs":[{"inputConfig":{"gcsSource":{"uri":"gs://a"}},"outputConfig":{"gcsDestination":{"uri":"gs://b"}}}]}`, 400, "INVALID_ARGUMENT"},
		{"negative timeout", "POST", "projects/p:optimizeToursLongRunning", `{"timeout":"-1s"}`, 400, "INVALID_ARGUMENT"},
		{"cancel name mismatch", "POST", running + ":cancel", `{"name":"operations/other"}`, 400, "INVALID_ARGUMENT"},
		{"cancel unknown field", "POST", running + ":cancel", `{"force":true}`, 400, "INVALID_ARGUMENT"},
		{"bad page token", "GET", "operations?pageToken=xyz", "", 400, "INVALID_ARGUMENT"},
		{"bad filter", "GET", "operations?filter=name%3Dx", "", 400, "INVALID_ARGUMENT"},
		{"bad page size", "GET", "operations?pageSize=-1", "", 400, "INVALID_ARGUMENT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, tc.method, base+tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%s %s: HTTP %d, want %d (%v)", tc.method, tc.path, code, tc.code, body)
			}
			checkEnvelope(t, code, body, tc.status)
		})
	}
}

func TestWireAuthAndFaults(t *testing.T) {
	e := newEnv(t, emulator.Options{RequireToken: true, AcceptedTokens: []string{"good"}})
	ctx := testContext(t)
	u := e.url + "/v1/projects/p/locations/global/operations/x"

	code, hdr, body := call(t, "GET", u, "")
	if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v", code, hdr)
	}
	checkEnvelope(t, code, body, "UNAUTHENTICATED")
	code, _, body = call(t, "GET", u, "", "Authorization", "Bearer bad")
	checkEnvelope(t, code, body, "PERMISSION_DENIED")
	code, _, body = call(t, "GET", u, "", "Authorization", "bearer good")
	checkEnvelope(t, code, body, "NOT_FOUND")

	faults := []struct {
		fault  emulator.MethodFault
		code   int
		status string
		detail string
	}{
		{emulator.MethodFault{Unavailable: 1}, 503, "UNAVAILABLE", ""},
		{emulator.MethodFault{Internal: 1}, 500, "INTERNAL", ""},
		{emulator.MethodFault{PermissionDenied: 1}, 403, "PERMISSION_DENIED", ""},
		{emulator.MethodFault{ResourceExhausted: 1, RetryDelay: 3500 * time.Millisecond}, 429, "RESOURCE_EXHAUSTED", "3.500s"},
		{emulator.MethodFault{ResourceExhausted: 1}, 429, "RESOURCE_EXHAUSTED", "30s"},
		{emulator.MethodFault{Cancelled: 1}, 499, "CANCELLED", ""},
		{emulator.MethodFault{RequestTimeout: 1}, 408, "DEADLINE_EXCEEDED", ""},
	}
	for _, f := range faults {
		if err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{"*": f.fault}}); err != nil {
			t.Fatal(err)
		}
		code, _, body := call(t, "GET", u, "", "Authorization", "Bearer good")
		env := checkEnvelope(t, code, body, f.status)
		if f.detail == "" {
			continue
		}
		var delay any
		for _, d := range asSlice(env["details"]) {
			if dm := d.(map[string]any); dm["@type"] == "type.googleapis.com/google.rpc.RetryInfo" {
				delay = dm["retryDelay"]
			}
		}
		if delay != f.detail {
			t.Errorf("RetryInfo.retryDelay = %v, want %s", delay, f.detail)
		}
	}

	// Without status only the HTTP status tells what happened.
	for _, f := range []struct {
		fault emulator.MethodFault
		code  int
	}{
		{emulator.MethodFault{Cancelled: 1, NoStatus: true}, 499},
		{emulator.MethodFault{RequestTimeout: 1, NoStatus: true}, 408},
	} {
		if err := e.admin.SetFaults(ctx, emulator.Faults{Methods: map[string]emulator.MethodFault{"*": f.fault}}); err != nil {
			t.Fatal(err)
		}
		code, _, body := call(t, "GET", u, "", "Authorization", "Bearer good")
		env, _ := body["error"].(map[string]any)
		if code != f.code || !reflect.DeepEqual(keys(env), []string{"code", "message"}) || int(env["code"].(float64)) != f.code {
			t.Errorf("%+v: HTTP %d %v, want %d with an envelope of code and message only", f.fault, code, body, f.code)
		}
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	tests := []struct {
		name, form, wantErr string
	}{
		{"wrong grant", "grant_type=password&username=x", "unsupported_grant_type"},
		{"not a JWT", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=abc", "invalid_grant"},
		{"no iss", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=e30.e30.sig", "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, "POST", e.url+"/emulator/v1/token", tc.form, "Content-Type", "application/x-www-form-urlencoded")
			if code != 400 || body["error"] != tc.wantErr {
				t.Fatalf("%d %v, want 400 %s", code, body, tc.wantErr)
			}
		})
	}
}

func TestAdminStrictJSON(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	for _, tc := range []struct{ path, body string }{
		{"faults", `{"methods":{"*":{"unavailableRate":1}}}`},
		{"faults", `{"methods":{"*":{"latency":5}}}`},
		{"config", `{"cancelStyle":"ignored"}`},
		{"config", `{"retention":"0s"}`},
	} {
		code, _, body := call(t, "PUT", e.url+"/emulator/v1/"+tc.path, tc.body)
		if code != 400 {
			t.Errorf("PUT %s %s: %d %v, want 400", tc.path, tc.body, code, body)
		}
	}
	code, _, _ := call(t, "POST", e.url+"/emulator/v1/operations", `{"durration":"1s"}`)
	if code != 400 {
		t.Errorf("create with unknown field: %d, want 400", code)
	}
}

func TestAdminNameReusableAfterRetention(t *testing.T) {
	e := newEnv(t, emulator.Options{Retention: time.Minute})
	ctx := testContext(t)
	req := emulator.CreateOperationRequest{Name: "projects/p/locations/l/operations/reused"}
	if _, err := e.admin.CreateOperation(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateOperation(ctx, req); err == nil {
		t.Fatal("second create of a live name succeeded")
	}
	e.clock.Advance(time.Minute)
	if _, err := e.admin.CreateOperation(ctx, req); err != nil {
		t.Fatalf("create after the first expired: %v", err)
	}
}
