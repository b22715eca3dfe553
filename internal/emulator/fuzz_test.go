package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

// FuzzParseRoute checks that path matching never panics and that every
// route it accepts as valid carries a well-formed resource name.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v1/projects/p/locations/l:optimizeToursLongRunning",
		"/v1/projects/p:batchOptimizeTours",
		"/v1/projects/p/locations/l/operations/123",
		"/v1/projects/p/locations/l/operations/123:cancel",
		"/v1/operations/a/b:cancel",
		"/v1/projects/p/locations/l/operations",
		"/v1/operations",
		"/v1/projects/p/locations/l/operations/1:2:3",
		"/v1/projects//locations/l/operations/x",
	} {
		for _, m := range []string{"GET", "POST", "DELETE"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r := parseRoute(method, path)
		if r == nil || r.invalid != nil {
			return
		}
		switch r.method {
		case MethodGetOperation, MethodCancelOperation, MethodDeleteOperation:
			if !validOperationName(r.name) {
				t.Fatalf("%s %s: accepted invalid operation name %q", method, path, r.name)
			}
		case MethodListOperations:
			if r.name != "" && !strings.HasSuffix(r.name, "/") {
				t.Fatalf("%s %s: list prefix %q", method, path, r.name)
			}
		default:
			p, ok := parseParent(r.name)
			if !ok {
				t.Fatalf("%s %s: accepted invalid parent %q", method, path, r.name)
			}
			if n := p.operationName("1"); !validOperationName(n) {
				t.Fatalf("parent %q builds invalid operation name %q", r.name, n)
			}
		}
	})
}

// FuzzDecodeRequest feeds arbitrary bodies to the request decoders,
// validators and the emulated solver: nothing may panic, and a request that
// passes validation must yield a response that encodes or is rejected.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"model":{"vehicles":[{}],"shipments":[{"deliveries":[{"duration":"60s"}]}]},"timeout":"5s"}`))
	f.Add([]byte(`{"model":{"globalStartTime":"9999-12-31T23:00:00Z","vehicles":[{}],"shipments":[{"pickups":[{}]}]}}`))
	f.Add([]byte(`{"model":{"vehicles":[{"ignore":true}],"shipments":[{"allowedVehicleIndices":[0]}]}}`))
	f.Add([]byte(`{"modelConfigs":[{"inputConfig":{"gcsSource":{"uri":"gs://a"},"dataFormat":"JSON"},"outputConfig":{"gcsDestination":{"uri":"gs://b"},"dataFormat":"PROTO_TEXT"}}]}`))
	f.Add([]byte(`{"input":{"uri":"gs://a"},"output":{"uri":"gs://b"}}`))
	f.Add([]byte(`{"name":"operations/x"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		tours := &rpb.OptimizeToursRequest{}
		if decodeBody(body, tours) == nil && validateOptimizeTours(tours) == nil {
			resp := solve(tours)
			if _, err := protojson.Marshal(resp); err == nil {
				if _, err := anyAndBack(resp); err != nil {
					t.Fatalf("response does not round-trip: %v", err)
				}
			}
		}
		batch := &rpb.BatchOptimizeToursRequest{}
		if decodeBody(body, batch) == nil {
			_ = validateBatch(batch)
		}
		uri := &rpb.OptimizeToursUriRequest{}
		if decodeBody(body, uri) == nil {
			_ = validateURI(uri)
		}
	})
}

func anyAndBack(resp *rpb.OptimizeToursResponse) (*rpb.OptimizeToursResponse, error) {
	b, err := protojson.Marshal(mustAny(resp))
	if err != nil {
		return nil, err
	}
	back := &rpb.OptimizeToursResponse{}
	a := mustAny(back)
	if err := protojson.Unmarshal(b, a); err != nil {
		return nil, err
	}
	return back, a.UnmarshalTo(back)
}

// FuzzServeHTTP drives the whole handler with arbitrary requests: every
// answer must be JSON, never 499 (only an injected fault answers 499, and the
// fuzzer sets none), and every error must be a consistent AIP-193 envelope.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", "/v1/projects/p/locations/l:optimizeToursLongRunning", []byte(`{"model":{"vehicles":[{}]}}`))
	f.Add("POST", "/v1/projects/p:batchOptimizeTours", []byte(`{}`))
	f.Add("GET", "/v1/operations", []byte(nil))
	f.Add("GET", "/v1/projects/p/locations/l/operations?filter=done%3Dtrue&pageSize=1", []byte(nil))
	f.Add("POST", "/v1/operations/x:cancel", []byte(`{"name":"operations/x"}`))
	f.Add("DELETE", "/v1/projects/p/locations/l/operations/1", []byte(nil))
	f.Add("POST", "/emulator/v1/operations", []byte(`{"duration":"1s","errorCode":5}`))
	f.Add("PUT", "/emulator/v1/faults", []byte(`{"methods":{"*":{"latency":"0s"}}}`))
	f.Add("POST", "/emulator/v1/token", []byte(`grant_type=x`))
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clock, Seed: 1})
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") || method == "" {
			return
		}
		for _, c := range method {
			if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
				return
			}
		}
		req, err := http.NewRequest(method, "http://emulator"+target, bytes.NewReader(body))
		if err != nil {
			return
		}
		if strings.HasPrefix(req.URL.Path, "/emulator/v1/faults") { // decoded: %66aults is faults too
			return // latency faults would slow the fuzzer down, not find bugs
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		clock.Advance(time.Second)
		if rec.Code == 499 || rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("%s %s: status %d", method, target, rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: body is not JSON: %q", method, target, rec.Body.String())
		}
		if rec.Code >= 400 && !strings.HasPrefix(target, tokenPath) {
			var env envelope
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%s %s: error body: %v", method, target, err)
			}
			c, ok := code.Code_value[env.Error.Status]
			if !ok || env.Error.Code != rec.Code || httpStatus(codeOf(c)) != rec.Code {
				t.Fatalf("%s %s: inconsistent envelope %+v for HTTP %d", method, target, env.Error, rec.Code)
			}
		}
	})
}

func codeOf(c int32) codes.Code { return codes.Code(c) }
