package submit_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// TestUncertain: the message of SubmitUncertain says what may have happened, what it costs,
// and the one command that allows another attempt, naming this attempt.
func TestUncertain(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 5, 4, 10, 11, 12, 0, time.UTC))
	uncertain := func(outcome opsv1.SubmitOutcome, cancel bool, annotation string) *opsv1.OptimizationOperation {
		o := inlineOp(`{}`)
		o.Spec.Cancel = cancel
		if annotation != "" {
			o.Annotations = map[string]string{opsv1.AnnotationResubmit: annotation}
		}
		o.Status.Submit = &opsv1.SubmitStatus{AttemptedAt: &at, Attempts: 2, Outcome: outcome, Message: "DEADLINE_EXCEEDED (code 4): context deadline exceeded"}
		return o
	}
	command := "kubectl annotate optop nightly -n team-a ops.routeopt.dev/resubmit=2026-05-04T10:11:12Z --overwrite"
	tests := []struct {
		name      string
		obj       *opsv1.OptimizationOperation
		has, lack []string
	}{
		{"answer lost", uncertain(opsv1.SubmitUncertain, false, ""),
			[]string{"Attempt 2", "OptimizeToursLongRunning", "2026-05-04T10:11:12Z", "may have started a solve",
				"the answer was lost (DEADLINE_EXCEEDED (code 4); status.submit.message has the error)", "billed", "cannot be looked up", command},
			[]string{"approves nothing", "cannot cancel", "context deadline exceeded"}},
		{"operator stopped before the answer", uncertain("", false, ""),
			[]string{"stopped before it recorded the answer", command}, nil},
		{"stale annotation", uncertain(opsv1.SubmitUncertain, false, "2026-05-04T10:11:11Z"),
			[]string{command, `"2026-05-04T10:11:11Z" does not name this attempt, so it approves nothing`}, nil},
		{"cancelled", uncertain(opsv1.SubmitUncertain, true, ""),
			[]string{"cannot cancel an operation whose name it never learned"}, []string{"kubectl annotate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := submit.Uncertain(tc.obj)
			if p.Reason != opsv1.ReasonSubmitUncertain {
				t.Errorf("reason %s", p.Reason)
			}
			for _, s := range tc.has {
				if !strings.Contains(p.Message, s) {
					t.Errorf("message %q lacks %q", p.Message, s)
				}
			}
			for _, s := range tc.lack {
				if strings.Contains(p.Message, s) {
					t.Errorf("message %q has %q", p.Message, s)
				}
			}
		})
	}
}

func TestNotSubmitted(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	o := inlineOp(`{}`)
	submit.NotSubmitted(o, now)
	if c := o.Status.Cancel; !o.Status.Done || c == nil || c.Outcome != opsv1.CancelNotSubmitted || c.RequestedAt != nil || !strings.Contains(c.Message, "nothing was sent") {
		t.Errorf("done=%v cancel=%+v", o.Status.Done, o.Status.Cancel)
	}
	o = inlineOp(`{}`)
	o.Status.Submit = &opsv1.SubmitStatus{Attempts: 3, Outcome: opsv1.SubmitNotStarted}
	submit.NotSubmitted(o, now)
	if !strings.Contains(o.Status.Cancel.Message, "after 3 attempt(s)") || !strings.Contains(o.Status.Cancel.Message, "nothing more is sent") {
		t.Errorf("message %q", o.Status.Cancel.Message)
	}
}

func TestMethodOf(t *testing.T) {
	if m := submit.MethodOf(inlineOp(`{}`).Spec.Submit); m != submit.MethodOptimizeToursLongRunning {
		t.Errorf("MethodOf = %q", m)
	}
	if m := submit.MethodOf(nil); m != "" {
		t.Errorf("MethodOf(nil) = %q", m)
	}
}
