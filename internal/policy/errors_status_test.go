package policy_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// rawHTTPError is the error the REST transport builds for any non-2xx answer, with the body as
// it came (a proxy's HTML page, an envelope without status ...).
func rawHTTPError(t *testing.T, httpCode int, body string) *googleapi.Error {
	t.Helper()
	err := googleapi.CheckResponse(&http.Response{
		StatusCode: httpCode,
		Header:     http.Header{"Content-Type": []string{"application/json; charset=UTF-8"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	})
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("CheckResponse(%d) = %v, want a *googleapi.Error", httpCode, err)
	}
	return gerr
}

// TestClassifyByEnvelopeStatusThenHTTPCode: the REST stack maps 408, 499 and other unlisted
// 4xx to FAILED_PRECONDITION, which would make a cancel answered 499 "unsupported" for good.
// The envelope's status decides; without a usable one, 408 and 499 mean what they say.
func TestClassifyByEnvelopeStatusThenHTTPCode(t *testing.T) {
	envelope := func(code int, status string) string {
		if status == "" {
			return fmt.Sprintf(`{"error": {"code": %d, "message": "m"}}`, code)
		}
		return fmt.Sprintf(`{"error": {"code": %d, "message": "m", "status": %q}}`, code, status)
	}
	tests := []struct {
		name     string
		httpCode int
		body     string
		kind     policy.FailureKind
		code     codes.Code
	}{
		{"499 CANCELLED", 499, envelope(499, "CANCELLED"), policy.Transient, codes.Canceled},
		{"499 without status", 499, envelope(499, ""), policy.Transient, codes.Canceled},
		{"499 from a proxy, not JSON", 499, "<html>client closed request</html>", policy.Transient, codes.Canceled},
		{"499 with an unknown status", 499, envelope(499, "CLIENT_GONE"), policy.Transient, codes.Canceled},
		{"499 that says OK", 499, envelope(499, "OK"), policy.Transient, codes.Canceled},
		{"408 DEADLINE_EXCEEDED", 408, envelope(408, "DEADLINE_EXCEEDED"), policy.Transient, codes.DeadlineExceeded},
		{"408 without status", 408, envelope(408, ""), policy.Transient, codes.DeadlineExceeded},
		{"408 from a proxy, not JSON", 408, "<html>Request Timeout</html>", policy.Transient, codes.DeadlineExceeded},
		{"the status wins over the HTTP code", 400, envelope(400, "UNAVAILABLE"), policy.Transient, codes.Unavailable},
		{"400 FAILED_PRECONDITION", 400, envelope(400, "FAILED_PRECONDITION"), policy.Rejected, codes.FailedPrecondition},
		{"418 without status keeps the stack's code", 418, envelope(418, ""), policy.Rejected, codes.FailedPrecondition},
		{"503 from a proxy, not JSON", 503, "<html>unavailable</html>", policy.Transient, codes.Unavailable},
		{"502 without status", 502, "Bad Gateway", policy.Transient, codes.Internal},
	}
	for _, tc := range tests {
		forms := map[string]func() error{
			"googleapi.Error":         func() error { return rawHTTPError(t, tc.httpCode, tc.body) },
			"wrapped googleapi.Error": func() error { return wrapped(rawHTTPError(t, tc.httpCode, tc.body)) },
			"official client's APIError, wrapped": func() error {
				ae, ok := apierror.FromError(rawHTTPError(t, tc.httpCode, tc.body))
				if !ok {
					t.Fatal("apierror.FromError did not parse the googleapi.Error")
				}
				return wrapped(ae)
			},
		}
		for form, build := range forms {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				f := policy.Classify(build())
				if f.Kind != tc.kind || f.Code != tc.code {
					t.Errorf("Classify = %v/%v, want %v/%v (%s)", f.Kind, f.Code, tc.kind, tc.code, f)
				}
			})
		}
	}
}

// TestCancelAnswered499IsRetried: the outcome the controller records for a cancel. A 499 is not
// an answer about cancel support, so the cancel stays pending.
func TestCancelAnswered499IsRetried(t *testing.T) {
	for _, httpCode := range []int{499, 408} {
		for _, body := range []string{
			fmt.Sprintf(`{"error": {"code": %d, "message": "m", "status": %q}}`, httpCode, map[int]string{499: "CANCELLED", 408: "DEADLINE_EXCEEDED"}[httpCode]),
			fmt.Sprintf(`{"error": {"code": %d, "message": "m"}}`, httpCode),
		} {
			ae, _ := apierror.FromError(rawHTTPError(t, httpCode, body))
			if outcome, msg, answered := policy.CancelOutcome(wrapped(ae)); answered {
				t.Errorf("HTTP %d %s: CancelOutcome = %s %q, want a cancel still pending", httpCode, body, outcome, msg)
			}
		}
	}
}
