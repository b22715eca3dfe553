package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// TestFailureMessageIsBounded: whatever a server or a library says, Message is valid UTF-8 of
// at most MaxMessageBytes, and String keeps its "NAME (code n): message" form.
func TestFailureMessageIsBounded(t *testing.T) {
	// Multi-byte runes across the cut; local errors also carry bytes that are not UTF-8.
	long := strings.Repeat("é€x", 100_000)
	invalid := strings.Repeat("é€\xff", 100_000)
	ae, ok := apierror.FromError(googleapiError(t, 503, "UNAVAILABLE", long))
	if !ok {
		t.Fatal("apierror.FromError failed")
	}
	tests := []struct {
		name string
		err  error
		code codes.Code
	}{
		{"server message", wrapped(ae), codes.Unavailable},
		{"googleapi.Error", googleapiError(t, 404, "NOT_FOUND", long), codes.NotFound},
		{"gRPC status", status.Error(codes.Internal, long), codes.Internal},
		{"local error", errors.New(invalid), codes.Unknown},
		{"credentials error", &policy.CredentialsError{Err: fmt.Errorf("load: %s", invalid)}, codes.Unauthenticated},
		{"short and invalid", errors.New("bad \xff byte"), codes.Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := policy.Classify(tc.err)
			if len(f.Message) > policy.MaxMessageBytes {
				t.Errorf("len(Message) = %d, want at most %d", len(f.Message), policy.MaxMessageBytes)
			}
			if !utf8.ValidString(f.Message) {
				t.Errorf("Message is not valid UTF-8: %q", f.Message[:min(len(f.Message), 64)])
			}
			if f.Code != tc.code {
				t.Errorf("Code = %v, want %v", f.Code, tc.code)
			}
			prefix := fmt.Sprintf("%s (code %d): ", policy.CodeName(int32(tc.code)), int32(tc.code))
			if s := f.String(); !strings.HasPrefix(s, prefix) {
				t.Errorf("String() = %.80q..., want the prefix %q", s, prefix)
			}
		})
	}
	if f := policy.Classify(errors.New("short")); f.Message != "short" {
		t.Errorf("a short message changed: %q", f.Message)
	}
}
