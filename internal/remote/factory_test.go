package remote

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestSecretCredentialTypes(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"not json", `{`, "not valid JSON"},
		{"external account", `{"type":"external_account","audience":"x","subject_token_type":"t","token_url":"https://example.invalid/token","credential_source":{"file":"/var/run/secrets/kubernetes.io/serviceaccount/token"}}`, `"external_account" are not accepted`},
		{"impersonation", `{"type":"impersonated_service_account"}`, "not accepted"},
		{"user login", `{"type":"authorized_user","client_id":"a","client_secret":"b","refresh_token":"c"}`, "not accepted"},
		{"no email", `{"type":"service_account","private_key":"nope"}`, "no client_email"},
		{"broken key", `{"type":"service_account","private_key":"nope","client_email":"a@b"}`, "not PEM-encoded"},
		{"bad pem", `{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n","client_email":"a@b"}`, "cannot be parsed"},
	}
	f := NewFactory(context.Background(), Config{Endpoint: "http://127.0.0.1:1"}, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.For(Credentials{JSON: []byte(tc.json)})
			var ce *policy.CredentialsError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want a CredentialsError containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientsAreReusedPerCredential(t *testing.T) {
	f := NewFactory(context.Background(), Config{EmulatorHost: "127.0.0.1:1"}, nil)
	a, err := f.For(Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.For(Credentials{JSON: []byte(`{"type":"service_account"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("the emulator convention ignores credentials, so one client serves all")
	}
	if got := f.Endpoint(); got != "http://127.0.0.1:1" {
		t.Errorf("Endpoint = %q", got)
	}
}

// countingServer stands for whatever a tenant could aim the operator at: it answers every
// request with something worth reading back, and counts them.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"internal data"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// keyWith returns a well-formed service-account key for Google's token endpoint with its
// fields replaced (a nil value removes the field).
func keyWith(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	raw, err := emulator.NewServiceAccountKey("http://127.0.0.1:1", "tenant@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["token_uri"] = "https://oauth2.googleapis.com/token"
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUntrustedTokenURIIsRefusedBeforeAnyRequest: a key from a Secret names the URL the oauth2
// library POSTs a signed assertion to. One that is not a trusted token endpoint is refused
// when the client is built, and nothing reaches it, not even when a read is attempted.
func TestUntrustedTokenURIIsRefusedBeforeAnyRequest(t *testing.T) {
	evil, hits := countingServer(t)
	trusted := evil.URL + "/token"
	tests := []struct {
		name     string
		tokenURI string
	}{
		{"another host", evil.URL + "/x"},
		{"a trusted URL as prefix", trusted + "x"},
		{"a trusted URL plus a path", trusted + "/more"},
		{"a trusted URL through dot segments", evil.URL + "/x/../token"},
		{"a trusted URL with a query", trusted + "?next=1"},
		{"a trusted URL with user info", strings.Replace(trusted, "http://", "http://user@", 1)},
		{"a trusted URL over another scheme", strings.Replace(trusted, "http://", "https://", 1)},
		{"Google's host as user info", strings.Replace(evil.URL, "http://", "http://oauth2.googleapis.com@", 1) + "/token"},
		{"Google's endpoint in the query", evil.URL + "/?https://oauth2.googleapis.com/token"},
	}
	f := NewFactory(context.Background(), Config{Endpoint: "http://127.0.0.1:1", Timeout: 5 * time.Second,
		TrustedTokenURIs: []string{trusted}}, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := f.For(Credentials{JSON: keyWith(t, map[string]any{"token_uri": tc.tokenURI})})
			if err == nil {
				_, getErr := ops.Get(context.Background(), "projects/p/locations/global/operations/1")
				t.Fatalf("the key was accepted; a read then sent %d requests to %s (%v)", hits.Load(), tc.tokenURI, getErr)
			}
			var ce *policy.CredentialsError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "token_uri") || !strings.Contains(err.Error(), "--trusted-token-uris") {
				t.Errorf("err = %v, want a CredentialsError naming token_uri and the flag", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the message shows the key: %v", err)
			}
			if got := policy.Classify(err); got.Kind != policy.Auth {
				t.Errorf("Classify = %s, want Auth", got.Kind)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted endpoint got %d requests, want 0", n)
	}
}

// TestTrustedTokenURIs: which spellings count as a trusted endpoint. Only building the client
// is tested here: nothing is sent until a call needs a token.
func TestTrustedTokenURIs(t *testing.T) {
	f := NewFactory(context.Background(), Config{Endpoint: "http://127.0.0.1:1",
		TrustedTokenURIs: []string{"http://127.0.0.1:8085/emulator/v1/token", "https://[::1]:8443/token"}}, nil)
	tests := []struct {
		name   string
		fields map[string]any
		ok     bool
	}{
		{"Google's endpoint", map[string]any{"token_uri": "https://oauth2.googleapis.com/token"}, true},
		{"Google's endpoint, other case and default port", map[string]any{"token_uri": "HTTPS://OAuth2.GoogleAPIs.com:443/token"}, true},
		{"no token_uri: the library uses Google's endpoint", map[string]any{"token_uri": nil}, true},
		{"an operator-trusted endpoint", map[string]any{"token_uri": "http://127.0.0.1:8085/emulator/v1/token"}, true},
		{"an operator-trusted IPv6 endpoint", map[string]any{"token_uri": "https://[::1]:8443/token"}, true},
		{"the default universe", map[string]any{"universe_domain": "googleapis.com"}, true},
		{"Google's host, another path", map[string]any{"token_uri": "https://oauth2.googleapis.com/token/"}, false},
		{"Google's path, another case", map[string]any{"token_uri": "https://oauth2.googleapis.com/Token"}, false},
		{"Google's endpoint over http", map[string]any{"token_uri": "http://oauth2.googleapis.com/token"}, false},
		{"Google's endpoint, another port", map[string]any{"token_uri": "https://oauth2.googleapis.com:8443/token"}, false},
		{"Google's endpoint with a fragment", map[string]any{"token_uri": "https://oauth2.googleapis.com/token#x"}, false},
		{"a look-alike host", map[string]any{"token_uri": "https://oauth2.googleapis.com.example/token"}, false},
		{"the mTLS endpoint", map[string]any{"token_uri": "https://oauth2.mtls.googleapis.com/token"}, false},
		{"no scheme", map[string]any{"token_uri": "//oauth2.googleapis.com/token"}, false},
		{"a file", map[string]any{"token_uri": "file:///etc/passwd"}, false},
		{"an operator-trusted endpoint, other port", map[string]any{"token_uri": "http://127.0.0.1:8086/emulator/v1/token"}, false},
		{"another universe", map[string]any{"universe_domain": "example.com"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.For(Credentials{JSON: keyWith(t, tc.fields)})
			if tc.ok && err != nil {
				t.Fatalf("For = %v, want the key accepted", err)
			}
			var ce *policy.CredentialsError
			if !tc.ok && !errors.As(err, &ce) {
				t.Fatalf("For = %v, want a CredentialsError", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		uris []string
		ok   bool
	}{
		{nil, true},
		{[]string{"http://127.0.0.1:8085/emulator/v1/token", "https://sts.example.com/v1/token"}, true},
		{[]string{"127.0.0.1:8085/token"}, false},
		{[]string{"https://example.com/token?x=1"}, false},
		{[]string{"ftp://example.com/token"}, false},
	} {
		if err := (Config{TrustedTokenURIs: tc.uris}).Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.uris, err, tc.ok)
		}
	}
}
