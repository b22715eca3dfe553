package submit

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// Step is what the reconciler does next about spec.submit.
type Step int

const (
	// StepTrack: an operation name is known (status.operationName); track it like one named
	// by spec.operationName. Nothing is ever sent again.
	StepTrack Step = iota + 1
	// StepSend: build the request, record the attempt, then send it. Either nothing was
	// attempted yet, the latest attempt was answered without starting a solve (after the
	// back-off policy.SubmitFailure.Retry asks for, or once the spec, ConfigMap or Secret
	// changed for a permanent failure), or AnnotationResubmit approves another attempt.
	StepSend
	// StepUncertain: the latest attempt may have started a solve; send nothing. The resource
	// stays SubmitUncertain (Stalled) until AnnotationResubmit names status.submit.attemptedAt.
	StepUncertain
	// StepNotSubmitted: spec.cancel is true and no solve can have started (nothing was
	// attempted, or every attempt was answered without starting one): send nothing, and end
	// the resource Cancelled with status.cancel.outcome NotSubmitted and done true.
	StepNotSubmitted
)

func (s Step) String() string {
	switch s {
	case StepTrack:
		return "Track"
	case StepSend:
		return "Send"
	case StepUncertain:
		return "Uncertain"
	case StepNotSubmitted:
		return "NotSubmitted"
	}
	return "Unknown"
}

// Decide says what to do about obj's spec.submit from what status records. It must be given
// the object as last read from the API server (not a cache that may lag a status write): the
// record of an attempt is what keeps a request from being sent twice.
//
// A cancelled resource never sends: with a possibly started solve it stays Uncertain (there is
// no name to cancel), and the resubmit annotation does not override the cancel.
func Decide(obj *opsv1.OptimizationOperation) Step {
	if obj.Status.OperationName != "" {
		return StepTrack
	}
	st := obj.Status.Submit
	attempted := st != nil && st.AttemptedAt != nil
	safe := !attempted || st.Outcome == opsv1.SubmitNotStarted
	switch {
	case safe && obj.Spec.Cancel:
		return StepNotSubmitted
	case safe:
		return StepSend
	case obj.Spec.Cancel:
		return StepUncertain
	case ResubmitApproved(obj.Annotations, st.AttemptedAt):
		return StepSend
	}
	// Outcome Uncertain; empty (the answer was never recorded, or the operator stopped while
	// it waited); or Submitted without a name (a status written by hand): all may have started
	// a solve.
	return StepUncertain
}

// ResubmitApproved reports whether annotations hold AnnotationResubmit naming attemptedAt: an
// RFC 3339 time equal to it (to the second, the precision status keeps).
func ResubmitApproved(annotations map[string]string, attemptedAt *metav1.Time) bool {
	v, ok := annotations[opsv1.AnnotationResubmit]
	if !ok || attemptedAt == nil {
		return false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
	return err == nil && t.Equal(attemptedAt.Truncate(time.Second))
}

// AttemptTime is the attemptedAt to record for an attempt at now: now to the second (what
// status keeps), and later than the previous attempt's, so that an annotation that names the
// previous attempt can never name this one, however fast the attempts follow each other.
func AttemptTime(now time.Time, previous *metav1.Time) metav1.Time {
	t := now.UTC().Truncate(time.Second)
	if previous != nil {
		if p := previous.UTC().Truncate(time.Second); !t.After(p) {
			t = p.Add(time.Second)
		}
	}
	return metav1.NewTime(t)
}
