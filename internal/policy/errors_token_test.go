package policy_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/oauth2adapt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

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

// secret stands for anything a token endpoint may echo: the assertion, the key id, an internal
// host name. None of it may reach a condition.
const secret = "secret string 0xC0FFEE"

// TestClassifyTokenEndpointBodyIsNotShown drives the real oauth2 JWT flow (and its adaptation to
// cloud.google.com/go/auth, as the REST transport wraps it) against a token endpoint that
// answers 403 with the secret in its body and description: the failure keeps the HTTP status
// and the OAuth error code only.
func TestClassifyTokenEndpointBodyIsNotShown(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		kind      policy.FailureKind
		wantParts []string
	}{
		{"403 invalid_grant", http.StatusForbidden,
			`{"error": "invalid_grant", "error_description": "` + secret + `", "error_uri": "https://` + secret + `"}`,
			policy.Auth, []string{"HTTP 403", `"invalid_grant"`, "refused"}},
		{"403 not JSON", http.StatusForbidden, "<html>" + secret + "</html>", policy.Auth, []string{"HTTP 403"}},
		{"400 with a code that is not a code", http.StatusBadRequest, `{"error": "` + secret + `"}`, policy.Auth, []string{"HTTP 400"}},
		{"503 outage", http.StatusServiceUnavailable, `{"error": "temporarily_unavailable", "error_description": "` + secret + `"}`,
			policy.Transient, []string{"HTTP 503", `"temporarily_unavailable"`}},
		{"429 is not a refusal", http.StatusTooManyRequests, secret, policy.Transient, []string{"HTTP 429"}},
		{"408 is not a refusal", http.StatusRequestTimeout, secret, policy.Transient, []string{"HTTP 408"}},
	}
	key := testKey(t)
	for _, tc := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		t.Cleanup(srv.Close)
		cfg := &jwt.Config{Email: "sa@p.iam.gserviceaccount.com", PrivateKey: key, TokenURL: srv.URL,
			Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"}}
		_, oauthErr := cfg.TokenSource(context.Background()).Token()
		_, authErr := oauth2adapt.TokenProviderFromTokenSource(cfg.TokenSource(context.Background())).Token(context.Background())
		forms := map[string]error{
			"oauth2":                      oauthErr,
			"auth via oauth2adapt":        fmt.Errorf("get operation x: %w", authErr),
			"auth.Error of the auth flow": &auth.Error{Response: &http.Response{StatusCode: tc.status}, Body: []byte(tc.body)},
		}
		for form, err := range forms {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				if err == nil {
					t.Fatal("the token request succeeded")
				}
				f := policy.Classify(err)
				if f.Kind != tc.kind {
					t.Errorf("Kind = %s, want %s (%s)", f.Kind, tc.kind, f)
				}
				for _, s := range []string{f.Message, f.String()} {
					if strings.Contains(s, "0xC0FFEE") || strings.Contains(s, "secret") {
						t.Errorf("message shows the token endpoint's body: %q", s)
					}
				}
				for _, p := range tc.wantParts {
					if !strings.Contains(f.Message, p) {
						t.Errorf("Message = %q, want it to contain %q", f.Message, p)
					}
				}
			})
		}
	}
}

func testKey(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
