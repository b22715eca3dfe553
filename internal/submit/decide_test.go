package submit_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

var attempted = metav1.NewTime(time.Date(2026, 5, 4, 10, 11, 12, 0, time.UTC))

func TestDecide(t *testing.T) {
	status := func(outcome opsv1.SubmitOutcome) *opsv1.SubmitStatus {
		return &opsv1.SubmitStatus{AttemptedAt: &attempted, Attempts: 1, RequestHash: "h", Outcome: outcome}
	}
	approve := map[string]string{opsv1.AnnotationResubmit: "2026-05-04T10:11:12Z"}
	stale := map[string]string{opsv1.AnnotationResubmit: "2026-05-04T10:11:11Z"}
	tests := []struct {
		name        string
		cancel      bool
		opName      string
		st          *opsv1.SubmitStatus
		annotations map[string]string
		want        submit.Step
	}{
		{"fresh", false, "", nil, nil, submit.StepSend},
		{"status without an attempt", false, "", &opsv1.SubmitStatus{}, nil, submit.StepSend},
		{"answered, nothing started", false, "", status(opsv1.SubmitNotStarted), nil, submit.StepSend},
		{"attempt without a recorded answer", false, "", status(""), nil, submit.StepUncertain},
		{"uncertain", false, "", status(opsv1.SubmitUncertain), nil, submit.StepUncertain},
		{"uncertain, approved", false, "", status(opsv1.SubmitUncertain), approve, submit.StepSend},
		{"no recorded answer, approved", false, "", status(""), approve, submit.StepSend},
		{"uncertain, stale annotation", false, "", status(opsv1.SubmitUncertain), stale, submit.StepUncertain},
		{"uncertain, annotation not a time", false, "", status(opsv1.SubmitUncertain), map[string]string{opsv1.AnnotationResubmit: "yes"}, submit.StepUncertain},
		{"submitted without a name (edited status)", false, "", status(opsv1.SubmitSubmitted), nil, submit.StepUncertain},
		{"submitted", false, "projects/p/locations/global/operations/1", status(opsv1.SubmitSubmitted), nil, submit.StepTrack},
		{"spec.operationName copied to status", false, "projects/p/locations/global/operations/1", nil, nil, submit.StepTrack},
		{"submitted, then cancelled", true, "projects/p/locations/global/operations/1", status(opsv1.SubmitSubmitted), nil, submit.StepTrack},
		{"cancelled before any attempt", true, "", nil, nil, submit.StepNotSubmitted},
		{"cancelled after answers that started nothing", true, "", status(opsv1.SubmitNotStarted), nil, submit.StepNotSubmitted},
		{"cancelled while uncertain", true, "", status(opsv1.SubmitUncertain), nil, submit.StepUncertain},
		{"cancelled while uncertain, approved", true, "", status(opsv1.SubmitUncertain), approve, submit.StepUncertain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := &opsv1.OptimizationOperation{
				ObjectMeta: metav1.ObjectMeta{Annotations: tc.annotations},
				Spec:       opsv1.OptimizationOperationSpec{Cancel: tc.cancel, Submit: &opsv1.SubmitSpec{Parent: "projects/p"}},
				Status:     opsv1.OptimizationOperationStatus{OperationName: tc.opName, Submit: tc.st},
			}
			if got := submit.Decide(obj); got != tc.want {
				t.Errorf("Decide = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestResubmitApproved(t *testing.T) {
	tests := []struct {
		value string
		at    *metav1.Time
		want  bool
	}{
		{"2026-05-04T10:11:12Z", &attempted, true},
		{" 2026-05-04T10:11:12Z\n", &attempted, true},
		{"2026-05-04T12:11:12+02:00", &attempted, true},
		{"2026-05-04T10:11:12.000Z", &attempted, true},
		{"2026-05-04T10:11:12.5Z", &attempted, false},
		{"2026-05-04T10:11:13Z", &attempted, false},
		{"2026-05-04 10:11:12", &attempted, false},
		{"true", &attempted, false},
		{"", &attempted, false},
		{"2026-05-04T10:11:12Z", nil, false},
	}
	for _, tc := range tests {
		got := submit.ResubmitApproved(map[string]string{opsv1.AnnotationResubmit: tc.value}, tc.at)
		if got != tc.want {
			t.Errorf("ResubmitApproved(%q, %v) = %v, want %v", tc.value, tc.at, got, tc.want)
		}
	}
	if submit.ResubmitApproved(nil, &attempted) {
		t.Error("approved without the annotation")
	}
}

// TestAttemptTime: attempts get distinct seconds, so an annotation naming one attempt never
// names the next, even when the next follows within the same second.
func TestAttemptTime(t *testing.T) {
	now := time.Date(2026, 5, 4, 10, 11, 12, 900_000_000, time.FixedZone("CEST", 2*3600))
	first := submit.AttemptTime(now, nil)
	if want := time.Date(2026, 5, 4, 8, 11, 12, 0, time.UTC); !first.Equal(&metav1.Time{Time: want}) {
		t.Errorf("first attempt at %v, want %v", first, want)
	}
	second := submit.AttemptTime(now.Add(50*time.Millisecond), &first)
	if !second.After(first.Time) || second.Sub(first.Time) != time.Second {
		t.Errorf("second attempt at %v, want one second after %v", second, first)
	}
	annotations := map[string]string{opsv1.AnnotationResubmit: first.UTC().Format(time.RFC3339)}
	if !submit.ResubmitApproved(annotations, &first) || submit.ResubmitApproved(annotations, &second) {
		t.Error("the annotation naming the first attempt must approve after it, and only after it")
	}
	later := submit.AttemptTime(now.Add(time.Hour), &second)
	if want := now.Add(time.Hour).UTC().Truncate(time.Second); !later.Time.Equal(want) {
		t.Errorf("later attempt at %v, want %v", later, want)
	}
}
