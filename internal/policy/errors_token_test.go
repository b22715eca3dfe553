package policy_test

import (
	"fmt"
	"net/http"
	"testing"

	"cloud.google.com/go/auth"
	"golang.org/x/oauth2"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestClassifyTokenEndpointAnswers(t *testing.T) {
	resp := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	tests := []struct {
		name string
		err  error
		want policy.FailureKind
	}{
		{"oauth2 invalid_grant", &oauth2.RetrieveError{Response: resp(400), ErrorCode: "invalid_grant"}, policy.Auth},
		{"oauth2 unauthorized wrapped", fmt.Errorf("get operation x: %w", &oauth2.RetrieveError{Response: resp(401)}), policy.Auth},
		{"oauth2 outage", &oauth2.RetrieveError{Response: resp(503)}, policy.Transient},
		{"auth invalid_grant", &auth.Error{Response: resp(400)}, policy.Auth},
		{"auth outage wrapped", fmt.Errorf("x: %w", &auth.Error{Response: resp(500)}), policy.Transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.Classify(tc.err); got.Kind != tc.want {
				t.Errorf("Kind = %s, want %s (%s)", got.Kind, tc.want, got)
			}
		})
	}
}
