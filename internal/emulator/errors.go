package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// serviceName is the service identity Google puts in ErrorInfo metadata.
const serviceName = "routeoptimization.googleapis.com"

// apiError is an error answered in the AIP-193 envelope. Details must be
// google.rpc.* messages only: the Go REST stack drops every detail of an
// error as soon as one of them has a type URL it cannot resolve.
type apiError struct {
	code    codes.Code
	message string
	details []proto.Message
	header  http.Header
	// httpCode, when set, replaces the HTTP status of code (only injected faults set it).
	httpCode int
	// noStatus leaves the envelope's status out, as a proxy's answer may.
	noStatus bool
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: %s", statusName(e.code), e.message)
}

func newError(c codes.Code, format string, args ...any) *apiError {
	return &apiError{code: c, message: fmt.Sprintf(format, args...)}
}

func (e *apiError) withDetails(d ...proto.Message) *apiError {
	e.details = append(e.details, d...)
	return e
}

func (e *apiError) withHeader(key, value string) *apiError {
	if e.header == nil {
		e.header = http.Header{}
	}
	e.header.Set(key, value)
	return e
}

// statusName is the google.rpc.Code enum name ("NOT_FOUND"), which is what
// the envelope's "status" field carries (grpc's codes.Code.String() is
// CamelCase and would not round-trip).
func statusName(c codes.Code) string {
	if n, ok := code.Code_name[int32(c)]; ok {
		return n
	}
	return "UNKNOWN"
}

// status is the HTTP status of the answer.
func (e *apiError) status() int {
	if e.httpCode != 0 {
		return e.httpCode
	}
	return httpStatus(e.code)
}

// httpStatus maps a canonical code to the HTTP status Google's frontends use.
//
// CANCELLED is deliberately not 499 here: the Go REST stack derives the gRPC
// code from the HTTP status alone and turns 499 into FailedPrecondition, so a
// client that does not read the envelope's status would misread it. The
// emulator's own answers never carry CANCELLED (a cancelled operation carries
// code 1 inside Operation.error instead); only the injected "cancelled" fault
// answers 499, on purpose.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	default: // Canceled, Unknown, Internal, DataLoss
		return http.StatusInternalServerError
	}
}

// envelope is the AIP-193 JSON error body. Field set and order follow what
// Google's frontends send; the Go REST stack parses it with a strict protojson
// decoder, so no other fields may appear here.
type envelope struct {
	Error envelopeError `json:"error"`
}

type envelopeError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	// Status is empty only in injected answers without a status.
	Status  string            `json:"status,omitempty"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// encode renders the error body. Details go through protojson as Any so that
// their JSON carries the canonical "@type" and field names.
func (e *apiError) encode() []byte {
	env := envelope{Error: envelopeError{
		Code:    e.status(),
		Message: e.message,
		Status:  statusName(e.code),
	}}
	if e.noStatus {
		env.Error.Status = ""
	}
	for _, d := range e.details {
		a, err := anypb.New(d)
		if err != nil {
			continue // cannot happen for registered google.rpc types
		}
		b, err := protojson.Marshal(a)
		if err != nil {
			continue
		}
		env.Error.Details = append(env.Error.Details, b)
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		// Only RawMessage values can fail, and those came from protojson.
		return []byte(`{"error":{"code":500,"message":"error encoding failed","status":"INTERNAL"}}`)
	}
	return append(b, '\n')
}

func writeError(w http.ResponseWriter, e *apiError) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.status(), e.encode())
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorInfo builds the google.rpc.ErrorInfo Google attaches to most errors.
func errorInfo(reason, domain string, metadata map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: metadata}
}

// Canned errors with the messages and details Google's frontends use.

func errUnavailable(method string) *apiError {
	return newError(codes.Unavailable, "The service is currently unavailable.")
}

func errInternal(method string) *apiError {
	return newError(codes.Internal, "Internal error encountered.")
}

func errResourceExhausted(method string, retryDelay time.Duration) *apiError {
	return newError(codes.ResourceExhausted,
		"Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service '%s'.", serviceName).
		withDetails(
			errorInfo("RATE_LIMIT_EXCEEDED", "googleapis.com", map[string]string{
				"service":      serviceName,
				"quota_metric": serviceName + "/requests",
				"method":       rpcName(method),
			}),
			&errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay)},
		)
}

// errRequestCancelled is HTTP 499, CANCELLED in Google's mapping: a frontend or
// proxy gave up on the request (the client went away, or a hop's deadline
// passed). Nothing about the operation or the method is implied.
func errRequestCancelled(method string, noStatus bool) *apiError {
	e := newError(codes.Canceled, "The request was cancelled before %s completed.", rpcName(method))
	e.httpCode, e.noStatus = statusClientClosedRequest, noStatus
	return e
}

// errRequestTimeout is HTTP 408: the request did not complete in time on its
// way to the service. Its envelope says DEADLINE_EXCEEDED, the code of a call
// that ran out of time.
func errRequestTimeout(method string, noStatus bool) *apiError {
	e := newError(codes.DeadlineExceeded, "The request timed out before %s completed.", rpcName(method))
	e.httpCode, e.noStatus = http.StatusRequestTimeout, noStatus
	return e
}

// statusClientClosedRequest is the HTTP status of CANCELLED in Google's
// mapping; net/http has no name for it.
const statusClientClosedRequest = 499

func errUnauthenticated(method string) *apiError {
	return newError(codes.Unauthenticated,
		"Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.").
		withDetails(errorInfo("CREDENTIALS_MISSING", "googleapis.com", map[string]string{
			"service": serviceName,
			"method":  rpcName(method),
		})).
		withHeader("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
}

func errPermissionDenied(method string) *apiError {
	return newError(codes.PermissionDenied, "The caller does not have permission").
		withDetails(errorInfo("IAM_PERMISSION_DENIED", "googleapis.com", map[string]string{
			"service": serviceName,
			"method":  rpcName(method),
		}))
}

func errNotFound(name string) *apiError {
	return newError(codes.NotFound, "Operation %s not found.", name)
}

// errBadField is an INVALID_ARGUMENT with a google.rpc.BadRequest detail
// naming the offending field.
func errBadField(field, description string) *apiError {
	return newError(codes.InvalidArgument, "Invalid value at '%s': %s", field, description).
		withDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: field, Description: description},
		}})
}
