package emulator

import "testing"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		method, path string
		want         string // "" for no route
		name         string
		invalid      bool
	}{
		{"POST", "/v1/projects/p/locations/l:optimizeToursLongRunning", MethodOptimizeToursLongRunning, "projects/p/locations/l", false},
		{"POST", "/v1/projects/p:batchOptimizeTours", MethodBatchOptimizeTours, "projects/p", false},
		{"POST", "/v1/projects/p:OptimizeToursUri", MethodOptimizeToursURI, "projects/p", false},
		{"POST", "/v1/projects/p:optimizeTours", MethodOptimizeTours, "projects/p", false},
		{"POST", "/v1/projects/p/locations:batchOptimizeTours", MethodBatchOptimizeTours, "projects/p/locations", true},
		{"GET", "/v1/projects/p:batchOptimizeTours", "", "", false},
		{"GET", "/v1/projects/p/locations/l/operations/123", MethodGetOperation, "projects/p/locations/l/operations/123", false},
		{"GET", "/v1/operations/a/b/c", MethodGetOperation, "operations/a/b/c", false},
		{"GET", "/v1/projects/p/locations/l/operations/1:2", "", "", false},
		{"GET", "/v1/projects/p/locations/l/operations/a b", MethodGetOperation, "projects/p/locations/l/operations/a b", true},
		{"GET", "/v1/projects/p/locations/l/operations/", MethodGetOperation, "projects/p/locations/l/operations/", true},
		{"GET", "/v1/projects/p/locations/l/operations", MethodListOperations, "projects/p/locations/l/", false},
		{"GET", "/v1/operations", MethodListOperations, "", false},
		{"DELETE", "/v1/projects/p/locations/l/operations/9", MethodDeleteOperation, "projects/p/locations/l/operations/9", false},
		{"POST", "/v1/projects/p/locations/l/operations/9:cancel", MethodCancelOperation, "projects/p/locations/l/operations/9", false},
		{"POST", "/v1/operations/x:cancel", MethodCancelOperation, "operations/x", false},
		{"POST", "/v1/projects/p:cancel", MethodCancelOperation, "projects/p", true},
		{"PUT", "/v1/operations/x", "", "", false},
		{"GET", "/v1/", "", "", false},
		{"GET", "/v1/things/x", "", "", false},
		{"GET", "/v2/operations/x", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := parseRoute(tc.method, tc.path)
			if tc.want == "" {
				if r != nil {
					t.Fatalf("got route %+v, want none", r)
				}
				return
			}
			if r == nil {
				t.Fatalf("no route, want %s", tc.want)
			}
			if r.method != tc.want || r.name != tc.name || (r.invalid != nil) != tc.invalid {
				t.Fatalf("got %s %q invalid=%v, want %s %q invalid=%v", r.method, r.name, r.invalid, tc.want, tc.name, tc.invalid)
			}
		})
	}
}

func TestParseParent(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		location string
	}{
		{"projects/p", true, "global"},
		{"projects/my-proj-123/locations/us-central1", true, "us-central1"},
		{"projects/", false, ""},
		{"projects/p/locations/", false, ""},
		{"projects/p/regions/r", false, ""},
		{"folders/f", false, ""},
		{"projects/p/locations/l/extra", false, ""},
	}
	for _, tc := range tests {
		p, ok := parseParent(tc.in)
		if ok != tc.ok || p.location != tc.location {
			t.Errorf("parseParent(%q) = %+v, %v; want ok=%v location=%q", tc.in, p, ok, tc.ok, tc.location)
		}
	}
}

func TestDoneFilterAndPageToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "nil", "true", "false", "bad"
	}{
		{"", "nil"}, {"  ", "nil"}, {"done=true", "true"}, {"done = false", "false"}, {"done:true", "true"},
		{"done=yes", "bad"}, {"name=x", "bad"}, {"done", "bad"},
	} {
		v, ok := parseDoneFilter(tc.in)
		got := "bad"
		switch {
		case ok && v == nil:
			got = "nil"
		case ok && *v:
			got = "true"
		case ok:
			got = "false"
		}
		if got != tc.want {
			t.Errorf("parseDoneFilter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if seq, ok := decodePageToken(encodePageToken(42)); !ok || seq != 42 {
		t.Errorf("page token round trip = %d, %v", seq, ok)
	}
	if _, ok := decodePageToken("bm9wZQ"); ok {
		t.Error("accepted a foreign page token")
	}
}
