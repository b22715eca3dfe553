package submitcap

import (
	"time"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// Attempts returns the status.submit.attemptedAt of the items whose spec.submit.parent is in
// project and whose latest attempt was recorded after since: what a Seed returns, read from a
// list of the resources (the manager's cache holds them all).
//
// Status keeps the latest attempt of each resource only, and a resource gone keeps nothing: an
// earlier attempt of the same resource within the window, or the attempt of a resource deleted
// since, is not seen.
func Attempts(items []opsv1.OptimizationOperation, project string, since time.Time) []time.Time {
	var out []time.Time
	for i := range items {
		o := &items[i]
		if o.Spec.Submit == nil || o.Status.Submit == nil || o.Status.Submit.AttemptedAt == nil {
			continue
		}
		if policy.ProjectOf(o.Spec.Submit.Parent) != project {
			continue
		}
		if t := o.Status.Submit.AttemptedAt.Time; t.After(since) {
			out = append(out, t)
		}
	}
	return out
}
