package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestRestoreCancel(t *testing.T) {
	sent := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	earlier := metav1.NewTime(sent.Add(-time.Minute))
	sentAt := metav1.NewTime(sent)
	answered := pollState{answer: &opsv1.CancelStatus{RequestedAt: &sentAt, Outcome: opsv1.CancelAccepted, Message: "accepted"}}
	tests := []struct {
		name  string
		state pollState
		in    *opsv1.CancelStatus
		want  *opsv1.CancelStatus
	}{
		{name: "nothing answered here", state: pollState{}, in: nil, want: nil},
		{name: "cache shows no cancel yet", state: answered, in: nil,
			want: &opsv1.CancelStatus{RequestedAt: &metav1.Time{Time: sent}, Outcome: opsv1.CancelAccepted, Message: "accepted"}},
		{name: "cache shows the request, not the answer", state: answered, in: &opsv1.CancelStatus{RequestedAt: &earlier},
			want: &opsv1.CancelStatus{RequestedAt: &earlier, Outcome: opsv1.CancelAccepted, Message: "accepted"}},
		{name: "cache shows an answer: kept", state: answered,
			in:   &opsv1.CancelStatus{RequestedAt: &earlier, Outcome: opsv1.CancelUnsupported, Message: "501"},
			want: &opsv1.CancelStatus{RequestedAt: &earlier, Outcome: opsv1.CancelUnsupported, Message: "501"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &opsv1.OptimizationOperationStatus{Cancel: tc.in}
			tc.state.restoreCancel(st)
			if got, want := st.Cancel, tc.want; (got == nil) != (want == nil) ||
				got != nil && (got.Outcome != want.Outcome || got.Message != want.Message || !got.RequestedAt.Equal(want.RequestedAt)) {
				t.Errorf("status.cancel = %+v, want %+v", got, want)
			}
		})
	}
}

func TestConfirmingReadsFollowTheAnswer(t *testing.T) {
	// Three minutes of refused cancels, then one is accepted: the read that confirms it comes
	// about a second after the answer, not three minutes after the first attempt.
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	requested, answered := metav1.NewTime(now.Add(-3*time.Minute)), metav1.NewTime(now)
	obj := &opsv1.OptimizationOperation{
		Spec: opsv1.OptimizationOperationSpec{Cancel: true},
		Status: opsv1.OptimizationOperationStatus{Cancel: &opsv1.CancelStatus{
			RequestedAt: &requested, AnsweredAt: &answered, Outcome: opsv1.CancelAccepted}},
	}
	obj.CreationTimestamp = metav1.NewTime(now.Add(-time.Hour))
	r := &OptimizationOperationReconciler{Options: DefaultOptions, Rand: func() float64 { return 0.5 }, tracker: newTracker(), Budget: budget.New(5, 10)}
	if d := policy.NextPoll(r.Options.Poll, r.pollInput(obj, &pollState{}, now)); d > 2*time.Second {
		t.Errorf("next read %s after the accepted answer, want about a second", d)
	}
	if !r.followingCancel(obj, now) {
		t.Error("the read after the accepted answer is not urgent")
	}
}
