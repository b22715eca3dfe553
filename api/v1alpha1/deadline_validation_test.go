package v1alpha1_test

import (
	"testing"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// TestDeadlineFields: spec.solveTimeout is a Go duration of at most an hour (the API's largest
// timeout), and spec.pollBeforeDeadline one of its two values, Age when unset.
func TestDeadlineFields(t *testing.T) {
	dur := func(s string) *opsv1.Duration { d := opsv1.Duration(s); return &d }
	cases := []struct {
		name string
		spec opsv1.OptimizationOperationSpec
		want string // substring of the error; empty means accepted
	}{
		{"solveTimeout 30m", opsv1.OptimizationOperationSpec{OperationName: trackName, SolveTimeout: dur("30m")}, ""},
		{"solveTimeout 1h", opsv1.OptimizationOperationSpec{OperationName: trackName, SolveTimeout: dur("1h")}, ""},
		{"solveTimeout past an hour", opsv1.OptimizationOperationSpec{OperationName: trackName, SolveTimeout: dur("61m")},
			"solveTimeout must be more than 0s and at most 1h"},
		{"solveTimeout 0s", opsv1.OptimizationOperationSpec{OperationName: trackName, SolveTimeout: dur("0s")},
			"solveTimeout must be more than 0s and at most 1h"},
		{"solveTimeout in days", opsv1.OptimizationOperationSpec{OperationName: trackName, SolveTimeout: dur("1d")}, "spec.solveTimeout"},
		{"pollBeforeDeadline Sparse", opsv1.OptimizationOperationSpec{OperationName: trackName, PollBeforeDeadline: opsv1.PollSparse}, ""},
		{"pollBeforeDeadline unknown", opsv1.OptimizationOperationSpec{OperationName: trackName, PollBeforeDeadline: "Rarely"},
			`spec.pollBeforeDeadline: Unsupported value: "Rarely"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(tc.spec)
			err := createObject(t, obj)
			if tc.want != "" {
				wantInvalid(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if want := tc.spec.PollBeforeDeadline; want == "" && obj.Spec.PollBeforeDeadline != opsv1.PollByAge {
				t.Errorf("pollBeforeDeadline defaulted to %q, want %q", obj.Spec.PollBeforeDeadline, opsv1.PollByAge)
			}
		})
	}
}
