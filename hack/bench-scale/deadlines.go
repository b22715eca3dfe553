package main

// The deadline run (-deadlines): N resources start their own solves through spec.submit
// (OptimizeToursLongRunning with a request timeout), so the operator knows each solve's
// deadline. It asks how late the operator sees each solve done when the budget has to read
// every one of them around its deadline, how many reads that costs, and whether the budget
// held.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// deadlineParent is where the solves run; the emulator accepts any project.
const deadlineParent = "projects/demo-project/locations/global"

type deadlineOptions struct {
	on          bool
	timeouts    timeoutRange
	shared      bool
	sparse      bool // spec.pollBeforeDeadline: Sparse
	earlyFinish float64
	margin      time.Duration
	records     time.Duration // how often the emulator's call records are fetched
}

// timeoutRange is a flag value "lo-hi" (or one duration for both).
type timeoutRange struct{ lo, hi time.Duration }

func (r *timeoutRange) String() string {
	if r.lo == r.hi {
		return r.lo.String()
	}
	return r.lo.String() + "-" + r.hi.String()
}

func (r *timeoutRange) Set(s string) error {
	lo, hi, ranged := strings.Cut(strings.TrimSpace(s), "-")
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return err
	}
	b := a
	if ranged {
		if b, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return err
		}
	}
	if a <= 0 || b < a {
		return fmt.Errorf("%q: want 0 < lo <= hi", s)
	}
	r.lo, r.hi = a, b
	return nil
}

func deadlineFlags(d *deadlineOptions) {
	flag.BoolVar(&d.on, "deadlines", false,
		"run the deadline benchmark instead of the scale run: N resources with spec.submit (OptimizeToursLongRunning with a request timeout) "+
			"submitted as fast as the budget allows, watched until every solve is seen done")
	d.timeouts = timeoutRange{lo: 2 * time.Minute, hi: 20 * time.Minute}
	flag.Var(&d.timeouts, "timeouts", "with -deadlines: the requests' timeouts, drawn uniformly from lo-hi (seeded), or one duration")
	flag.BoolVar(&d.shared, "shared-deadline", false,
		"with -deadlines: every request's timeout is the upper end of -timeouts, so the solves end as close together as their submits came")
	flag.BoolVar(&d.sparse, "sparse", false,
		"with -deadlines: the resources set spec.pollBeforeDeadline: Sparse (reads about a fifth of the timeout apart before the deadline)")
	flag.Float64Var(&d.earlyFinish, "early-finish", 0,
		"with -deadlines: share of solves that end before their timeout, at a uniform point of it (the emulator's --early-finish); 0: every solve ends at its deadline")
	flag.DurationVar(&d.margin, "deadline-margin", 5*time.Minute,
		"with -deadlines: how long after the last deadline the run waits for solves not yet seen done")
	flag.DurationVar(&d.records, "records-interval", 20*time.Second,
		"with -deadlines: how often the emulator's per-call records are fetched (it keeps the latest 65536)")
}

func (d deadlineOptions) validate(n int, storm bool) error {
	switch {
	case storm:
		return fmt.Errorf("-deadlines and -storm are separate runs: choose one")
	case n < 1:
		return fmt.Errorf("-n %d: the deadline run needs a solve", n)
	case !(d.earlyFinish >= 0 && d.earlyFinish <= 1):
		return fmt.Errorf("-early-finish %v outside [0,1]", d.earlyFinish)
	case d.margin <= 0:
		return fmt.Errorf("-deadline-margin %s must be positive", d.margin)
	case d.records <= 0:
		return fmt.Errorf("-records-interval %s must be positive", d.records)
	}
	return nil
}

// draw is the n requests' timeouts: all the upper end with shared, else uniform over the
// range at millisecond resolution, seeded so that runs repeat.
func (d deadlineOptions) draw(n int) []time.Duration {
	out := make([]time.Duration, n)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range out {
		t := d.timeouts.hi
		if !d.shared {
			t = d.timeouts.lo + time.Duration(rng.Float64()*float64(d.timeouts.hi-d.timeouts.lo))
		}
		out[i] = t.Truncate(time.Millisecond)
	}
	return out
}

// submitBound is how long the submits may take: N of them at --api-qps, with the reads that
// compete for the budget meanwhile (they go after submits, so a few times N/qps is plenty).
func (d deadlineOptions) submitBound(n int, qps float64) time.Duration {
	return time.Duration(4*float64(n)/qps*float64(time.Second)) + 2*time.Minute
}

