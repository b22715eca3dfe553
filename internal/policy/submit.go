package policy

import (
	"errors"
	"net"
	"net/http"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SubmitFailure is a failed submit (BatchOptimizeTours, OptimizeToursLongRunning,
// OptimizeToursUri), classified by what matters for exactly-once: whether the request may have
// started a solve. The Route Optimization API has no request id and no operations.list, so a
// solve started by a request whose answer was lost can never be found; such a request must not
// be sent again without a person's approval.
type SubmitFailure struct {
	// Failure is the error as Classify reads it (kind, code, message, RetryAfter).
	Failure
	// MaybeStarted is true when the request may have reached the server and started a solve:
	// a time-out or a broken connection after the request was sent, an answer that was not
	// read, a 5xx other than an explicit UNAVAILABLE or UNIMPLEMENTED, an answer without an
	// operation name. When false, the server certainly started nothing (it answered with a
	// refusal, or the request never left), and sending it again cannot start a second solve.
	MaybeStarted bool
}

// Retry reports whether sending the request again, after a back-off (at least RetryAfter),
// is the right move: nothing was started and the cause may pass by itself (RESOURCE_EXHAUSTED,
// an explicit UNAVAILABLE, a token endpoint or a connection that failed before the request was
// sent). A permanent failure (INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND ...) waits for a
// change of the spec, the ConfigMap or the credentials; a possibly started one for a person.
func (f SubmitFailure) Retry() bool {
	return !f.MaybeStarted && !f.Kind.Permanent()
}

// ClassifySubmit classifies the error of a submit call. It never guesses in the risky
// direction: an error it cannot place is MaybeStarted.
//
// Certainly not started:
//   - credentials that could not be loaded, and token endpoint failures (the token is fetched
//     before the request is sent);
//   - failures to resolve or connect to the API host (no connection, so nothing was sent);
//   - an HTTP answer 4xx other than 408 and 499 (400 INVALID_ARGUMENT, 401, 403, 404, 409, 429
//     with or without RetryInfo ...): the server refused the request;
//   - HTTP 503 whose body is Google's error envelope with status UNAVAILABLE (AIP-194: the
//     request was not processed), and 501 with status UNIMPLEMENTED.
//
// Possibly started: everything else, in particular context deadlines and cancellations (the
// request may have been sent before the context ended), connection resets and EOF, 408, 499,
// 500, 502, 504, a 503 without the envelope (a proxy's page), and errors after a 2xx answer.
func ClassifySubmit(err error) SubmitFailure {
	f := Classify(err)
	return SubmitFailure{Failure: f, MaybeStarted: maybeStarted(err)}
}

func maybeStarted(err error) bool {
	var credErr *CredentialsError
	if errors.As(err, &credErr) {
		return false
	}
	if _, ok := tokenError(err); ok {
		return false
	}
	if notConnected(err) {
		return false
	}
	var ae *apierror.APIError
	if !errors.As(err, &ae) {
		ae, _ = apierror.FromError(err)
	}
	if ae != nil && ae.HTTPCode() > 0 {
		return !refusedOverHTTP(ae)
	}
	// A gRPC status (the operator uses REST; this is for completeness): only the codes that
	// say the request was refused as a whole.
	if s, ok := status.FromError(err); ok {
		return !refusedCode(s.Code())
	}
	return true
}

// refusedOverHTTP reports whether an HTTP error answer says the request was not processed.
func refusedOverHTTP(ae *apierror.APIError) bool {
	httpCode := ae.HTTPCode()
	switch {
	case httpCode == http.StatusRequestTimeout || httpCode == statusClientClosedRequest:
		// The server or a proxy gave up while the request was on its way or being handled.
		return false
	case httpCode >= 400 && httpCode < 500:
		return true
	}
	var herr *googleapi.Error
	if !errors.As(ae, &herr) {
		return false
	}
	c, ok := envelopeStatus(herr.Body)
	switch {
	case !ok:
		// No Google envelope: a load balancer or proxy answered, possibly after the backend
		// took the request.
		return false
	case httpCode == http.StatusServiceUnavailable && c == codes.Unavailable:
		return true
	case httpCode == http.StatusNotImplemented && c == codes.Unimplemented:
		return true
	}
	return false
}

func refusedCode(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.NotFound,
		codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated,
		codes.ResourceExhausted, codes.Unimplemented:
		return true
	}
	return false
}

// notConnected reports a failure to resolve or reach the host: no connection was made, so no
// byte of the request was sent. Go's transport dials before it writes a request, and retries a
// request on a reused connection only when nothing of it was written.
func notConnected(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
