package main

import (
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

func TestPollUntilDoneCountsTheReadThatSeesDone(t *testing.T) {
	r := pollUntilDone(25*time.Second, func(time.Duration) time.Duration { return 10 * time.Second })
	if r.calls != 4 || r.lag != 5*time.Second {
		t.Errorf("reads at 0, 10, 20, 30 s of a 25 s solve: got %d calls, lag %s; want 4, 5s", r.calls, r.lag)
	}
	if r := pollUntilDone(0, func(time.Duration) time.Duration { return time.Second }); r.calls != 1 || r.lag != 0 {
		t.Errorf("a finished operation costs one read: %+v", r)
	}
}

// The schedules must stay within their own caps; the figures themselves go to the docs.
func TestSchedulesStayWithinTheirCaps(t *testing.T) {
	cfg := policy.DefaultPollConfig
	for _, j := range []float64{0, 0.5, 0.999} {
		r := operatorSchedule(cfg, time.Hour, func() float64 { return j })
		if r.lag < 0 || r.lag > cfg.Max {
			t.Errorf("jitter %v: lag %s outside [0, %s]", j, r.lag, cfg.Max)
		}
	}
	if r := googleSchedule(time.Hour); r.lag < 0 || r.lag > time.Minute {
		t.Errorf("Google's lag %s outside [0, 1m]", r.lag)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(ds, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(ds, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := percentile(ds[:1], 0.99); p != time.Millisecond {
		t.Errorf("p99 of one = %s", p)
	}
}

// TestWritesAreClassifiedByWhatChanged feeds the watcher the versions one cancelled resource
// goes through.
func TestWritesAreClassifiedByWhatChanged(t *testing.T) {
	w := newWatcher(nil, "ns")
	at := time.Unix(100, 0)
	v := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1", Generation: 1}}
	rv := 1
	next := func(f func(o *opsv1.OptimizationOperation)) {
		o := v.DeepCopy()
		f(o)
		rv++
		o.ResourceVersion = strconv.Itoa(rv)
		v = o
		at = at.Add(time.Second)
		w.observe(watch.Modified, o, at)
	}
	w.observe(watch.Added, v, at)
	next(func(o *opsv1.OptimizationOperation) {
		o.Status.Conditions = []metav1.Condition{{Type: opsv1.ConditionSucceeded, Reason: opsv1.ReasonRunning}}
	})
	next(func(o *opsv1.OptimizationOperation) { o.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "x"}} })
	w.noteCancelSent("a", at)
	next(func(o *opsv1.OptimizationOperation) { o.Spec.Cancel, o.Generation = true, 2 })
	next(func(o *opsv1.OptimizationOperation) { o.Finalizers = []string{"f"} })
	next(func(o *opsv1.OptimizationOperation) {
		o.Status.Conditions = []metav1.Condition{{Type: opsv1.ConditionSucceeded, Reason: opsv1.ReasonCancelled}}
	})
	cancelledAt := at
	next(func(o *opsv1.OptimizationOperation) { o.Finalizers = nil })
	w.observe(watch.Modified, v, at) // the same version again, after a re-list

	objs, events, _, _, _ := w.snapshot()
	s := objs["a"]
	if (s.quiet != writeCounts{status: 1, other: 1}) {
		t.Errorf("before the cancel: %+v", s.quiet)
	}
	if (s.cancelPath != writeCounts{status: 1, metadata: 2, spec: 1}) {
		t.Errorf("from the cancel on: %+v", s.cancelPath)
	}
	if !s.cancelledAt.Equal(cancelledAt) || s.firstStatus.IsZero() || events != 8 {
		t.Errorf("cancelled at %v (want %v), first status %v, %d events", s.cancelledAt, cancelledAt, s.firstStatus, events)
	}
}