// toursRequest is an OptimizeToursRequest as the REST reference writes it: one vehicle, one
// shipment, labelled so that the emulator's solve counters tell the requests apart.
func toursRequest(label string, timeout time.Duration) []byte {
	return fmt.Appendf(nil, `{"label": %q, "timeout": "%.3fs", "model": {
  "vehicles": [{"label": "van-1", "costPerKilometer": 1}],
  "shipments": [{"label": "parcel-1", "deliveries": [{"arrivalLocation": {"latitude": 48.86, "longitude": 2.34}, "duration": "300s"}]}]}}`,
		label, timeout.Seconds())
}

// recordLog gathers the emulator's per-call records across fetches: the emulator keeps only the
// latest ones, so a long run fetches them before they are dropped.
type recordLog struct {
	mu     sync.Mutex
	bySeq  map[uint64]emulator.CallRecord
	maxSeq uint64
	lost   uint64 // calls dropped by the emulator before any fetch saw them
}

func newRecordLog() *recordLog { return &recordLog{bySeq: map[uint64]emulator.CallRecord{}} }

// merge adds a fetch; a later fetch of the same call replaces the earlier one (which may have
// been in flight).
func (l *recordLog) merge(r emulator.CallRecords) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.FirstSeq > l.maxSeq+1 {
		l.lost += r.FirstSeq - (l.maxSeq + 1)
	}
	for _, c := range r.Calls {
		l.bySeq[c.Seq] = c
		l.maxSeq = max(l.maxSeq, c.Seq)
	}
}

func (l *recordLog) fetch(ctx context.Context, admin *emulator.AdminClient) error {
	r, err := admin.CallRecords(ctx)
	if err != nil {
		return err
	}
	l.merge(r)
	return nil
}

// all returns the calls gathered so far, in order of arrival (Seq), and how many were lost.
func (l *recordLog) all() ([]emulator.CallRecord, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]emulator.CallRecord, 0, len(l.bySeq))
	for seq := uint64(1); seq <= l.maxSeq; seq++ {
		if c, ok := l.bySeq[seq]; ok {
			out = append(out, c)
		}
	}
	return out, l.lost
}

// deadlineRun is what the deadline run measured; report holds what the scale run collects.
type deadlineRun struct {
	report
	timeouts      []time.Duration // of resource i's request
	allSubmitted  time.Time       // every resource showed an operation name (zero: not within the bound)
	submitTimeout bool
	lastDeadline  time.Time // latest status.expectedEndTime seen
	doneTimeout   bool      // not every solve seen done within the bound
	records       []emulator.CallRecord
	lostRecords   uint64
}

// deadlineEmulatorOptions sets what the deadline run needs of the emulator: the early finishers, and
// finished operations kept readable for as long as any run lasts, so the report finds them.
func (b *bench) deadlineEmulatorOptions(o *emulator.Options) {
	if !b.o.dl.on {
		return
	}
	o.EarlyFinish = b.o.dl.earlyFinish
	o.Retention = 24 * time.Hour
}

// runDeadlines runs the deadline benchmark on the started emulator, control plane and watch.
func (b *bench) runDeadlines(ctx context.Context, manager, kubeconfig string) error {
	d := b.o.dl
	r := &deadlineRun{timeouts: d.draw(b.o.n)}
	log := newRecordLog()
	recCtx, stopRecords := context.WithCancel(ctx)
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		t := time.NewTicker(d.records)
		defer t.Stop()
		for {
			select {
			case <-recCtx.Done():
				return
			case <-t.C:
				if err := log.fetch(recCtx, b.admin); err != nil && recCtx.Err() == nil {
					b.logf("call records: %v", err)
				}
			}
		}
	}()
	defer func() { stopRecords(); <-recDone }()

	if err := b.startManager(ctx, manager, kubeconfig); err != nil {
		return err
	}
	if err := b.createSubmits(ctx, r.timeouts); err != nil {
		return err
	}
	if err := b.waitSubmitted(ctx, r, d.submitBound(b.o.n, b.qps)); err != nil {
		return err
	}
	r.memTracked = b.memory(ctx)
	if err := b.waitSeenDone(ctx, r); err != nil {
		return err
	}
	r.end = time.Now()

	stopRecords()
	<-recDone
	if err := log.fetch(ctx, b.admin); err != nil {
		return err
	}
	r.records, r.lostRecords = log.all()
	if err := b.collect(ctx, &r.report, nil, nil); err != nil {
		return err
	}
	b.printDeadlines(r)
	return nil
}

