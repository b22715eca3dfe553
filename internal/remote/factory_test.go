package remote

import (
	"context"
	"errors"
	"strings"
	"testing"

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
