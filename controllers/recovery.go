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

// recovery wakes the resources that back off after transient failures once the API answers
// again. An outage leaves each of them minutes away from its next try (its backoff grows with
// every failure), so without a wake-up the backlog would drain at the pace of the backoffs,
// not of the budget: after a storm, operations that ended meanwhile would show as running for
// minutes. Woken resources still take their turn in the budget, oldest failure first.
type recovery struct {
	mu sync.Mutex
	// backingOff holds the resources whose last call failed transiently, with when.
	backingOff map[string]time.Time
	streak     int
	// failedSince is set by a transient failure and cleared by the wake that answers it, so
	// one recovery wakes each resource once.
	failedSince bool
	// recoveredAt is when the last wake happened; a resource that failed before it is due.
	recoveredAt time.Time
	wake        chan event.TypedGenericEvent[*opsv1.OptimizationOperation]
}

func newRecovery() *recovery {
	return &recovery{
		backingOff: map[string]time.Time{},
		// Buffered: a wake is sent from a reconcile, which must not wait for the queue.
		wake: make(chan event.TypedGenericEvent[*opsv1.OptimizationOperation], 1024),
	}
}

// source is the watch through which woken resources reach the work queue.
func (rc *recovery) source() source.Source {
	return source.Channel(rc.wake, &handler.TypedEnqueueRequestForObject[*opsv1.OptimizationOperation]{})
}

// failed records a transient failure of key's call.
func (rc *recovery) failed(key string, now time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.backingOff[key] = now
	rc.streak, rc.failedSince = 0, true
}

// succeeded records a successful call for key and, when it completes a run of successes after
// failures (tracked is how many resources there are), wakes every resource still backing off.
func (rc *recovery) succeeded(key string, now time.Time, tracked int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.backingOff, key)
	rc.streak++
	if rc.streak < recoveredAfter(tracked) || !rc.failedSince || len(rc.backingOff) == 0 {
		return
	}
	rc.failedSince, rc.recoveredAt = false, now
	keys := make([]string, 0, len(rc.backingOff))
	for k := range rc.backingOff {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return rc.backingOff[a].Compare(rc.backingOff[b]) })
	go func() {
		for _, k := range keys {
			ns, name, _ := strings.Cut(k, "/")
			rc.wake <- event.TypedGenericEvent[*opsv1.OptimizationOperation]{
				Object: &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
			}
		}
	}()
}

// woken reports whether a resource whose last call failed at failedAt was woken since.
func (rc *recovery) woken(failedAt time.Time) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return !failedAt.IsZero() && failedAt.Before(rc.recoveredAt)
}

// forget drops a resource that is gone or finished.
func (rc *recovery) forget(key string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.backingOff, key)
}
