package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/oauth2adapt"
	"github.com/googleapis/gax-go/v2/apierror"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/genproto/googleapis/rpc/code"
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
	// Code is the google.rpc code of the answer: the error envelope's status, else what the
	// HTTP status means (see restCode), else the local error's.
	Code codes.Code
	// Message is the server's message (or the local error's text), valid UTF-8 of at most
	// MaxMessageBytes. A token endpoint's answer is reduced to its HTTP status and OAuth code.
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

// MaxMessageBytes bounds Failure.Message. The text comes from servers and libraries and ends up
// in conditions, events and logs, so no answer may make it arbitrarily long.
const MaxMessageBytes = 1024

// Classify turns an error from the Google client into a Failure. It reads the google.rpc code
// of the answer (the envelope's status, else what the HTTP status means), and the RetryInfo
// detail, which gax does not honour by itself. Message is valid UTF-8 of at most
// MaxMessageBytes.
func Classify(err error) Failure {
	f := classify(err)
	f.Message = Bound(f.Message, MaxMessageBytes)
	return f
}

func classify(err error) Failure {
	var credErr *CredentialsError
	if errors.As(err, &credErr) {
		return Failure{Kind: Auth, Code: codes.Unauthenticated, Message: credErr.Error()}
	}
	if te, ok := tokenError(err); ok {
		return te.failure()
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
		if c, ok := restCode(ae); ok {
			f.Code = c
		}
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

// restCode is the google.rpc code of an HTTP answer. The REST stack derives its code from the
// HTTP status alone and maps every status it does not list to FAILED_PRECONDITION (4xx) or
// INTERNAL (5xx): a 499 CANCELLED or a 408 would then look permanent. The AIP-193 envelope
// names the code itself in error.status, so that comes first; 408 and 499 without a usable
// status are read as what they mean. ok is false when neither applies (a gRPC error, or
// another status without an envelope), and the stack's code stands.
func restCode(ae *apierror.APIError) (codes.Code, bool) {
	httpCode := ae.HTTPCode()
	if httpCode < 0 {
		return 0, false
	}
	var herr *googleapi.Error
	if errors.As(ae, &herr) {
		if c, ok := envelopeStatus(herr.Body); ok {
			return c, true
		}
	}
	switch httpCode {
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded, true
	case statusClientClosedRequest:
		return codes.Canceled, true
	}
	return 0, false
}

// statusClientClosedRequest is the HTTP status of CANCELLED in Google's mapping (net/http has
// no name for it).
const statusClientClosedRequest = 499

// envelopeStatus reads error.status of an AIP-193 body. gax parses the envelope too, but keeps
// the result internal (its apierror exposes only the code mapped from the HTTP status), so
// the one field is decoded here. OK and unknown names are not usable: an error answer that
// says OK, or a name this build does not know, says nothing about what to do.
func envelopeStatus(body string) (codes.Code, bool) {
	var env struct {
		Error struct {
			Status string `json:"status"`
		} `json:"error"`
	}
	if body == "" || json.Unmarshal([]byte(body), &env) != nil {
		return 0, false
	}
	v, ok := code.Code_value[env.Error.Status]
	if !ok || v == int32(code.Code_OK) {
		return 0, false
	}
	return codes.Code(v), true
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
		// errors without a status: the server or the path to it may recover. CANCELLED as the
		// answer to a call (HTTP 499) means the request was abandoned on the way, not that the
		// operation was cancelled (that is error.code 1 inside a read operation).
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

// tokenFailure is a token endpoint's answer, reduced to what may be shown: the HTTP status and
// the OAuth error code. The body and the error_description are never kept: the endpoint is
// named by the credentials, and whatever it says would be copied into conditions that more
// people can read than the credentials' owner.
type tokenFailure struct {
	httpCode  int    // 0 when there was no response
	oauthCode string // RFC 6749 section 5.2 "error", or empty
}

func (t tokenFailure) failure() Failure {
	// A 4xx is an answer about the credentials (revoked key, deleted or disabled account),
	// except for the two that are about the moment: a timeout and rate limiting.
	refused := t.httpCode >= 400 && t.httpCode < 500 &&
		t.httpCode != http.StatusRequestTimeout && t.httpCode != http.StatusTooManyRequests
	msg := "the token endpoint failed"
	if refused {
		msg = "the token endpoint refused the credentials"
	}
	switch {
	case t.httpCode != 0 && t.oauthCode != "":
		msg += fmt.Sprintf(" (HTTP %d, OAuth error %q)", t.httpCode, t.oauthCode)
	case t.httpCode != 0:
		msg += fmt.Sprintf(" (HTTP %d)", t.httpCode)
	}
	if refused {
		return Failure{Kind: Auth, Code: codes.Unauthenticated, Message: msg}
	}
	return Failure{Kind: Transient, Code: codes.Unknown, Message: msg}
}

// tokenError finds an OAuth2 token endpoint's error answer, whichever auth library produced it.
func tokenError(err error) (tokenFailure, bool) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		c := re.ErrorCode
		if c == "" {
			c = oauthErrorCode(re.Body)
		}
		return tokenFailure{httpCode: statusOf(re.Response), oauthCode: safeOAuthCode(c)}, true
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		return tokenFailure{httpCode: statusOf(ae.Response), oauthCode: safeOAuthCode(oauthErrorCode(ae.Body))}, true
	}
	return tokenFailure{}, false
}

// oauthErrorCode reads RFC 6749's "error" from a token endpoint's body with the parse the auth
// libraries share (oauth2adapt): the JWT flow of golang.org/x/oauth2, which service-account
// keys use, leaves RetrieveError.ErrorCode empty, and auth.Error keeps its code unexported.
func oauthErrorCode(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	e := oauth2adapt.AddRetrieveErrorToAuthError(&auth.Error{Body: body})
	if re, ok := e.Err.(*oauth2.RetrieveError); ok {
		return re.ErrorCode
	}
	return ""
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// oauthCodePattern matches every error code RFC 6749 and the IANA OAuth registry define
// (invalid_grant, unauthorized_client ...). Anything else is not a code, and is dropped rather
// than shown.
var oauthCodePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func safeOAuthCode(c string) string {
	if oauthCodePattern.MatchString(c) {
		return c
	}
	return ""
}
