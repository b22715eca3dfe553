package controllers

import (
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// recoveredAfter is how many calls in a row must succeed, whatever resources they serve, before
// the API counts as answering again: one for every ten tracked resources, from one to twenty.
// One success proves little while a fraction of calls fail (an outage is rarely all or
// nothing); twenty in a row are a few seconds of the budget. A few resources need fewer: their
// calls are rare, and the first success may be the only one for minutes.
func recoveredAfter(tracked int) int { return min(max(tracked/10, 1), 20) }

// wakeSendTimeout bounds how long a wake waits for the work queue to take a resource; past it
// (the manager is stopping) the rest are left to their backoffs.
const wakeSendTimeout = time.Minute

// recovery wakes the resources that back off after transient failures once the API answers
// again. An outage leaves each of them minutes away from its next try (its backoff grows with
// every failure), so without a wake-up the backlog would drain at the pace of the backoffs,
// not of the budget: after a storm, operations that ended meanwhile would show as running for
// minutes. Woken resources still take their turn in the budget, oldest failure first. A
// resource is woken once per run of failures: one that fails again after its wake (a broken
// operation among healthy ones) keeps its backoff until it succeeds.
type recovery struct {
	mu sync.Mutex
	// backingOff holds the resources whose last call failed transiently.
	backingOff map[string]backoffEntry
	streak     int
	// failedSince is set by a transient failure and cleared by the wake that answers it.
	failedSince bool
	wake        chan event.TypedGenericEvent[*opsv1.OptimizationOperation]
}

type backoffEntry struct {
	failedAt time.Time // the last transient failure
	wokenAt  time.Time // the wake that took it (zero: not woken yet)
}

func newRecovery() *recovery {
	return &recovery{
		backingOff: map[string]backoffEntry{},
		// Buffered: a wake is sent from a reconcile, which must not wait for the queue.
		wake: make(chan event.TypedGenericEvent[*opsv1.OptimizationOperation], 1024),
	}
}

// source is the watch through which woken resources reach the work queue.
func (rc *recovery) source() source.Source {
	return source.Channel(rc.wake, &handler.TypedEnqueueRequestForObject[*opsv1.OptimizationOperation]{})
}

// failed records a failed call of key: a transient one puts it among those backing off; a
// permanent one takes it out (a retry cannot help it, so a recovery should not wake it).
func (rc *recovery) failed(key string, now time.Time, permanent bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if permanent {
		delete(rc.backingOff, key)
		return
	}
	e := rc.backingOff[key]
	e.failedAt = now
	rc.backingOff[key] = e
	rc.streak, rc.failedSince = 0, true
}

// succeeded records a successful call for key and, when it completes a run of successes after
// failures (tracked is how many resources there are), wakes every resource still backing off
// that was not woken before.
func (rc *recovery) succeeded(key string, now time.Time, tracked int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.backingOff, key)
	rc.streak++
	if rc.streak < recoveredAfter(tracked) || !rc.failedSince {
		return
	}
	rc.failedSince = false
	var keys []string
	for k, e := range rc.backingOff {
		if e.wokenAt.IsZero() {
			keys = append(keys, k)
			e.wokenAt = now
			rc.backingOff[k] = e
		}
	}
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, func(a, b string) int { return rc.backingOff[a].failedAt.Compare(rc.backingOff[b].failedAt) })
	go func() {
		for _, k := range keys {
			ns, name, _ := strings.Cut(k, "/")
			select {
			case rc.wake <- event.TypedGenericEvent[*opsv1.OptimizationOperation]{
				Object: &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
			}:
			case <-time.After(wakeSendTimeout):
				return
			}
		}
	}()
}

// woken reports whether key was woken after its last failure: it is due now, whatever its
// backoff says.
func (rc *recovery) woken(key string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e, ok := rc.backingOff[key]
	return ok && !e.wokenAt.IsZero() && e.failedAt.Before(e.wokenAt)
}

// forget drops a resource that is gone or finished.
func (rc *recovery) forget(key string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.backingOff, key)
}
