package emulator_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	routeoptimization "cloud.google.com/go/maps/routeoptimization/apiv1"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// serviceAccountKey returns a service-account key file (JSON) for email with
// a fresh RSA key, whose token_uri is tokenURI.
func serviceAccountKey(t *testing.T, email, tokenURI string) []byte {
	t.Helper()
	b, err := emulator.NewServiceAccountKey(strings.TrimSuffix(tokenURI, "/emulator/v1/token"), email)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServiceAccountTokens runs golang.org/x/oauth2/google's service-account
// flow against the emulator's token endpoint and sends the tokens with the
// longrunning REST client over plain HTTP.
func TestServiceAccountTokens(t *testing.T) {
	const good, other = "operator@demo-project.iam.gserviceaccount.com", "intruder@demo-project.iam.gserviceaccount.com"
	srv := emulator.New(emulator.Options{
		RequireToken:   true,
		AcceptedTokens: []string{emulator.TokenFor(good)},
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx := testContext(t)
	admin := &emulator.AdminClient{BaseURL: hs.URL}
	name, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{})
	if err != nil {
		t.Fatal(err)
	}

	client := func(t *testing.T, opts ...option.ClientOption) *lroauto.OperationsClient {
		t.Helper()
		c, err := lroauto.NewOperationsRESTClient(context.Background(), append(opts, option.WithEndpoint(hs.URL))...)
		if err != nil {
			t.Fatalf("NewOperationsRESTClient: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	withAccount := func(t *testing.T, email string) option.ClientOption {
		t.Helper()
		creds, err := google.CredentialsFromJSONWithType(ctx, serviceAccountKey(t, email, hs.URL+"/emulator/v1/token"), google.ServiceAccount, cloudPlatformScope)
		if err != nil {
			t.Fatalf("CredentialsFromJSONWithType: %v", err)
		}
		tok, err := creds.TokenSource.Token()
		if err != nil {
			t.Fatalf("token from emulator: %v", err)
		}
		if tok.AccessToken != emulator.TokenFor(email) || tok.Type() != "Bearer" {
			t.Fatalf("token = %q (%s), want %q", tok.AccessToken, tok.Type(), emulator.TokenFor(email))
		}
		return option.WithTokenSource(creds.TokenSource)
	}

	tests := []struct {
		name string
		opts func(t *testing.T) []option.ClientOption
		want codes.Code
	}{
		{"accepted account", func(t *testing.T) []option.ClientOption { return []option.ClientOption{withAccount(t, good)} }, codes.OK},
		{"other account", func(t *testing.T) []option.ClientOption { return []option.ClientOption{withAccount(t, other)} }, codes.PermissionDenied},
		{"no token", func(t *testing.T) []option.ClientOption { return []option.ClientOption{option.WithoutAuthentication()} }, codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client(t, tc.opts(t)...).GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("GetOperation: %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

// TestServiceAccountKeyOptions checks that the clients' own credential
// options (the new auth library) also fetch tokens from the key's token_uri
// and send them over plain HTTP.
func TestServiceAccountKeyOptions(t *testing.T) {
	const email = "operator@demo-project.iam.gserviceaccount.com"
	srv := emulator.New(emulator.Options{RequireToken: true, AcceptedTokens: []string{emulator.TokenFor(email)}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx := testContext(t)
	name, err := (&emulator.AdminClient{BaseURL: hs.URL}).CreateOperation(ctx, emulator.CreateOperationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key := serviceAccountKey(t, email, hs.URL+"/emulator/v1/token")
	tests := []struct {
		name string
		opt  option.ClientOption
	}{
		{"WithAuthCredentialsJSON", option.WithAuthCredentialsJSON(option.ServiceAccount, key)},
		{"WithCredentialsJSON", option.WithCredentialsJSON(key)}, //nolint:staticcheck // still widely used
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ro, err := routeoptimization.NewRESTClient(context.Background(), tc.opt, option.WithEndpoint(hs.URL))
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if _, err := ro.OptimizeToursLongRunningOperation(name).Wait(ctx); err != nil {
				t.Fatalf("Wait with %s: %v", tc.name, err)
			}
		})
	}
}
