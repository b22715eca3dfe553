package remote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// headerLog records the headers of the Google-facing requests that reach the emulator.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/emulator/v1/token" {
			l.mu.Lock()
			l.seen = append(l.seen, r.Header.Clone())
			l.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (l *headerLog) last(t *testing.T) http.Header {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		t.Fatal("no request reached the API")
	}
	return l.seen[len(l.seen)-1]
}

// TestRequestHeadersOnTheWire runs the real credential flows (ADC from a key file, and a key
// from a Secret) against the emulator's token endpoint, and checks what each request, Get,
// Cancel and Submit, carries: the identity's token, the operator's User-Agent, and x-goog-user-project
// only for the operator's own identity.
func TestRequestHeadersOnTheWire(t *testing.T) {
	const (
		operatorAccount = "operator@ops-project.iam.gserviceaccount.com"
		tenantAccount   = "tenant@tenant-project.iam.gserviceaccount.com"
		quotaProject    = "billing-project"
	)
	emu := emulator.New(emulator.Options{
		RequireToken:   true,
		AcceptedTokens: []string{emulator.TokenFor(operatorAccount), emulator.TokenFor(tenantAccount)},
	})
	var log headerLog
	srv := httptest.NewServer(log.wrap(emu))
	t.Cleanup(srv.Close)

	ctx := context.Background()
	admin := &emulator.AdminClient{BaseURL: srv.URL}
	name, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	key := func(email string) []byte {
		k, err := emulator.NewServiceAccountKey(srv.URL, email)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	adcFile := filepath.Join(t.TempDir(), "adc.json")
	if err := os.WriteFile(adcFile, key(operatorAccount), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", adcFile)

	f := NewFactory(ctx, Config{Endpoint: srv.URL, QuotaProject: quotaProject, UserAgent: "routeopt-operator/test",
		TrustedTokenURIs: []string{emulator.TokenURL(srv.URL)}}, nil)
	tests := []struct {
		name      string
		creds     Credentials
		wantToken string
		wantQuota string
	}{
		{"operator's ADC bills the quota project", Credentials{}, emulator.TokenFor(operatorAccount), quotaProject},
		{"a tenant's key bills its own project", Credentials{JSON: key(tenantAccount)}, emulator.TokenFor(tenantAccount), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := f.For(tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := f.SubmitterFor(tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			calls := []struct {
				method string
				call   func() error
			}{
				{"Get", func() error { _, err := ops.Get(ctx, name); return err }},
				{"Cancel", func() error { return ops.Cancel(ctx, name) }},
				{"Submit", func() error {
					_, err := sub.Submit(ctx, built(t, submit.MethodOptimizeToursURI).Message)
					return err
				}},
			}
			for _, c := range calls {
				if err := c.call(); err != nil {
					t.Fatalf("%s: %v", c.method, err)
				}
				h := log.last(t)
				if got, want := h.Get("Authorization"), "Bearer "+tc.wantToken; got != want {
					t.Errorf("%s: Authorization = %q, want %q", c.method, got, want)
				}
				if got := h.Get("X-Goog-User-Project"); got != tc.wantQuota {
					t.Errorf("%s: x-goog-user-project = %q, want %q", c.method, got, tc.wantQuota)
				}
				if got, want := h.Get("User-Agent"), "routeopt-operator/test"; got != want {
					t.Errorf("%s: User-Agent = %q, want %q", c.method, got, want)
				}
			}
		})
	}
}