// createSubmits creates the N resources, each starting a solve of timeouts[i].
func (b *bench) createSubmits(ctx context.Context, timeouts []time.Duration) error {
	b.createStart = time.Now()
	err := b.parallel(ctx, b.o.n, func(ctx context.Context, i int) error {
		o := &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Name: resourceName(i), Namespace: b.ns},
			Spec: opsv1.OptimizationOperationSpec{Submit: &opsv1.SubmitSpec{Parent: deadlineParent,
				OptimizeToursLongRunning: &opsv1.OptimizeToursLongRunningRequest{
					Inline: &apiextensionsv1.JSON{Raw: toursRequest(resourceName(i), timeouts[i])}}}},
		}
		if b.o.dl.sparse {
			o.Spec.PollBeforeDeadline = opsv1.PollSparse
		}
		if err := b.cl.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.Name, err)
		}
		b.w.noteCreated(o.Name, time.Now())
		return nil
	})
	b.createEnd = time.Now()
	if err != nil {
		return err
	}
	b.logf("created %d resources with spec.submit in %s", b.o.n, b.createEnd.Sub(b.createStart).Round(time.Millisecond))
	return nil
}

// deadlineProgress is what the watch shows of the run so far.
type deadlineProgress struct {
	submitted, seenDone int
	lastDeadline        time.Time
}

func (b *bench) deadlineProgress() deadlineProgress {
	objs, _, _, _, _ := b.w.snapshot()
	var p deadlineProgress
	for _, s := range objs {
		if s.last != nil && s.last.Status.OperationName != "" {
			p.submitted++
			if e := s.last.Status.ExpectedEndTime; e != nil && e.After(p.lastDeadline) {
				p.lastDeadline = e.Time
			}
		}
		if !s.doneAt.IsZero() {
			p.seenDone++
		}
	}
	return p
}

// waitSubmitted waits until every resource shows its operation's name, bounded.
func (b *bench) waitSubmitted(ctx context.Context, r *deadlineRun, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	lastLog := time.Now()
	for {
		p := b.deadlineProgress()
		if p.submitted == b.o.n {
			r.allSubmitted = time.Now()
			b.logf("every resource submitted (%s after the first create)", round(r.allSubmitted.Sub(b.createStart)))
			return nil
		}
		if time.Now().After(deadline) {
			r.submitTimeout = true
			b.logf("submit bound %s passed: %d of %d submitted; waiting for their solves", bound, p.submitted, b.o.n)
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			b.logf("submitted %d of %d, %d seen done", p.submitted, b.o.n, p.seenDone)
			lastLog = time.Now()
		}
		if err := b.wait(ctx, time.Second); err != nil {
			return err
		}
	}
}

// waitSeenDone waits until the watch saw every resource done, bounded by the last deadline
// plus -deadline-margin.
func (b *bench) waitSeenDone(ctx context.Context, r *deadlineRun) error {
	p := b.deadlineProgress()
	r.lastDeadline = p.lastDeadline
	bound := r.lastDeadline
	if bound.IsZero() || p.submitted < b.o.n {
		// Solves not submitted yet (or deadlines not shown): the latest they could end.
		bound = later(bound, time.Now().Add(b.o.dl.timeouts.hi))
	}
	bound = bound.Add(b.o.dl.margin)
	b.logf("waiting for every solve to be seen done: last deadline in %s, bound in %s",
		round(time.Until(r.lastDeadline)), round(time.Until(bound)))
	lastLog := time.Now()
	for {
		p := b.deadlineProgress()
		r.lastDeadline = later(r.lastDeadline, p.lastDeadline)
		if p.seenDone == b.o.n {
			b.logf("every solve seen done")
			return nil
		}
		if time.Now().After(bound) {
			r.doneTimeout = true
			b.logf("bound passed: %d of %d seen done", p.seenDone, b.o.n)
			return nil
		}
		if time.Since(lastLog) >= 30*time.Second {
			left := "passed"
			if l := time.Until(r.lastDeadline); l > 0 {
				left = "in " + round(l).String()
			}
			b.logf("%d of %d seen done (%d submitted); last deadline %s", p.seenDone, b.o.n, p.submitted, left)
			lastLog = time.Now()
		}
		if err := b.wait(ctx, time.Second); err != nil {
			return err
		}
	}
}
