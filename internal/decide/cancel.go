package decide

import (
	"time"

	"google.golang.org/grpc/codes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// Finalizer holds deletion of a resource with deletionPolicy Cancel until its cancel was sent.
const Finalizer = "ops.routeopt.dev/cancel-on-delete"

// HasFinalizer reports whether obj holds the operator's finalizer.
func HasFinalizer(obj *opsv1.OptimizationOperation) bool {
	return controllerutil.ContainsFinalizer(obj, Finalizer)
}

// CancelPending reports whether a cancel is asked for and the server has not answered it yet.
func CancelPending(obj *opsv1.OptimizationOperation) bool {
	return obj.Spec.Cancel && !obj.Status.Done && !CancelAnswered(obj)
}

// CancelAnswered reports whether status records an outcome of the cancel.
func CancelAnswered(obj *opsv1.OptimizationOperation) bool {
	return obj.Status.Cancel != nil && obj.Status.Cancel.Outcome != ""
}

// CancelRequested reports whether the cancel request is stored (it is, before the first cancel
// is sent).
func CancelRequested(obj *opsv1.OptimizationOperation) bool {
	return obj.Status.Cancel != nil && obj.Status.Cancel.RequestedAt != nil
}

// MayCancel reports whether a reconcile of obj may send a cancel: one the user asked for, or
// one that deletion with deletionPolicy Cancel sends, with no answer recorded yet. Such a
// decision is taken on the object read from the API server, never on a cache.
func MayCancel(obj *opsv1.OptimizationOperation) bool {
	return !obj.Status.Done && !CancelAnswered(obj) &&
		(obj.Spec.Cancel || (!obj.DeletionTimestamp.IsZero() && obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel))
}

// MaySubmit reports whether a reconcile of obj may send spec.submit: it starts its own solve
// and no operation name is known yet.
func MaySubmit(obj *opsv1.OptimizationOperation) bool {
	return policy.Submitting(obj) && !obj.Status.Done
}

// NeedsCancelOnDelete reports whether deleting obj now must first send a cancel: the policy
// asks for it, or a cancel the user asked for has not been answered yet (deleting the resource
// must not silently drop it).
//
// A resource that starts its own solve has nothing to cancel before an operation name is
// known. With deletionPolicy Cancel it still holds the finalizer while a request may yet be
// sent: a deletion that comes while a submit is in flight then waits for its answer, and
// cancels the operation it started.
func NeedsCancelOnDelete(obj *opsv1.OptimizationOperation) bool {
	if obj.Status.Done || CancelAnswered(obj) {
		return false
	}
	if policy.Submitting(obj) {
		return obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel && !obj.Spec.Cancel
	}
	return obj.Spec.DeletionPolicy == opsv1.DeletionPolicyCancel || obj.Spec.Cancel
}

// followCancelFor is how long after an accepted cancel the reads that confirm it share the
// cancel's priority.
const followCancelFor = time.Minute

// FollowingCancel reports whether obj's reads are confirming a recently accepted cancel.
func FollowingCancel(obj *opsv1.OptimizationOperation, now time.Time) bool {
	at := AcceptedAt(obj)
	return obj.Spec.Cancel && !obj.Status.Done && at != nil && now.Sub(*at) < followCancelFor
}

// AcceptedAt is when the server accepted obj's cancel (nil when it has not). The reads that
// confirm the cancel follow the answer, not the first attempt, which may be long before it
// when earlier attempts failed.
func AcceptedAt(obj *opsv1.OptimizationOperation) *time.Time {
	c := obj.Status.Cancel
	if c == nil || c.Outcome != opsv1.CancelAccepted {
		return nil
	}
	for _, t := range []*metav1.Time{c.AnsweredAt, c.RequestedAt} {
		if t != nil {
			return &t.Time
		}
	}
	return nil
}

// CloseCancelRecord gives a cancel that will never be sent, because the operation was seen
// done first, its outcome: a record without one would read as a cancel still under way.
// Whether a cancel went out is told only as far as it is known: the request is stored before
// the first cancel is sent, so without it none was; with it, an answer may have been lost to
// a restart. The Succeeded condition tells the same story (policy.SetConditions).
func CloseCancelRecord(st *opsv1.OptimizationOperationStatus, cancel bool, now time.Time) {
	if !st.Done || !cancel || (st.Cancel != nil && st.Cancel.Outcome != "") {
		return
	}
	if st.Cancel == nil || st.Cancel.RequestedAt == nil {
		t := metav1.NewTime(now)
		st.Cancel = &opsv1.CancelStatus{RequestedAt: &t, Outcome: opsv1.CancelAlreadyDone,
			Message: policy.CancelNotSentMessage}
		return
	}
	st.Cancel.Outcome = opsv1.CancelAlreadyDone
	st.Cancel.Message = policy.CancelUnansweredMessage
	if e := st.Error; e != nil && e.Code == int32(codes.Canceled) {
		st.Cancel.Message = policy.CancelUnansweredCancelledMessage
	}
}
