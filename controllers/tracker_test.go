package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

func TestRestoreCancel(t *testing.T) {
	sent := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	earlier := metav1.NewTime(sent.Add(-time.Minute))
	answered := pollState{cancelOutcome: opsv1.CancelAccepted, cancelMessage: "accepted", cancelRequestedAt: sent}
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
