package submit

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// The functions below say, in the conditions' reason and message, where the request of a
// resource without an operation name stands. policy.SetConditions turns them into conditions.

// MethodOf is the method spec.submit sends ("" when it names none).
func MethodOf(s *opsv1.SubmitSpec) string {
	switch {
	case s == nil:
		return ""
	case s.OptimizeToursURI != nil:
		return MethodOptimizeToursURI
	case s.BatchOptimizeTours != nil:
		return MethodBatchOptimizeTours
	case s.OptimizeToursLongRunning != nil:
		return MethodOptimizeToursLongRunning
	}
	return ""
}

// Waiting is the problem of a request that waits for its turn: the submit cap, or the call budget.
func Waiting(method string) policy.Problem {
	return policy.Problem{Reason: opsv1.ReasonSubmitting, Message: fmt.Sprintf(
		"The %s request of spec.submit waits for its turn: the operator sends at most --max-submits-per-minute requests a minute, within its call budget (--api-qps)", method)}
}

// Sending is the problem recorded with an attempt, before the request is sent.
func Sending(method string, attempt int32) policy.Problem {
	return policy.Problem{Reason: opsv1.ReasonSubmitting, Message: fmt.Sprintf(
		"Sending the %s request of spec.submit (attempt %d)", method, attempt)}
}

// Retrying is the problem of an attempt the server answered without starting a solve, for a
// reason that may pass by itself (RESOURCE_EXHAUSTED, an explicit UNAVAILABLE, a connection
// that was never made): the request is sent again after wait.
func Retrying(method string, attempt int32, f policy.SubmitFailure, wait time.Duration) policy.Problem {
	return policy.Problem{Reason: opsv1.ReasonSubmitting, Message: fmt.Sprintf(
		"Attempt %d of the %s request started no solve: %s; it is sent again in %s",
		attempt, method, f, wait.Round(time.Second))}
}

// Refused is the problem of an attempt the server refused for good without starting a solve:
// refused credentials (AuthFailed), or a request it will not take (InvalidRequest).
func Refused(obj *opsv1.OptimizationOperation, method string, f policy.SubmitFailure) policy.Problem {
	if f.Kind == policy.Auth {
		return policy.Problem{Reason: opsv1.ReasonAuthFailed, Message: fmt.Sprintf(
			"Cannot start the solve: the server refused the credentials of the %s request: %s. No solve was started. %s",
			method, f, authHint)}
	}
	return policy.Problem{Reason: opsv1.ReasonInvalidRequest, Message: fmt.Sprintf(
		"The server refused the %s request without starting a solve: %s. %s", method, f, fixHint(obj))}
}

// CredentialsRefused is the problem of credentials that could not be loaded: nothing was sent.
func CredentialsRefused(err error) policy.Problem {
	return policy.Problem{Reason: opsv1.ReasonAuthFailed, Message: fmt.Sprintf(
		"Cannot send the request of spec.submit: %s. No solve was started", policy.Truncate(err.Error()))}
}

// Invalid is the problem of a request that could not be built: nothing was sent.
func Invalid(obj *opsv1.OptimizationOperation, err *InvalidRequestError) policy.Problem {
	return policy.Problem{Reason: opsv1.ReasonInvalidRequest, Message: fmt.Sprintf(
		"Nothing was sent: the request is invalid: %s. %s", policy.Truncate(err.Error()), fixHint(obj))}
}

// authHint says what to fix when the API refuses the credentials of a submit.
const authHint = "Check that the credentials (spec.credentialsSecretRef, or the operator's Workload Identity) belong to a principal with the Route Optimization Editor role in the project of spec.submit.parent; a changed Secret is tried at once, a fix in IAM within --max-poll-interval"

// fixHint says how to correct a request: the ConfigMap may change until a request was sent,
// spec.submit never.
func fixHint(obj *opsv1.OptimizationOperation) string {
	if ConfigMapRef(obj.Spec.Submit) != nil {
		return "Fix the ConfigMap (spec.submit.optimizeToursLongRunning.configMapKeyRef): the change is acted on at once"
	}
	return "spec.submit is immutable: create a new OptimizationOperation with a corrected request"
}

// Uncertain is the problem of a resource whose latest attempt may have started a solve. It
// says what is known, what it may cost, and the one command that allows another attempt; with
// spec.cancel set, that nothing can be cancelled.
func Uncertain(obj *opsv1.OptimizationOperation) policy.Problem {
	st := obj.Status.Submit
	var (
		attempt int32
		at      string
		cause   = "the operator stopped before it recorded the answer"
	)
	if st != nil {
		attempt = st.Attempts
		if st.AttemptedAt != nil {
			at = st.AttemptedAt.UTC().Format(time.RFC3339)
		}
		if st.Outcome == opsv1.SubmitUncertain && st.Message != "" {
			cause = "the answer was lost (" + errorCode(st.Message) + "; status.submit.message has the error)"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Attempt %d to send the %s request (attemptedAt %s) may have started a solve: %s. "+
		"A solve may be running, and billed, and it cannot be looked up through the API (Route Optimization requests carry no request id and it offers no operations.list), "+
		"so the operator sends nothing again on its own.", attempt, MethodOf(obj.Spec.Submit), at, cause)
	if obj.Spec.Cancel {
		b.WriteString(" spec.cancel is set, but the operator cannot cancel an operation whose name it never learned: if a solve was started, it runs to its end (at most its timeout).")
		return policy.Problem{Reason: opsv1.ReasonSubmitUncertain, Message: b.String()}
	}
	fmt.Fprintf(&b, " To accept the risk of a second solve and send the request once more: kubectl annotate optop %s -n %s %s=%s --overwrite",
		obj.Name, obj.Namespace, opsv1.AnnotationResubmit, at)
	if v, ok := obj.Annotations[opsv1.AnnotationResubmit]; ok && st != nil && !ResubmitApproved(obj.Annotations, st.AttemptedAt) {
		fmt.Fprintf(&b, " (the annotation %s=%q does not name this attempt, so it approves nothing)", opsv1.AnnotationResubmit, policy.Bound(v, 64))
	}
	return policy.Problem{Reason: opsv1.ReasonSubmitUncertain, Message: b.String()}
}

// errorCode is the "DEADLINE_EXCEEDED (code 4)" of a policy.Failure's text: the rest (a URL, a
// library's wording) is kept in status.submit.message, not repeated in every condition.
func errorCode(msg string) string {
	if i := strings.Index(msg, "): "); i > 0 {
		return msg[:i+1]
	}
	return policy.Bound(strings.TrimSuffix(msg, "."), 200)
}

// NotSubmitted ends a resource cancelled before its request could have started a solve:
// nothing was sent, or every attempt was answered without starting one.
func NotSubmitted(obj *opsv1.OptimizationOperation, now metav1.Time) {
	msg := "spec.cancel came before the request of spec.submit was sent; nothing was sent"
	if st := obj.Status.Submit; st != nil && st.Attempts > 0 {
		msg = fmt.Sprintf("spec.cancel came after %d attempt(s) that the server answered without starting a solve; nothing more is sent", st.Attempts)
	}
	obj.Status.Done = true
	obj.Status.CompletionTime = &now
	obj.Status.Cancel = &opsv1.CancelStatus{Outcome: opsv1.CancelNotSubmitted, Message: msg}
}
