package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// warningReasons are the states a person should look at.
var warningReasons = map[string]bool{
	opsv1.ReasonFailed: true, opsv1.ReasonNotFound: true, opsv1.ReasonAuthFailed: true,
	opsv1.ReasonRequestRejected: true, opsv1.ReasonRemoteUnavailable: true,
	opsv1.ReasonCancelUnsupported: true, opsv1.ReasonInvalidSpec: true, opsv1.ReasonPastExpectedEnd: true,
	opsv1.ReasonInvalidRequest: true, opsv1.ReasonSubmitUncertain: true,
}

// tell emits the events of a written status: the action's own (a cancel sent, a submit
// answered), then one for each change of the Succeeded or Ready reason that the action's
// events have not told already, so one story is told once.
func (r *OptimizationOperationReconciler) tell(orig, obj *opsv1.OptimizationOperation, actions []decide.Event) {
	told := map[string]bool{}
	for _, e := range actions {
		r.event(obj, e.Type, e.Reason, e.Action, "%s", e.Note)
		told[e.Reason] = true
	}
	for _, typ := range []string{opsv1.ConditionSucceeded, opsv1.ConditionReady} {
		was := meta.FindStatusCondition(orig.Status.Conditions, typ)
		now := meta.FindStatusCondition(obj.Status.Conditions, typ)
		if now == nil || (was != nil && was.Reason == now.Reason && was.Status == now.Status) {
			continue
		}
		if quietStart(was, now) || told[now.Reason] {
			continue
		}
		told[now.Reason] = true
		if typ == opsv1.ConditionReady {
			if s := meta.FindStatusCondition(obj.Status.Conditions, opsv1.ConditionSucceeded); s != nil && s.Reason == now.Reason {
				continue // already told by the Succeeded event
			}
		}
		eventType := corev1.EventTypeNormal
		if warningReasons[now.Reason] || meta.IsStatusConditionTrue(obj.Status.Conditions, opsv1.ConditionStalled) {
			eventType = corev1.EventTypeWarning
		}
		r.event(obj, eventType, now.Reason, "Observe", "%s", now.Message)
	}
}

// quietStart reports whether a change is only a resource starting as expected: Pending, then
// Running once its operation is first read; for a resource that starts its own solve,
// Submitting first (the Submitted event tells the server's answer). Events for those say
// nothing a person acts on, and at 10,000 resources created together they would be 20,000
// writes to the API server and as many events held in the recorder's memory for minutes (it
// keeps each to spot repeats).
func quietStart(was, now *metav1.Condition) bool {
	starting := was == nil || was.Reason == opsv1.ReasonPending || was.Reason == opsv1.ReasonSubmitting
	switch now.Reason {
	case opsv1.ReasonPending, opsv1.ReasonRunning:
		return starting
	case opsv1.ReasonSubmitting:
		return was == nil || was.Reason == opsv1.ReasonPending
	}
	return false
}

func (r *OptimizationOperationReconciler) event(obj *opsv1.OptimizationOperation, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	// Notes carry server text of any length; the API server drops an event whose note is
	// longer than its limit, so it is cut to fit instead.
	r.Recorder.Eventf(obj, nil, eventType, reason, action, "%s", policy.Bound(fmt.Sprintf(note, args...), policy.MaxEventNote))
}
