package policy_test

import (
	"fmt"
	"testing"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// TestClassifyOfficialClientErrorDetails: the official REST client returns *apierror.APIError
// (gax wraps googleapi.Error), and internal/remote wraps that with fmt.Errorf. Classify must
// still report the server's message and its RetryInfo delay.
func TestClassifyOfficialClientErrorDetails(t *testing.T) {
	for _, rc := range restCases {
		for _, wrap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d %s/wrapped=%v/details=%d", rc.httpCode, rc.statusName, wrap, len(rc.details)), func(t *testing.T) {
				err := error(restError(t, rc.httpCode, rc.statusName, rc.msg, rc.details...))
				if wrap {
					err = wrapped(err)
				}
				f := policy.Classify(err)
				if f.RetryAfter != rc.retryAfter {
					t.Errorf("RetryAfter = %v, want %v: the RetryInfo detail of the client's *apierror.APIError is lost "+
						"(Classify re-parses the error with apierror.FromError, which goes through status.FromError and keeps no HTTP details)",
						f.RetryAfter, rc.retryAfter)
				}
				if f.Message != rc.msg {
					t.Errorf("Message = %q, want the server's message %q", f.Message, rc.msg)
				}
			})
		}
	}
}
