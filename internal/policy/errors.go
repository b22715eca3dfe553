package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"github.com/googleapis/gax-go/v2/apierror"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FailureKind groups remote errors by what the operator should do about them (AIP-194).
type FailureKind int

const (
	// Transient errors (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, time-outs ...) are retried with
	// exponential backoff and do not change conditions until they last for several minutes.
	Transient FailureKind = iota + 1
	// RateLimited is RESOURCE_EXHAUSTED: the project's quota is spent. Retried after the server's
	// RetryInfo delay (at least MinRateLimitedDelay) and slows the operator's shared budget.
	RateLimited
	// Auth is PERMISSION_DENIED or UNAUTHENTICATED, or credentials that could not be loaded.
	// Retrying does not help until a person changes something.
	Auth
	// NotFound is NOT_FOUND: the operation does not exist (or has expired).
	NotFound
	// Unimplemented is UNIMPLEMENTED: the server does not offer the method.
	Unimplemented
	// Rejected is INVALID_ARGUMENT, FAILED_PRECONDITION and other answers that will not change
	// on retry.
	Rejected
)

// MinRateLimitedDelay is the shortest wait after RESOURCE_EXHAUSTED, as Google's Service Usage
// guidance asks when the server sends no RetryInfo.
const MinRateLimitedDelay = 30 * time.Second

func (k FailureKind) String() string {
	switch k {
	case Transient:
		return "Transient"
	case RateLimited:
		return "RateLimited"
	case Auth:
		return "Auth"
	case NotFound:
		return "NotFound"
	case Unimplemented:
		return "Unimplemented"
	case Rejected:
		return "Rejected"
	}
	return "Unknown"
}

// Permanent reports whether retrying without a change by a person is pointless.
func (k FailureKind) Permanent() bool {
	return k == Auth || k == NotFound || k == Unimplemented || k == Rejected
}

// Failure is a classified remote error.
type Failure struct {
	Kind FailureKind
	// Code is the google.rpc code the client reported.
	Code codes.Code
	// Message is the server's message (or the local error's text).
	Message string
	// RetryAfter is the server's RetryInfo delay, if it sent one.
	RetryAfter time.Duration
}

// String renders the failure for conditions and events: "PERMISSION_DENIED (code 7): msg".
func (f Failure) String() string {
	// Google's messages end with a period; callers add their own sentence after this.
	msg := strings.TrimSuffix(strings.Join(strings.Fields(f.Message), " "), ".")
	return fmt.Sprintf("%s (code %d): %s", CodeName(int32(f.Code)), int32(f.Code), msg)
}

// CredentialsError marks a failure to load credentials (missing secret, missing key, malformed
// JSON). It classifies as Auth.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// Classify turns an error from the Google client into a Failure. It reads the google.rpc code
// the client derived from the HTTP status, and the RetryInfo detail, which gax does not honour
// by itself.
func Classify(err error) Failure {
	var credErr *CredentialsError
	if errors.As(err, &credErr) {
		return Failure{Kind: Auth, Code: codes.Unauthenticated, Message: credErr.Error()}
	}
	// The token endpoint refusing a key (revoked, deleted, disabled account) is an answer
	// about the credentials, not an outage.
	if code, ok := tokenRefused(err); ok {
		return Failure{Kind: Auth, Code: codes.Unauthenticated, Message: fmt.Sprintf(
			"the token endpoint refused the credentials (HTTP %d): %v", code, err)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Failure{Kind: Transient, Code: codes.DeadlineExceeded, Message: err.Error()}
	}
	if errors.Is(err, context.Canceled) {
		return Failure{Kind: Transient, Code: codes.Canceled, Message: err.Error()}
	}
	f := Failure{Code: codes.Unknown, Message: err.Error()}
	// The client returns *apierror.APIError, usually wrapped with context. Parse it afresh
	// only when it is absent: a re-parse of the wrapped text would lose the HTTP details that
	// carry RetryInfo.
	var ae *apierror.APIError
	if !errors.As(err, &ae) {
		ae, _ = apierror.FromError(err)
	}
	if ae != nil {
		f.Code = ae.GRPCStatus().Code()
		if msg := ae.Message(); msg != "" {
			f.Message = msg
		}
		if ri := ae.Details().RetryInfo; ri != nil && ri.GetRetryDelay() != nil {
			f.RetryAfter = ri.GetRetryDelay().AsDuration()
		}
	} else if s, ok := status.FromError(err); ok {
		f.Code = s.Code()
		f.Message = s.Message()
	}
	f.Kind = kindOf(f.Code)
	return f
}

func kindOf(c codes.Code) FailureKind {
	switch c {
	case codes.ResourceExhausted:
		return RateLimited
	case codes.PermissionDenied, codes.Unauthenticated:
		return Auth
	case codes.NotFound:
		return NotFound
	case codes.Unimplemented:
		return Unimplemented
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return Rejected
	default:
		// UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, ABORTED, DATA_LOSS and network
		// errors without a status: the server or the path to it may recover.
		return Transient
	}
}

// codeNames are the google.rpc.Code enum names, as the status field of an error carries them.
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// CodeName returns the google.rpc.Code name of a numeric code ("CODE_42" for unknown ones).
func CodeName(code int32) string {
	if code >= 0 && int(code) < len(codeNames) {
		return codeNames[code]
	}
	return fmt.Sprintf("CODE_%d", code)
}

// tokenRefused reports a 4xx answer of an OAuth2 token endpoint, whichever auth library
// produced it.
func tokenRefused(err error) (int, bool) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return re.Response.StatusCode, true
	}
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil && ae.Response.StatusCode >= 400 && ae.Response.StatusCode < 500 {
		return ae.Response.StatusCode, true
	}
	return 0, false
}
