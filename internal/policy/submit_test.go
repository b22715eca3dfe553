package policy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// submitWrapped is how internal/remote reports a failed submit.
func submitWrapped(err error) error {
	return fmt.Errorf("OptimizeToursLongRunning under projects/p/locations/global: %w", err)
}

// urlError is what net/http's client returns for a transport failure of a POST.
func urlError(err error) error {
	return &url.Error{Op: "Post", URL: "https://routeoptimization.googleapis.com/v1/projects/p:optimizeToursLongRunning", Err: err}
}

// TestClassifySubmit: whether a failed submit may have started a solve, and whether to send it
// again, for every kind of failure a submit can meet.
func TestClassifySubmit(t *testing.T) {
	envelope := func(code int, status string) string {
		return fmt.Sprintf(`{"error": {"code": %d, "message": "m", "status": %q}}`, code, status)
	}
	apiErr := func(httpCode int, body string) error {
		ae, ok := apierror.FromError(rawHTTPError(t, httpCode, body))
		if !ok {
			t.Fatal("apierror.FromError did not parse the googleapi.Error")
		}
		return ae
	}
	tests := []struct {
		name         string
		err          error
		maybeStarted bool
		retry        bool
		kind         policy.FailureKind
	}{
		// Answered, and certainly nothing started.
		{"400 INVALID_ARGUMENT", restError(t, 400, "INVALID_ARGUMENT", "model.shipments[0]: bad"), false, false, policy.Rejected},
		{"400 FAILED_PRECONDITION", restError(t, 400, "FAILED_PRECONDITION", "billing disabled"), false, false, policy.Rejected},
		{"401 UNAUTHENTICATED", restError(t, 401, "UNAUTHENTICATED", "no token"), false, false, policy.Auth},
		{"403 PERMISSION_DENIED", restError(t, 403, "PERMISSION_DENIED", "denied"), false, false, policy.Auth},
		{"404 NOT_FOUND (project or location)", restError(t, 404, "NOT_FOUND", "location not found"), false, false, policy.NotFound},
		{"429 RESOURCE_EXHAUSTED with RetryInfo", restError(t, 429, "RESOURCE_EXHAUSTED", "quota", retryInfo), false, true, policy.RateLimited},
		{"429 RESOURCE_EXHAUSTED without RetryInfo", restError(t, 429, "RESOURCE_EXHAUSTED", "quota", errorInfo), false, true, policy.RateLimited},
		{"429 from a proxy, not JSON", apiErr(429, "Too Many Requests"), false, true, policy.RateLimited},
		{"413 from a proxy", apiErr(413, "<html>Request Entity Too Large</html>"), false, false, policy.Rejected},
		{"503 UNAVAILABLE in Google's envelope", restError(t, 503, "UNAVAILABLE", "The service is currently unavailable."), false, true, policy.Transient},
		{"503 UNAVAILABLE in Google's envelope, wrapped", submitWrapped(restError(t, 503, "UNAVAILABLE", "try again")), false, true, policy.Transient},
		{"501 UNIMPLEMENTED in Google's envelope", restError(t, 501, "UNIMPLEMENTED", "no such method"), false, false, policy.Unimplemented},
		{"credentials not loadable", &policy.CredentialsError{Err: errors.New("secret default/sa has no key.json")}, false, false, policy.Auth},
		{"token endpoint refused the key", submitWrapped(urlError(&oauth2.RetrieveError{Response: httpResponse(400), Body: []byte(`{"error":"invalid_grant"}`)})), false, false, policy.Auth},
		{"token endpoint unavailable", submitWrapped(urlError(&oauth2.RetrieveError{Response: httpResponse(503)})), false, true, policy.Transient},
		{"connection refused", submitWrapped(urlError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})), false, true, policy.Transient},
		{"DNS failure", submitWrapped(urlError(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "routeoptimization.googleapis.com", IsNotFound: true}})), false, true, policy.Transient},
		{"gRPC INVALID_ARGUMENT", status.Error(codes.InvalidArgument, "bad"), false, false, policy.Rejected},
		{"gRPC RESOURCE_EXHAUSTED", grpcWithRetry(t, codes.ResourceExhausted, "quota", 3*time.Second), false, true, policy.RateLimited},

		// Possibly started: never sent again without a person.
		{"deadline after the request was sent", submitWrapped(urlError(context.DeadlineExceeded)), true, false, policy.Transient},
		{"context cancelled", submitWrapped(context.Canceled), true, false, policy.Transient},
		{"connection reset", submitWrapped(urlError(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})), true, false, policy.Transient},
		{"EOF before the answer", submitWrapped(urlError(io.EOF)), true, false, policy.Transient},
		{"unexpected EOF in the answer", submitWrapped(io.ErrUnexpectedEOF), true, false, policy.Transient},
		{"500 INTERNAL", restError(t, 500, "INTERNAL", "internal error"), true, false, policy.Transient},
		{"502 from a proxy", apiErr(502, "Bad Gateway"), true, false, policy.Transient},
		{"504 DEADLINE_EXCEEDED", restError(t, 504, "DEADLINE_EXCEEDED", "deadline"), true, false, policy.Transient},
		{"503 without an envelope", apiErr(503, "<html>Service Unavailable</html>"), true, false, policy.Transient},
		{"503 with an envelope without status", apiErr(503, `{"error": {"code": 503, "message": "m"}}`), true, false, policy.Transient},
		{"503 whose envelope says INTERNAL", apiErr(503, envelope(503, "INTERNAL")), true, false, policy.Transient},
		{"500 whose envelope says UNAVAILABLE", apiErr(500, envelope(500, "UNAVAILABLE")), true, false, policy.Transient},
		{"408 request timeout", apiErr(408, envelope(408, "DEADLINE_EXCEEDED")), true, false, policy.Transient},
		{"499 client closed request", apiErr(499, envelope(499, "CANCELLED")), true, false, policy.Transient},
		{"gRPC UNAVAILABLE", status.Error(codes.Unavailable, "connection lost"), true, false, policy.Transient},
		{"gRPC DEADLINE_EXCEEDED", status.Error(codes.DeadlineExceeded, "deadline"), true, false, policy.Transient},
		{"answer without an operation name", errors.New("the server answered without an operation name"), true, false, policy.Transient},
		{"answer that does not decode", submitWrapped(errors.New("proto: syntax error (line 1:1): unexpected token")), true, false, policy.Transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := policy.ClassifySubmit(tc.err)
			if f.MaybeStarted != tc.maybeStarted || f.Retry() != tc.retry || f.Kind != tc.kind {
				t.Errorf("ClassifySubmit(%v) = maybeStarted %v, retry %v, kind %s; want %v, %v, %s",
					tc.err, f.MaybeStarted, f.Retry(), f.Kind, tc.maybeStarted, tc.retry, tc.kind)
			}
			if f.Failure != policy.Classify(tc.err) {
				t.Errorf("Failure = %+v, want Classify's %+v", f.Failure, policy.Classify(tc.err))
			}
		})
	}
}

// TestClassifySubmitKeepsRetryAfter: the server's RetryInfo delay of a 429 survives, so the
// caller can wait it out before the next attempt.
func TestClassifySubmitKeepsRetryAfter(t *testing.T) {
	f := policy.ClassifySubmit(submitWrapped(restError(t, 429, "RESOURCE_EXHAUSTED", "quota", retryInfo)))
	if f.RetryAfter != 3500*time.Millisecond || f.MaybeStarted || !f.Retry() {
		t.Errorf("ClassifySubmit = %+v, want RetryAfter 3.5s, not started, retry", f)
	}
}

func httpResponse(code int) *http.Response { return &http.Response{StatusCode: code} }
