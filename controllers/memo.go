package controllers

import (
	"sync"

	"google.golang.org/protobuf/types/known/anypb"
	"k8s.io/apimachinery/pkg/types"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/remote"
)

// memo is what the reconciler keeps in memory about one resource. It splits in two: the
// schedule, safe to lose (a restart makes every resource due at once), and the answers the
// server gave that are not stored yet, which a failed status write or a lagging cache must
// neither lose nor let be asked for again. Only act and record write it.
type memo struct {
	// uid tells a recreated resource of the same name from the old one.
	uid      types.UID
	schedule decide.Schedule
	// visited: this process acted on the resource before.
	visited bool
	// cancelAnswer and submitAnswer are kept from the moment they came until the resource is
	// forgotten.
	cancelAnswer *opsv1.CancelStatus
	submitAnswer *decide.SubmitAnswer
	// response is the finished operation's response, from the read that found it done until
	// it is written to spec.resultTo: no later read brings it without a call.
	response *anypb.Any
	// lastWorking is the client of the last call that the server did not refuse. Deletion
	// falls back to it when the resource's Secret is already gone (a GitOps prune deletes
	// both at once), so a cancel on delete is still sent.
	lastWorking remote.Operations
}

// overlay puts the answers this process received back into st when st (a cached copy, or one
// whose write failed) does not carry them yet.
func (m *memo) overlay(st *opsv1.OptimizationOperationStatus) {
	restoreCancel(m.cancelAnswer, st)
	restoreSubmit(m.submitAnswer, st)
}

func restoreCancel(a *opsv1.CancelStatus, st *opsv1.OptimizationOperationStatus) {
	if a == nil || (st.Cancel != nil && st.Cancel.Outcome != "") {
		return
	}
	requested := a.RequestedAt
	if st.Cancel != nil && st.Cancel.RequestedAt != nil {
		requested = st.Cancel.RequestedAt
	}
	st.Cancel = a.DeepCopy()
	st.Cancel.RequestedAt = requested
}

// restoreSubmit restores the answer to the attempt st records without one. An attempt of
// another time is not this answer's: its record stays as it is.
func restoreSubmit(a *decide.SubmitAnswer, st *opsv1.OptimizationOperationStatus) {
	if a == nil || st.OperationName != "" || st.Submit == nil || st.Submit.Outcome != "" ||
		st.Submit.AttemptedAt == nil || a.Record.AttemptedAt == nil || !st.Submit.AttemptedAt.Equal(a.Record.AttemptedAt) {
		return
	}
	st.OperationName = a.Name
	st.Submit = a.Record.DeepCopy()
	if a.Name != "" {
		// The answer was the operation's first observation, and its deadline.
		if st.StartTime == nil {
			st.StartTime = a.Record.SubmittedAt.DeepCopy()
		}
		if st.ExpectedEndTime == nil {
			st.ExpectedEndTime = a.ExpectedEnd.DeepCopy()
		}
	}
}

// memos is keyed by namespace/name, the work queue's key, so a deleted resource whose
// reconcile only sees NotFound can still be forgotten.
type memos struct {
	mu sync.Mutex
	m  map[string]*memo
}

func newMemos() *memos { return &memos{m: map[string]*memo{}} }

// get returns the resource's memo, new on first use or when the resource was recreated.
// Reconciles of one object never run concurrently (the work queue guarantees it), so the
// caller may use the memo unlocked.
func (t *memos) get(key string, uid types.UID) *memo {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[key]
	if !ok || s.uid != uid {
		s = &memo{uid: uid}
		t.m[key] = s
	}
	return s
}

// size is how many resources are tracked.
func (t *memos) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// holdsResponse reports whether the memo of the resource key (with uid) holds a response to
// write.
func (t *memos) holdsResponse(key string, uid types.UID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[key]
	return ok && s.uid == uid && s.response != nil
}

func (t *memos) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}
