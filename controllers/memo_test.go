package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestRestoreCancel(t *testing.T) {
	sent := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	earlier := metav1.NewTime(sent.Add(-time.Minute))
	sentAt := metav1.NewTime(sent)
	answered := memo{cancelAnswer: &opsv1.CancelStatus{RequestedAt: &sentAt, Outcome: opsv1.CancelAccepted, Message: "accepted"}}
	tests := []struct {
		name  string
		state memo
		in    *opsv1.CancelStatus
		want  *opsv1.CancelStatus
	}{
		{name: "nothing answered here", state: memo{}, in: nil, want: nil},
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
			tc.state.overlay(st)
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
	in := policy.PollInput{Now: now, Started: obj.CreationTimestamp.Time, Jitter: 0.5, CancelAcceptedAt: decide.AcceptedAt(obj)}
	if d := policy.NextPoll(DefaultOptions.Poll, in); d > 2*time.Second {
		t.Errorf("next read %s after the accepted answer, want about a second", d)
	}
	if !decide.FollowingCancel(obj, now) {
		t.Error("the read after the accepted answer is not urgent")
	}
}

func TestRestoreSubmit(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	later := metav1.NewTime(at.Add(time.Second))
	const name = "projects/p/locations/global/operations/1"
	attempt := func(when metav1.Time, outcome opsv1.SubmitOutcome) *opsv1.SubmitStatus {
		return &opsv1.SubmitStatus{AttemptedAt: &when, Attempts: 1, RequestHash: "h", Outcome: outcome}
	}
	answered := attempt(at, opsv1.SubmitSubmitted)
	answered.SubmittedAt = &later
	end := metav1.NewTime(later.Add(10 * time.Minute))
	started := memo{submitAnswer: &decide.SubmitAnswer{Name: name, Record: *answered, ExpectedEnd: &end}}
	refused := memo{submitAnswer: &decide.SubmitAnswer{Record: *attempt(at, opsv1.SubmitNotStarted)}}
	tests := []struct {
		name        string
		state       memo
		in          *opsv1.SubmitStatus
		inName      string
		wantOutcome opsv1.SubmitOutcome
		wantName    string
	}{
		{name: "nothing answered here", in: attempt(at, ""), wantOutcome: ""},
		{name: "name not written yet", state: started, in: attempt(at, ""), wantOutcome: opsv1.SubmitSubmitted, wantName: name},
		{name: "refusal not written yet", state: refused, in: attempt(at, ""), wantOutcome: opsv1.SubmitNotStarted},
		{name: "written already", state: started, in: attempt(at, opsv1.SubmitSubmitted), inName: name,
			wantOutcome: opsv1.SubmitSubmitted, wantName: name},
		{name: "a later attempt is not this answer's", state: refused, in: attempt(later, ""), wantOutcome: ""},
		{name: "no attempt stored", state: started, in: nil, wantOutcome: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &opsv1.OptimizationOperationStatus{Submit: tc.in, OperationName: tc.inName}
			tc.state.overlay(st)
			var got opsv1.SubmitOutcome
			if st.Submit != nil {
				got = st.Submit.Outcome
			}
			if got != tc.wantOutcome || st.OperationName != tc.wantName {
				t.Errorf("outcome %q, name %q; want %q, %q", got, st.OperationName, tc.wantOutcome, tc.wantName)
			}
			if tc.wantName != "" && tc.inName == "" {
				// A restored name brings its first observation and deadline along.
				if st.StartTime == nil || !st.StartTime.Equal(&later) || st.ExpectedEndTime == nil || !st.ExpectedEndTime.Equal(&end) {
					t.Errorf("startTime %v, expectedEndTime %v; want %s, %s", st.StartTime, st.ExpectedEndTime, later, end)
				}
			}
		})
	}
}
