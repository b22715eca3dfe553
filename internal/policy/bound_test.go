package policy_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestBound(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ..."},
		{"ééééé", 8, "éé..."}, // a cut inside a rune drops the partial rune
		{"abc", 2, "..."},
	}
	for _, tc := range tests {
		got := policy.Bound(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("Bound(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Bound(%q, %d) = %q is not valid UTF-8", tc.in, tc.n, got)
		}
	}
}

func TestConditionMessagesAreBounded(t *testing.T) {
	// A credentials error carries library text; a condition longer than the API's limit would
	// make every status write of the resource fail.
	obj := &opsv1.OptimizationOperation{}
	obj.Spec.OperationName = "operations/1"
	huge := strings.Repeat("x", 100_000)
	policy.SetConditions(obj, policy.Problem{Reason: opsv1.ReasonAuthFailed, Message: huge})
	for _, c := range obj.Status.Conditions {
		if len(c.Message) > policy.MaxConditionMessage {
			t.Errorf("%s message has %d bytes, over the API's %d", c.Type, len(c.Message), policy.MaxConditionMessage)
		}
	}
	if c := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionStalled); c == nil {
		t.Error("no Stalled condition")
	}
}
