package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// pollState is what the reconciler remembers about one resource between reconciles. It lives
// in memory only: after a restart every resource is simply due at once, and everything that
// must survive a restart (the cancel request and its outcome, the terminal status) is in the
// object itself.
type pollState struct {
	// nextPollAt is when the operation is due to be read again.
	nextPollAt time.Time
	// failures counts remote calls in a row that failed; firstFailure is when the run began.
	failures     int
	firstFailure time.Time
	lastFailure  *policy.Failure
	// refusedCreds is the credentials key the server refused (or that failed to load). Another
	// key, after the Secret changed, is tried at once instead of after the backoff.
	refusedCreds string
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

type tracker struct {
	mu sync.Mutex
	m  map[types.UID]*pollState
}

func newTracker() *tracker { return &tracker{m: map[types.UID]*pollState{}} }

// get returns the resource's state, creating it on first use. Reconciles of one object never
// run concurrently (the work queue guarantees it), so the caller may use the state unlocked.
func (t *tracker) get(uid types.UID) *pollState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[uid]
	if !ok {
		s = &pollState{}
		t.m[uid] = s
	}
	return s
}

func (t *tracker) forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, uid)
}
