package emulator

import (
	"net/http"
	"strings"
)

// Method names as they appear in counters and fault configuration. They are
// the RPC method names of the Google API.
const (
	MethodGetOperation             = "GetOperation"
	MethodCancelOperation          = "CancelOperation"
	MethodListOperations           = "ListOperations"
	MethodDeleteOperation          = "DeleteOperation"
	MethodBatchOptimizeTours       = "BatchOptimizeTours"
	MethodOptimizeToursLongRunning = "OptimizeToursLongRunning"
	MethodOptimizeToursURI         = "OptimizeToursUri"
	MethodOptimizeTours            = "OptimizeTours"

	// AllMethods is the fault-configuration key that applies to every method
	// without an entry of its own.
	AllMethods = "*"
)

// knownMethods lists every method the emulator serves, in display order.
var knownMethods = []string{
	MethodGetOperation, MethodCancelOperation, MethodListOperations, MethodDeleteOperation,
	MethodBatchOptimizeTours, MethodOptimizeToursLongRunning, MethodOptimizeToursURI, MethodOptimizeTours,
}

func isKnownMethod(m string) bool {
	for _, k := range knownMethods {
		if k == m {
			return true
		}
	}
	return false
}

// rpcName is the fully qualified RPC name, used in ErrorInfo metadata.
func rpcName(method string) string {
	switch method {
	case MethodGetOperation, MethodCancelOperation, MethodListOperations, MethodDeleteOperation:
		return "google.longrunning.Operations." + method
	default:
		return "google.maps.routeoptimization.v1.RouteOptimization." + method
	}
}

// defaultLocation is the location Google uses for operations created under a
// project-only parent.
const defaultLocation = "global"

// maxSegmentLen bounds one path segment of a resource name.
const maxSegmentLen = 256

// validSegment reports whether s can be one segment of a resource name: the
// URL-unreserved characters only. A ':' would be read as a custom verb and a
// '/' as a segment break, so both are rejected.
func validSegment(s string) bool {
	if s == "" || len(s) > maxSegmentLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return true
}

// parent is a parsed projects/{p}[/locations/{l}] parent.
type parent struct {
	project, location string // location is "global" when the parent has none
}

// parseParent accepts projects/{p} and projects/{p}/locations/{l}.
func parseParent(s string) (parent, bool) {
	seg := strings.Split(s, "/")
	switch {
	case len(seg) == 2 && seg[0] == "projects" && validSegment(seg[1]):
		return parent{project: seg[1], location: defaultLocation}, true
	case len(seg) == 4 && seg[0] == "projects" && validSegment(seg[1]) &&
		seg[2] == "locations" && validSegment(seg[3]):
		return parent{project: seg[1], location: seg[3]}, true
	}
	return parent{}, false
}

// operationName builds the name of an operation created under p.
func (p parent) operationName(id string) string {
	return "projects/" + p.project + "/locations/" + p.location + "/operations/" + id
}

// validOperationName accepts the two operation name shapes of the API:
// projects/{p}/locations/{l}/operations/{id} (what Route Optimization hands
// out) and operations/** (the generic google.longrunning binding).
func validOperationName(s string) bool {
	seg := strings.Split(s, "/")
	if len(seg) == 6 && seg[0] == "projects" && seg[2] == "locations" && seg[4] == "operations" {
		return validSegment(seg[1]) && validSegment(seg[3]) && validSegment(seg[5])
	}
	if len(seg) >= 2 && seg[0] == "operations" {
		for _, x := range seg[1:] {
			if !validSegment(x) {
				return false
			}
		}
		return true
	}
	return false
}

// parseCollection accepts the operation collections a list can address:
// "operations" (everything) and projects/{p}/locations/{l}/operations. It
// returns the name prefix the listed operations must have.
func parseCollection(s string) (prefix string, ok bool) {
	if s == "operations" {
		return "", true
	}
	seg := strings.Split(s, "/")
	if len(seg) == 5 && seg[0] == "projects" && validSegment(seg[1]) &&
		seg[2] == "locations" && validSegment(seg[3]) && seg[4] == "operations" {
		return strings.TrimSuffix(s, "operations"), true
	}
	return "", false
}

// route is a request to the Google-facing surface after path matching.
type route struct {
	method string // one of the Method* constants
	name   string // operation name, collection, or parent, depending on method
	// invalid is set when the path selects a method but its resource name is
	// malformed. It is answered after auth and fault injection, as Google's
	// frontends authenticate before validating the request.
	invalid *apiError
}

// parseRoute matches an HTTP method and a decoded URL path against the REST
// bindings of the API. A nil route means no binding matched (404).
func parseRoute(httpMethod, path string) *route {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok || rest == "" {
		return nil
	}
	// A custom verb follows the last ':' of the final segment.
	var verb string
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "/") {
		rest, verb = rest[:i], rest[i+1:]
	}
	// Only paths under the API's resource roots are candidates; anything else
	// is an unknown URL rather than a malformed name.
	if !strings.HasPrefix(rest, "projects/") && rest != "operations" && !strings.HasPrefix(rest, "operations/") {
		return nil
	}

	switch verb {
	case "batchOptimizeTours", "optimizeToursLongRunning", "OptimizeToursUri", "optimizeTours":
		if httpMethod != http.MethodPost {
			return nil
		}
		r := &route{method: verbMethod[verb], name: rest}
		if _, ok := parseParent(rest); !ok {
			r.invalid = errBadField("parent", "expected projects/{project} or projects/{project}/locations/{location}, got \""+clip(rest)+"\"")
		}
		return r
	case "cancel":
		if httpMethod != http.MethodPost {
			return nil
		}
		r := &route{method: MethodCancelOperation, name: rest}
		if !validOperationName(rest) {
			r.invalid = errInvalidName(rest)
		}
		return r
	case "":
		switch httpMethod {
		case http.MethodGet:
			if prefix, ok := parseCollection(rest); ok {
				return &route{method: MethodListOperations, name: prefix}
			}
			r := &route{method: MethodGetOperation, name: rest}
			if !validOperationName(rest) {
				r.invalid = errInvalidName(rest)
			}
			return r
		case http.MethodDelete:
			r := &route{method: MethodDeleteOperation, name: rest}
			if !validOperationName(rest) {
				r.invalid = errInvalidName(rest)
			}
			return r
		}
	}
	return nil
}

var verbMethod = map[string]string{
	"batchOptimizeTours":       MethodBatchOptimizeTours,
	"optimizeToursLongRunning": MethodOptimizeToursLongRunning,
	"OptimizeToursUri":         MethodOptimizeToursURI,
	"optimizeTours":            MethodOptimizeTours,
}

func errInvalidName(name string) *apiError {
	return errBadField("name", "expected projects/{project}/locations/{location}/operations/{operation} or operations/{operation}, got \""+clip(name)+"\"")
}

// clip bounds user input echoed in error messages.
func clip(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
