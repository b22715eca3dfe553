package decide

import (
	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// Record puts r into obj: the new status, then the conditions and observedGeneration. It is
// the only place that sets conditions (ResultStored included). wasDone says whether obj's
// operation was already done when observed: a terminal status is final, and only its generation moves. visited says
// whether this process acted on obj before: a copy without conditions after a visit is a cache
// that lags this process's own writes, and must not overwrite them with Pending.
func Record(obj *opsv1.OptimizationOperation, r Result, wasDone, visited bool) {
	obj.Status = r.Status
	gen := obj.Generation
	if r.ResultStored != nil {
		// Apart from the operation's outcome: it may come after the terminal status.
		defer setResultStored(obj, *r.ResultStored)
	}
	if wasDone {
		obj.Status.ObservedGeneration = gen
		for i := range obj.Status.Conditions {
			obj.Status.Conditions[i].ObservedGeneration = gen
		}
		return
	}
	firstVisit := len(obj.Status.Conditions) == 0 && !visited
	if r.Problem != nil || r.Observed || firstVisit {
		p := policy.StandingProblem(obj)
		if r.Problem != nil {
			p = *r.Problem
		}
		policy.SetConditions(obj, p)
	}
	if r.Observed {
		obj.Status.ObservedGeneration = gen
	}
}
