package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// objState is what the watch saw of one resource. Every MODIFIED event is one write (one new
// resourceVersion); it is put in exactly one class by what it changed.
type objState struct {
	last    *opsv1.OptimizationOperation
	created time.Time // when our create returned

	firstStatus time.Time // first status write seen
	// Writes before the cancel patch, and from it on.
	quiet, cancelPath writeCounts

	cancelSent  time.Time // just before the cancel patch was sent
	cancelledAt time.Time // first event with Succeeded reason Cancelled
	doneAt      time.Time // first version with status.done
	reason      string    // Succeeded reason last seen
}

type writeCounts struct {
	status   int // status subresource writes
	metadata int // finalizers, labels, annotations, deletion
	spec     int // generation bumps: the benchmark's own cancel patches
	other    int // a new resourceVersion with none of the above (managedFields only)
}

// watcher follows every OptimizationOperation of a namespace from before the first is created.
type watcher struct {
	cl client.WithWatch
	ns string

	mu       sync.Mutex
	objs     map[string]*objState
	events   int
	restarts int // watches re-opened after the server closed them
	resyncs  int // watches that had to start again from a fresh list (history lost)
	err      error
}

func newWatcher(cl client.WithWatch, ns string) *watcher {
	return &watcher{cl: cl, ns: ns, objs: map[string]*objState{}}
}

// state returns the record of name, creating it; w.mu must be held.
func (w *watcher) state(name string) *objState {
	s, ok := w.objs[name]
	if !ok {
		s = &objState{}
		w.objs[name] = s
	}
	return s
}

func (w *watcher) noteCreated(name string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state(name).created = at
}

func (w *watcher) noteCancelSent(name string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state(name).cancelSent = at
}

// run lists, then watches until ctx ends, re-opening the watch where it stopped.
func (w *watcher) run(ctx context.Context, ready chan<- error) {
	rv, err := w.list(ctx)
	ready <- err
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		next, err := w.watchFrom(ctx, rv)
		switch {
		case ctx.Err() != nil:
			return
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			// The server no longer has the history from rv: writes in between are merged
			// into one diff, so the counts of this run are a lower bound.
			w.mu.Lock()
			w.resyncs++
			w.mu.Unlock()
			if next, err = w.list(ctx); err != nil {
				w.fail(err)
				time.Sleep(time.Second)
				continue
			}
		case err != nil:
			w.fail(err)
			time.Sleep(time.Second)
		}
		if next != "" {
			rv = next
		}
		w.mu.Lock()
		w.restarts++
		w.mu.Unlock()
	}
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

func (w *watcher) list(ctx context.Context) (string, error) {
	var l opsv1.OptimizationOperationList
	if err := w.cl.List(ctx, &l, client.InNamespace(w.ns)); err != nil {
		return "", fmt.Errorf("list: %w", err)
	}
	now := time.Now()
	for i := range l.Items {
		w.observe(watch.Modified, &l.Items[i], now)
	}
	return l.ResourceVersion, nil
}

// watchFrom watches from rv until the server closes the watch, and returns the last
// resourceVersion seen.
func (w *watcher) watchFrom(ctx context.Context, rv string) (string, error) {
	wi, err := w.cl.Watch(ctx, &opsv1.OptimizationOperationList{}, client.InNamespace(w.ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
	if err != nil {
		return "", err
	}
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return rv, nil
			}
			now := time.Now()
			switch ev.Type {
			case watch.Error:
				return rv, apierrors.FromObject(ev.Object)
			case watch.Bookmark:
				if o, ok := ev.Object.(*opsv1.OptimizationOperation); ok {
					rv = o.ResourceVersion
				}
			case watch.Added, watch.Modified, watch.Deleted:
				o, ok := ev.Object.(*opsv1.OptimizationOperation)
				if !ok {
					continue
				}
				rv = o.ResourceVersion
				w.observe(ev.Type, o, now)
			}
		}
	}
}

// observe classifies one new version of an object against the last one seen.
func (w *watcher) observe(t watch.EventType, o *opsv1.OptimizationOperation, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	s := w.state(o.Name)
	prev := s.last
	if t == watch.Deleted {
		s.last = nil
		return
	}
	if prev != nil && prev.ResourceVersion == o.ResourceVersion {
		return
	}
	s.last = o
	if o.Status.Done && s.doneAt.IsZero() {
		s.doneAt = now
	}
	if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded); c != nil {
		s.reason = c.Reason
		if c.Reason == opsv1.ReasonCancelled && s.cancelledAt.IsZero() && !s.cancelSent.IsZero() {
			s.cancelledAt = now
		}
	}
	if prev == nil {
		// The create itself; a status already present means writes were merged before the
		// watch saw the object (a resync), counted as one.
		if !equality.Semantic.DeepEqual(o.Status, opsv1.OptimizationOperationStatus{}) {
			s.firstStatus = now
			s.counts().status++
		}
		return
	}
	c := s.counts()
	switch {
	case !equality.Semantic.DeepEqual(prev.Status, o.Status):
		c.status++
		if s.firstStatus.IsZero() {
			s.firstStatus = now
		}
	case prev.Generation != o.Generation:
		c.spec++
	case !slices.Equal(prev.Finalizers, o.Finalizers) ||
		!equality.Semantic.DeepEqual(prev.Labels, o.Labels) ||
		!equality.Semantic.DeepEqual(prev.Annotations, o.Annotations) ||
		!prev.DeletionTimestamp.Equal(o.DeletionTimestamp):
		c.metadata++
	default:
		c.other++
	}
}

// counts is the bucket the next write goes to. The state's mutex holder calls it.
func (s *objState) counts() *writeCounts {
	if s.cancelSent.IsZero() {
		return &s.quiet
	}
	return &s.cancelPath
}

// snapshot copies the states, for reporting without holding the lock.
func (w *watcher) snapshot() (map[string]objState, int, int, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]objState, len(w.objs))
	for k, v := range w.objs {
		out[k] = *v
	}
	return out, w.events, w.restarts, w.resyncs, w.err
}

// cancelled reports, for names, when each was seen Cancelled (zero if not yet).
func (w *watcher) cancelled(names []string) (done int, at map[string]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at = make(map[string]time.Time, len(names))
	for _, n := range names {
		if s := w.objs[n]; s != nil && !s.cancelledAt.IsZero() {
			at[n] = s.cancelledAt
			done++
		}
	}
	return done, at
}

// withStatus counts the resources whose status was written at least once, and the time of
// the latest first write.
func (w *watcher) withStatus() (n int, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.objs {
		if !s.firstStatus.IsZero() {
			n++
			if s.firstStatus.After(last) {
				last = s.firstStatus
			}
		}
	}
	return n, last
}

// unfinished lists the resources whose last version seen is not done, sorted.
func (w *watcher) unfinished() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, s := range w.objs {
		if s.last != nil && !s.last.Status.Done {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
