package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
)

// pollState is what the reconciler remembers about one resource between reconciles. It lives
// in memory only: after a restart every resource is simply due at once, and everything that
// must survive a restart (the cancel request and its outcome, the terminal status) is in the
// object itself.
type pollState struct {
	// uid tells a recreated resource of the same name from the old one.
	uid types.UID
	// seenGeneration is the spec generation last acted on; a new one is acted on at once.
	seenGeneration int64
	// nextPollAt is when the operation is due to be read again.
	nextPollAt time.Time
	// cancelFailures counts cancel calls in a row that failed transiently; nextCancelAt is
	// when the cancel may be sent again. Reads that succeed in between do not reset them, so
	// a cancel endpoint that keeps failing is backed off like any other.
	cancelFailures int
	nextCancelAt   time.Time
	// readForCancel is set when a read found the operation running but the cancel could not
	// be sent in the same reconcile (no room in the budget, or its request had to be recorded
	// first): the next attempt sends the cancel without reading again first.
	readForCancel bool
	// answer is the server's answer to the cancel, kept from the moment it came until the
	// resource is forgotten: a status write that fails, or a cache that does not show the
	// write yet, must neither lose it nor let the cancel be sent again.
	answer *opsv1.CancelStatus
	// cancelRequestedAt is when this process first acted on spec.cancel, to the nanosecond
	// (status.cancel.requestedAt keeps whole seconds), for the cancel latency metric.
	cancelRequestedAt time.Time
	// lastWorking is the client of the last call that the server did not refuse. Deletion
	// falls back to it when the resource's Secret is already gone (a GitOps prune deletes
	// both at once), so a cancel on delete is still sent.
	lastWorking remote.Operations
	// failures counts remote calls in a row that failed; firstFailure is when the run began.
	failures     int
	firstFailure time.Time
	lastFailure  *policy.Failure
	// refusedCreds is the credentials key the server refused (or that failed to load). Another
	// key, after the Secret changed, is tried at once instead of after the backoff.
	refusedCreds string

	// submitted is the server's answer to the latest attempt to send spec.submit, kept from
	// the moment it came until the resource is forgotten, like answer: a status write that
	// fails must neither turn a known success (an operation name) or a known refusal into an
	// attempt without an answer, which reads as SubmitUncertain, nor let the request be sent
	// again.
	submitted *submitAnswer
	// submitFailures counts attempts in a row that the server answered without starting a
	// solve; nextSubmitAt is when the request may be sent again. submitInputs identifies what
	// those attempts sent (the request's hash and the credentials key): a new request or a new
	// key is sent at once instead of after the backoff.
	submitFailures int
	nextSubmitAt   time.Time
	submitInputs   string
}

// submitAnswer is the answer to one attempt: the operation name (empty unless it started one)
// and status.submit as it was to be written.
type submitAnswer struct {
	name   string
	record opsv1.SubmitStatus
}

// restoreSubmit puts the answer this process received back into st when st (a copy whose
// write failed) records its attempt without it. An attempt of another time is not this
// answer's: its record stays as it is.
func (s *pollState) restoreSubmit(st *opsv1.OptimizationOperationStatus) {
	a := s.submitted
	if a == nil || st.OperationName != "" || st.Submit == nil || st.Submit.Outcome != "" ||
		st.Submit.AttemptedAt == nil || a.record.AttemptedAt == nil || !st.Submit.AttemptedAt.Equal(a.record.AttemptedAt) {
		return
	}
	st.OperationName = a.name
	st.Submit = a.record.DeepCopy()
}

// restoreCancel puts the cancel answer this process received back into st when st (a cached
// copy, or one whose write failed) does not carry it.
func (s *pollState) restoreCancel(st *opsv1.OptimizationOperationStatus) {
	if s.answer == nil || (st.Cancel != nil && st.Cancel.Outcome != "") {
		return
	}
	requested := s.answer.RequestedAt
	if st.Cancel != nil && st.Cancel.RequestedAt != nil {
		requested = st.Cancel.RequestedAt
	}
	st.Cancel = s.answer.DeepCopy()
	st.Cancel.RequestedAt = requested
}

// due reports whether the resource should be read now.
func (s *pollState) due(now time.Time) bool { return !now.Before(s.nextPollAt) }

func (s *pollState) succeeded() {
	s.failures, s.firstFailure, s.lastFailure, s.refusedCreds = 0, time.Time{}, nil, ""
}

func (s *pollState) failed(now time.Time, f policy.Failure) {
	if s.failures == 0 {
		s.firstFailure = now
	}
	s.failures++
	s.lastFailure = &f

}

// tracker is keyed by namespace/name, the work queue's key, so a deleted resource whose
// reconcile only sees NotFound can still be forgotten.
type tracker struct {
	mu sync.Mutex
	m  map[string]*pollState
}

func newTracker() *tracker { return &tracker{m: map[string]*pollState{}} }

// get returns the resource's state, creating it on first use or when the resource was
// recreated. Reconciles of one object never run concurrently (the work queue guarantees it),
// so the caller may use the state unlocked.
func (t *tracker) get(key string, uid types.UID) *pollState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[key]
	if !ok || s.uid != uid {
		s = &pollState{uid: uid}
		t.m[key] = s
	}
	return s
}

// size is how many resources are tracked.
func (t *tracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *tracker) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}
