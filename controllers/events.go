package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// warningReasons are the states a person should look at.
var warningReasons = map[string]bool{
	opsv1.ReasonFailed: true, opsv1.ReasonNotFound: true, opsv1.ReasonAuthFailed: true,
	opsv1.ReasonRequestRejected: true, opsv1.ReasonRemoteUnavailable: true,
	opsv1.ReasonCancelUnsupported: true, opsv1.ReasonInvalidSpec: true,
}

// recordTransitions emits one event for each change of the Succeeded or Ready reason.
func (r *OptimizationOperationReconciler) recordTransitions(orig, obj *opsv1.OptimizationOperation) {
	for _, typ := range []string{opsv1.ConditionSucceeded, opsv1.ConditionReady} {
		was := meta.FindStatusCondition(orig.Status.Conditions, typ)
		now := meta.FindStatusCondition(obj.Status.Conditions, typ)
		if now == nil || (was != nil && was.Reason == now.Reason && was.Status == now.Status) {
			continue
		}
		if was == nil && now.Reason == opsv1.ReasonPending {
			// Every resource starts Pending: an event for it says nothing, and at 10,000
			// resources created together it is 10,000 writes and as many events held in the
			// recorder's memory.
			continue
		}
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

func (r *OptimizationOperationReconciler) event(obj *opsv1.OptimizationOperation, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	// Notes carry server text of any length; the API server drops an event whose note is
	// longer than its limit, so it is cut to fit instead.
	r.Recorder.Eventf(obj, nil, eventType, reason, action, "%s", policy.Bound(fmt.Sprintf(note, args...), policy.MaxEventNote))
}
