package policy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

const opName = "projects/p/locations/global/operations/123"

// retryInfo is the AIP-193 detail a server sends with RESOURCE_EXHAUSTED.
const retryInfo = `{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.5s"}`

// errorInfo is a google.rpc detail that carries no retry delay.
const errorInfo = `{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SOME_REASON", "domain": "routeoptimization.googleapis.com"}`

// googleapiError builds the error the REST transport builds for a non-2xx answer: an AIP-193
// envelope read by googleapi.CheckResponse.
func googleapiError(t *testing.T, httpCode int, statusName, msg string, details ...string) *googleapi.Error {
	t.Helper()
	body := fmt.Sprintf(`{"error": {"code": %d, "message": %q, "status": %q, "details": [%s]}}`,
		httpCode, msg, statusName, strings.Join(details, ","))
	resp := &http.Response{
		StatusCode: httpCode,
		Header:     http.Header{"Content-Type": []string{"application/json; charset=UTF-8"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
	err := googleapi.CheckResponse(resp)
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("CheckResponse(%d) = %v, want a *googleapi.Error", httpCode, err)
	}
	if gerr.Code != httpCode || gerr.Message != msg {
		t.Fatalf("CheckResponse(%d) gave code %d message %q", httpCode, gerr.Code, gerr.Message)
	}
	return gerr
}

// restError is what the official REST client returns: gax turns the googleapi.Error into an
// *apierror.APIError.
func restError(t *testing.T, httpCode int, statusName, msg string, details ...string) *apierror.APIError {
	t.Helper()
	ae, ok := apierror.FromError(googleapiError(t, httpCode, statusName, msg, details...))
	if !ok {
		t.Fatalf("apierror.FromError did not parse the googleapi.Error for %d", httpCode)
	}
	return ae
}

// wrapped is how internal/remote reports a failed GetOperation.
func wrapped(err error) error { return fmt.Errorf("get operation %s: %w", opName, err) }

func grpcWithRetry(t *testing.T, c codes.Code, msg string, delay time.Duration) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

type classifyCase struct {
	name string
	err  error
	kind policy.FailureKind
	code codes.Code
	// msg is the exact Message; msgContains is used instead when msg is empty.
	msg         string
	msgContains string
	retryAfter  time.Duration
	permanent   bool
}

func checkClassify(t *testing.T, tc classifyCase) {
	t.Helper()
	f := policy.Classify(tc.err)
	if f.Kind != tc.kind {
		t.Errorf("Kind = %v, want %v", f.Kind, tc.kind)
	}
	if f.Code != tc.code {
		t.Errorf("Code = %v, want %v", f.Code, tc.code)
	}
	if tc.msg != "" && f.Message != tc.msg {
		t.Errorf("Message = %q, want %q", f.Message, tc.msg)
	}
	if tc.msgContains != "" && !strings.Contains(f.Message, tc.msgContains) {
		t.Errorf("Message = %q, want it to contain %q", f.Message, tc.msgContains)
	}
	if f.RetryAfter != tc.retryAfter {
		t.Errorf("RetryAfter = %v, want %v", f.RetryAfter, tc.retryAfter)
	}
	if f.Kind.Permanent() != tc.permanent {
		t.Errorf("Kind.Permanent() = %v, want %v", f.Kind.Permanent(), tc.permanent)
	}
}

// restCases are the answers the Route Optimization REST surface can give, as HTTP status plus
// AIP-193 body. The google.rpc code is the body's status, which the HTTP status only
// approximates (502 with UNKNOWN, 499 with CANCELLED, 408 ...).
type restCase struct {
	httpCode   int
	statusName string
	msg        string
	details    []string
	kind       policy.FailureKind
	code       codes.Code
	retryAfter time.Duration
	permanent  bool
}

var restCases = []restCase{
	{404, "NOT_FOUND", "Operation projects/p/locations/global/operations/123 not found.", nil, policy.NotFound, codes.NotFound, 0, true},
	{403, "PERMISSION_DENIED", "The caller does not have permission", []string{errorInfo}, policy.Auth, codes.PermissionDenied, 0, true},
	{401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", nil, policy.Auth, codes.Unauthenticated, 0, true},
	{429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'GetOperation requests'.", []string{errorInfo, retryInfo}, policy.RateLimited, codes.ResourceExhausted, 3500 * time.Millisecond, false},
	{429, "RESOURCE_EXHAUSTED", "Quota exceeded, no retry info.", nil, policy.RateLimited, codes.ResourceExhausted, 0, false},
	{501, "UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled.", nil, policy.Unimplemented, codes.Unimplemented, 0, true},
	{503, "UNAVAILABLE", "The service is currently unavailable.", []string{retryInfo}, policy.Transient, codes.Unavailable, 3500 * time.Millisecond, false},
	{500, "INTERNAL", "Internal error encountered.", nil, policy.Transient, codes.Internal, 0, false},
	{400, "INVALID_ARGUMENT", "Invalid resource field value in the request.", nil, policy.Rejected, codes.InvalidArgument, 0, true},
	{409, "ABORTED", "The operation was aborted.", nil, policy.Transient, codes.Aborted, 0, false},
	{412, "FAILED_PRECONDITION", "Precondition check failed.", nil, policy.Rejected, codes.FailedPrecondition, 0, true},
	{416, "OUT_OF_RANGE", "Out of range.", nil, policy.Rejected, codes.OutOfRange, 0, true},
	{504, "DEADLINE_EXCEEDED", "Deadline exceeded.", nil, policy.Transient, codes.DeadlineExceeded, 0, false},
	{502, "UNKNOWN", "Bad gateway.", nil, policy.Transient, codes.Unknown, 0, false},
	{499, "CANCELLED", "The request was cancelled.", nil, policy.Transient, codes.Canceled, 0, false},
	{408, "DEADLINE_EXCEEDED", "The request timed out.", nil, policy.Transient, codes.DeadlineExceeded, 0, false},
	{400, "FAILED_PRECONDITION", "The operation is not in a state to be cancelled.", nil, policy.Rejected, codes.FailedPrecondition, 0, true},
}

// TestClassifyREST covers googleapi.Error as the REST transport builds it, bare and wrapped.
func TestClassifyREST(t *testing.T) {
	for _, rc := range restCases {
		for _, form := range []string{"googleapi.Error", "wrapped googleapi.Error"} {
			t.Run(fmt.Sprintf("%d %s/%s/details=%d", rc.httpCode, rc.statusName, form, len(rc.details)), func(t *testing.T) {
				err := error(googleapiError(t, rc.httpCode, rc.statusName, rc.msg, rc.details...))
				if form != "googleapi.Error" {
					err = wrapped(err)
				}
				checkClassify(t, classifyCase{err: err, kind: rc.kind, code: rc.code, msg: rc.msg,
					retryAfter: rc.retryAfter, permanent: rc.permanent})
			})
		}
	}
}

// TestClassifyOfficialClientErrorKind covers the error as the controller sees it: the official
// client's *apierror.APIError, bare and wrapped by internal/remote. Kind and code come from the
// envelope's status.
func TestClassifyOfficialClientErrorKind(t *testing.T) {
	for _, rc := range restCases {
		for _, wrap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d %s/wrapped=%v/details=%d", rc.httpCode, rc.statusName, wrap, len(rc.details)), func(t *testing.T) {
				err := error(restError(t, rc.httpCode, rc.statusName, rc.msg, rc.details...))
				if wrap {
					err = wrapped(err)
				}
				f := policy.Classify(err)
				if f.Kind != rc.kind || f.Code != rc.code || f.Kind.Permanent() != rc.permanent {
					t.Errorf("Classify = %v/%v permanent=%v, want %v/%v permanent=%v",
						f.Kind, f.Code, f.Kind.Permanent(), rc.kind, rc.code, rc.permanent)
				}
				if !strings.Contains(f.Message, rc.msg) {
					t.Errorf("Message = %q, want it to contain the server's message %q", f.Message, rc.msg)
				}
			})
		}
	}
}

func TestClassify(t *testing.T) {
	netErr := &url.Error{Op: "Get", URL: "https://routeoptimization.googleapis.com/v1/" + opName,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	credErr := &policy.CredentialsError{Err: errors.New(`secret "sa" has no key "key.json"`)}

	cases := []classifyCase{
		// gRPC status errors.
		{name: "grpc NOT_FOUND", err: status.Error(codes.NotFound, "no such operation"),
			kind: policy.NotFound, code: codes.NotFound, msg: "no such operation", permanent: true},
		{name: "grpc PERMISSION_DENIED", err: status.Error(codes.PermissionDenied, "denied"),
			kind: policy.Auth, code: codes.PermissionDenied, msg: "denied", permanent: true},
		{name: "grpc UNAUTHENTICATED", err: status.Error(codes.Unauthenticated, "bad token"),
			kind: policy.Auth, code: codes.Unauthenticated, msg: "bad token", permanent: true},
		{name: "grpc RESOURCE_EXHAUSTED with RetryInfo", err: grpcWithRetry(t, codes.ResourceExhausted, "quota", 3500*time.Millisecond),
			kind: policy.RateLimited, code: codes.ResourceExhausted, msg: "quota", retryAfter: 3500 * time.Millisecond},
		{name: "grpc RESOURCE_EXHAUSTED without RetryInfo", err: status.Error(codes.ResourceExhausted, "quota"),
			kind: policy.RateLimited, code: codes.ResourceExhausted, msg: "quota"},
		{name: "grpc RESOURCE_EXHAUSTED with RetryInfo wrapped", err: wrapped(grpcWithRetry(t, codes.ResourceExhausted, "quota", 3500*time.Millisecond)),
			kind: policy.RateLimited, code: codes.ResourceExhausted, msgContains: "quota", retryAfter: 3500 * time.Millisecond},
		{name: "grpc RESOURCE_EXHAUSTED with RetryInfo via apierror", err: func() error {
			ae, ok := apierror.FromError(grpcWithRetry(t, codes.ResourceExhausted, "quota", 3500*time.Millisecond))
			if !ok {
				t.Fatal("apierror.FromError failed on a status error")
			}
			return ae
		}(), kind: policy.RateLimited, code: codes.ResourceExhausted, msg: "quota", retryAfter: 3500 * time.Millisecond},
		{name: "grpc UNIMPLEMENTED", err: status.Error(codes.Unimplemented, "cancel is not supported"),
			kind: policy.Unimplemented, code: codes.Unimplemented, msg: "cancel is not supported", permanent: true},
		{name: "grpc UNAVAILABLE", err: status.Error(codes.Unavailable, "try later"),
			kind: policy.Transient, code: codes.Unavailable, msg: "try later"},
		{name: "grpc INTERNAL", err: status.Error(codes.Internal, "oops"),
			kind: policy.Transient, code: codes.Internal, msg: "oops"},
		{name: "grpc UNKNOWN", err: status.Error(codes.Unknown, "?"),
			kind: policy.Transient, code: codes.Unknown, msg: "?"},
		{name: "grpc DEADLINE_EXCEEDED", err: status.Error(codes.DeadlineExceeded, "slow"),
			kind: policy.Transient, code: codes.DeadlineExceeded, msg: "slow"},
		{name: "grpc ABORTED", err: status.Error(codes.Aborted, "conflict"),
			kind: policy.Transient, code: codes.Aborted, msg: "conflict"},
		{name: "grpc DATA_LOSS", err: status.Error(codes.DataLoss, "lost"),
			kind: policy.Transient, code: codes.DataLoss, msg: "lost"},
		{name: "grpc CANCELED", err: status.Error(codes.Canceled, "client went away"),
			kind: policy.Transient, code: codes.Canceled, msg: "client went away"},
		{name: "grpc INVALID_ARGUMENT", err: status.Error(codes.InvalidArgument, "bad name"),
			kind: policy.Rejected, code: codes.InvalidArgument, msg: "bad name", permanent: true},
		{name: "grpc FAILED_PRECONDITION", err: status.Error(codes.FailedPrecondition, "precondition"),
			kind: policy.Rejected, code: codes.FailedPrecondition, msg: "precondition", permanent: true},
		{name: "grpc OUT_OF_RANGE", err: status.Error(codes.OutOfRange, "range"),
			kind: policy.Rejected, code: codes.OutOfRange, msg: "range", permanent: true},
		{name: "grpc ALREADY_EXISTS", err: status.Error(codes.AlreadyExists, "exists"),
			kind: policy.Rejected, code: codes.AlreadyExists, msg: "exists", permanent: true},
		{name: "grpc NOT_FOUND wrapped", err: wrapped(status.Error(codes.NotFound, "gone")),
			kind: policy.NotFound, code: codes.NotFound, msgContains: "gone", permanent: true},

		// Local errors.
		{name: "context deadline", err: context.DeadlineExceeded,
			kind: policy.Transient, code: codes.DeadlineExceeded, msg: context.DeadlineExceeded.Error()},
		{name: "context deadline wrapped", err: wrapped(context.DeadlineExceeded),
			kind: policy.Transient, code: codes.DeadlineExceeded, msg: wrapped(context.DeadlineExceeded).Error()},
		{name: "context deadline inside url.Error", err: wrapped(&url.Error{Op: "Get", URL: "https://x", Err: context.DeadlineExceeded}),
			kind: policy.Transient, code: codes.DeadlineExceeded, msgContains: "context deadline exceeded"},
		{name: "context canceled", err: wrapped(context.Canceled),
			kind: policy.Transient, code: codes.Canceled, msgContains: "context canceled"},
		{name: "credentials error", err: credErr,
			kind: policy.Auth, code: codes.Unauthenticated, msg: `secret "sa" has no key "key.json"`, permanent: true},
		{name: "credentials error wrapped", err: fmt.Errorf("client for %s: %w", opName, credErr),
			kind: policy.Auth, code: codes.Unauthenticated, msg: `secret "sa" has no key "key.json"`, permanent: true},
		{name: "network error", err: wrapped(netErr),
			kind: policy.Transient, code: codes.Unknown, msg: wrapped(netErr).Error()},
		{name: "plain error", err: errors.New("unexpected EOF"),
			kind: policy.Transient, code: codes.Unknown, msg: "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkClassify(t, tc) })
	}
}

func TestFailureKind(t *testing.T) {
	cases := []struct {
		kind      policy.FailureKind
		name      string
		permanent bool
	}{
		{policy.Transient, "Transient", false},
		{policy.RateLimited, "RateLimited", false},
		{policy.Auth, "Auth", true},
		{policy.NotFound, "NotFound", true},
		{policy.Unimplemented, "Unimplemented", true},
		{policy.Rejected, "Rejected", true},
		{policy.FailureKind(0), "Unknown", false},
		{policy.FailureKind(99), "Unknown", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.kind.Permanent(); got != tc.permanent {
				t.Errorf("Permanent() = %v, want %v", got, tc.permanent)
			}
		})
	}
}

func TestFailureString(t *testing.T) {
	cases := []struct {
		f    policy.Failure
		want string
	}{
		{policy.Failure{Kind: policy.Auth, Code: codes.PermissionDenied, Message: "denied"}, "PERMISSION_DENIED (code 7): denied"},
		{policy.Failure{Kind: policy.NotFound, Code: codes.NotFound, Message: "gone"}, "NOT_FOUND (code 5): gone"},
		{policy.Failure{Kind: policy.Transient, Code: codes.Unknown, Message: ""}, "UNKNOWN (code 2): "},
		{policy.Failure{Kind: policy.RateLimited, Code: codes.ResourceExhausted, Message: "quota"}, "RESOURCE_EXHAUSTED (code 8): quota"},
	}
	for _, tc := range cases {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestCodeName(t *testing.T) {
	want := []string{
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	}
	for code, name := range want {
		if got := policy.CodeName(int32(code)); got != name {
			t.Errorf("CodeName(%d) = %q, want %q", code, got, name)
		}
		// The names agree with grpc's codes, which spell CANCELLED with one L.
		if code != 1 && strings.ReplaceAll(strings.ToUpper(codes.Code(code).String()), "_", "") != strings.ReplaceAll(name, "_", "") {
			t.Errorf("CodeName(%d) = %q disagrees with codes.Code(%d) = %v", code, name, code, codes.Code(code))
		}
	}
	for _, tc := range []struct {
		code int32
		want string
	}{
		{-1, "CODE_-1"},
		{17, "CODE_17"},
		{42, "CODE_42"},
		{499, "CODE_499"},
		{-2147483648, "CODE_-2147483648"},
		{2147483647, "CODE_2147483647"},
	} {
		if got := policy.CodeName(tc.code); got != tc.want {
			t.Errorf("CodeName(%d) = %q, want %q", tc.code, got, tc.want)
		}
	}
}
