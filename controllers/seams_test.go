package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/remote"
)

// The tests of this file probe the seams between the operator's parts: quota shared by a
// project, the Ready condition while both reads and cancels fail, the deadline of a deletion,
// and a resource that moves between shards while its submit is in flight. They judge the
// operator by what the emulator received (its call records, with arrival times) and by what
// the resource and its events say, never by how long the test ran.

// recordedEvent is one event the reconciler emitted.
type recordedEvent struct {
	at                   time.Time
	object, kind, reason string
}

// eventTally passes events on and keeps a copy of each. The API server's copies cannot be
// counted: the recorder folds repeats of a reason into one Event whose count it sends every
// 30 minutes.
type eventTally struct {
	inner events.EventRecorder
	mu    sync.Mutex
	list  []recordedEvent
}

func (e *eventTally) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	name := ""
	if o, ok := regarding.(client.Object); ok {
		name = o.GetName()
	}
	e.mu.Lock()
	e.list = append(e.list, recordedEvent{at: time.Now(), object: name, kind: eventtype, reason: reason})
	e.mu.Unlock()
	e.inner.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

// since returns the events about object emitted at or after t.
func (e *eventTally) since(object string, t time.Time) []recordedEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []recordedEvent
	for _, ev := range e.list {
		if ev.object == object && !ev.at.Before(t) {
			out = append(out, ev)
		}
	}
	return out
}

func countReasons(evs []recordedEvent) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		out[ev.kind+"/"+ev.reason]++
	}
	return out
}

// seamManager is one more manager of the harness's namespace, run as cmd/main.go runs the
// operator: a selector (--watch-label-selector) filters the cache and is handed to the
// reconciler; its budget is its own, as every process's is. Its events are counted.
type seamManager struct {
	events *eventTally
	stop   context.CancelFunc
	done   chan struct{}
}

func (h *harness) startSeamManager(sel labels.Selector) *seamManager {
	t := h.t
	t.Helper()
	cacheOpts := cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}}
	if sel != nil {
		cacheOpts.ByObject = map[client.Object]cache.ByObject{&opsv1.OptimizationOperation{}: {Label: sel}}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	must(t, err)
	opts := h.opts
	opts.Selector = sel
	m := &seamManager{events: &eventTally{inner: mgr.GetEventRecorder("routeopt-operator")}, done: make(chan struct{})}
	r := &controllers.OptimizationOperationReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  m.events,
		Clients:   remote.NewFactory(h.ctx, h.remote, nil),
		Budget:    budget.New(h.qps, h.burst),
		Options:   opts,
	}
	must(t, r.SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(h.ctx)
	m.stop = cancel
	go func() {
		defer close(m.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager (selector %v): %v", sel, err)
		}
	}()
	t.Cleanup(func() { m.stop(); <-m.done })
	return m
}

// callRecords returns the emulator's record of the calls of method in project (any when empty).
func (h *harness) callRecords(method, project string) []emulator.CallRecord {
	h.t.Helper()
	recs, err := h.admin.CallRecords(h.ctx)
	must(h.t, err)
	if recs.FirstSeq > 1 {
		h.t.Fatalf("the emulator dropped calls before %d from its records; this test needs all of them", recs.FirstSeq)
	}
	return recs.Of(method, project)
}

// arrivedIn counts the calls that arrived in [from, to) and were answered with status.
func arrivedIn(calls []emulator.CallRecord, from, to time.Time, status int) int {
	n := 0
	for _, c := range calls {
		if !c.Arrived.Before(from) && c.Arrived.Before(to) && !c.InFlight() && c.Status == status {
			n++
		}
	}
	return n
}

// readyWatch follows the Ready reason of one object through a watch, so that no write is
// missed between two looks.
type readyWatch struct {
	mu      sync.Mutex
	reasons []readyAt
}

type readyAt struct {
	at     time.Time
	reason string
}

func (h *harness) watchReady(name string) *readyWatch {
	h.t.Helper()
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	must(h.t, err)
	w, err := wc.Watch(h.ctx, &opsv1.OptimizationOperationList{}, client.InNamespace(h.ns))
	must(h.t, err)
	h.t.Cleanup(w.Stop)
	rw := &readyWatch{}
	go func() {
		for ev := range w.ResultChan() {
			o, ok := ev.Object.(*opsv1.OptimizationOperation)
			if !ok || o.Name != name || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionReady)
			if c == nil {
				continue
			}
			rw.mu.Lock()
			if n := len(rw.reasons); n == 0 || rw.reasons[n-1].reason != c.Reason {
				rw.reasons = append(rw.reasons, readyAt{time.Now(), c.Reason})
			}
			rw.mu.Unlock()
		}
	}()
	return rw
}

func (rw *readyWatch) history() []readyAt {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return append([]readyAt(nil), rw.reasons...)
}

func (rw *readyWatch) firstOf(reason string) (time.Time, bool) {
	for _, r := range rw.history() {
		if r.reason == reason {
			return r.at, true
		}
	}
	return time.Time{}, false
}

func (rw *readyWatch) String() string {
	var parts []string
	var start time.Time
	for i, r := range rw.history() {
		if i == 0 {
			start = r.at
		}
		parts = append(parts, fmt.Sprintf("+%.1fs %s", r.at.Sub(start).Seconds(), r.reason))
	}
	return strings.Join(parts, ", ")
}

// TestSeamQuotaIsPerProject: the operator tracks operations of two projects. Project p1 runs
// out of quota: every read of it is answered 429 RESOURCE_EXHAUSTED with a RetryInfo of 20 s.
// Quota is per project at Google, so p2's reads must go on at their usual rate meanwhile, and
// a solve started in p2 must be sent at once; p1 must not be read again before its 20 s are
// over (one read per operation at most, from those already on their way).
func TestSeamQuotaIsPerProject(t *testing.T) {
	const (
		// p1 and p2 in the messages; IDs as the API's validation of spec.submit.parent wants them.
		p1, p2     = "project-one", "project-two"
		perProject = 4
		retryDelay = 20 * time.Second
	)
	h := newHarness(t, withBudget(20, 10), withOptions(func(o *controllers.Options) {
		// One read a second, whatever the operation's age: the usual rate is the same
		// before and during the window.
		o.Poll.Min, o.Poll.Max = time.Second, time.Second
	}))
	for _, p := range []string{p1, p2} {
		for i := range perProject {
			op := h.createOperation(emulator.CreateOperationRequest{Project: p, Duration: longSolve})
			h.apply(fmt.Sprintf("%s-%d", p, i), op)
		}
	}
	for _, p := range []string{p1, p2} {
		for i := range perProject {
			h.waitState(fmt.Sprintf("%s-%d", p, i), opsv1.ReasonRunning)
		}
	}

	// The usual rate of p2's reads, before anything fails.
	const baseline = 5 * time.Second
	from := time.Now()
	time.Sleep(baseline)
	normal := arrivedIn(h.callRecords(getPath, p2), from, from.Add(baseline), 200)
	if normal < perProject*2 {
		t.Fatalf("p2's %d operations were read %d times in %s before any fault; the test needs reads every second or two", perProject, normal, baseline)
	}

	must(t, h.admin.SetProjectFaults(h.ctx, p1, map[string]emulator.MethodFault{
		getPath: {ResourceExhausted: 1, RetryDelay: retryDelay},
	}))
	h.waitCalls(getPath, 429, 1)
	var first429 time.Time
	for _, c := range h.callRecords(getPath, p1) {
		if !c.InFlight() && c.Status == 429 {
			first429 = c.Arrived
			break
		}
	}

	// A solve started in p2 while p1 is out of quota.
	submitSpec := toursInline("seam-p2-submit", "1800s")
	submitSpec.Parent = "projects/" + p2 + "/locations/global"
	created := time.Now()
	h.applySubmit("p2-submit", submitSpec)

	// Watch p1's whole pause, and a little of what follows.
	time.Sleep(time.Until(first429.Add(retryDelay + time.Second)))
	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{}))
	windowEnd := first429.Add(retryDelay)

	p2Reads := arrivedIn(h.callRecords(getPath, p2), first429, windowEnd, 200)
	want := int(float64(normal) * retryDelay.Seconds() / baseline.Seconds() / 2)
	if p2Reads < want {
		t.Errorf("while p1 answered 429 (%s from its first 429), p2's operations were read %d times with 200; "+
			"they were read %d times in %s before, so want at least %d (half their usual rate): a quota error of one project paused another's",
			retryDelay, p2Reads, normal, baseline, want)
	}

	// p1 respects its RetryInfo: after the reads already under way, nothing more until it is over.
	p1Calls := 0
	for _, c := range h.callRecords(getPath, p1) {
		if c.Arrived.After(first429.Add(2*time.Second)) && c.Arrived.Before(windowEnd.Add(-time.Second)) {
			p1Calls++
		}
	}
	if p1Calls > perProject {
		t.Errorf("p1 was read %d times within its %s RetryInfo (from 2 s after its first 429); want at most %d, one per operation", p1Calls, retryDelay, perProject)
	}

	submits := h.callRecords(emulator.MethodOptimizeToursLongRunning, p2)
	switch {
	case len(submits) == 0:
		t.Errorf("the solve of p2-submit (created %s after p1's first 429) was not sent while p1 was out of quota, nor in the second after; p1's 429 held back a call to p2",
			created.Sub(first429).Round(100*time.Millisecond))
	case submits[0].Arrived.Sub(created) > 5*time.Second:
		t.Errorf("the solve of p2-submit was sent %s after the resource was created (%s after p1's first 429); want it within 5 s: p1's 429 held back a call to p2",
			submits[0].Arrived.Sub(created).Round(100*time.Millisecond), submits[0].Arrived.Sub(first429).Round(100*time.Millisecond))
	}
	t.Logf("p2 reads: %d in %s before p1's 429s, %d in the %s after the first; p1 reads inside its RetryInfo: %d; p2 submits: %d",
		normal, baseline, p2Reads, retryDelay, p1Calls, len(submits))
}

// TestSeamReadyDoesNotFlapInOutage: a running operation is cancelled while the API answers 503
// to everything, reads and cancels alike. Once reads have failed for --remote-unavailable-after,
// Ready says RemoteUnavailable, and must keep saying it while the outage lasts: each failed
// cancel must not turn it back to Cancelling until the next failed read turns it again, with a
// Warning event for every turn.
func TestSeamReadyDoesNotFlapInOutage(t *testing.T) {
	const observe = 15 * time.Second
	h := newHarness(t, withOptions(func(o *controllers.Options) {
		o.RemoteUnavailableAfter = time.Second
		o.Poll.Min, o.Poll.Max = 100*time.Millisecond, time.Second
	}))
	h.stopManager()
	m := h.startSeamManager(nil)
	h.startRunning("outage")
	rw := h.watchReady("outage")

	must(t, h.admin.SetFaults(h.ctx, emulator.Faults{FailAll: true}))
	h.cancel("outage")
	deadline := time.Now().Add(30 * time.Second)
	var firstUnavailable time.Time
	for {
		if at, ok := rw.firstOf(opsv1.ReasonRemoteUnavailable); ok {
			firstUnavailable = at
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready never said RemoteUnavailable within 30 s of the outage (--remote-unavailable-after 1s); Ready went %s; %s",
				rw, describe(h.get("outage")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(firstUnavailable.Add(observe)))
	cancels, reads := len(h.callRecords(cancelPath, "")), len(h.callRecords(getPath, ""))

	var flips []string
	for _, r := range rw.history() {
		if r.at.After(firstUnavailable) && r.at.Before(firstUnavailable.Add(observe)) {
			flips = append(flips, r.reason)
		}
	}
	if len(flips) > 0 {
		t.Errorf("in the %s after Ready first said RemoteUnavailable, with reads and cancels failing throughout, its reason changed %d times (to %v); want none. Ready went: %s",
			observe, len(flips), flips, rw)
	}
	evs := countReasons(m.events.since("outage", time.Time{}))
	transitions := evs["Warning/"+opsv1.ReasonRemoteUnavailable] + evs["Normal/"+opsv1.ReasonCancelling] + evs["Warning/"+opsv1.ReasonCancelling]
	if evs["Warning/"+opsv1.ReasonRemoteUnavailable] > 1 || transitions > 2 {
		t.Errorf("the outage produced %d RemoteUnavailable and %d Cancelling events (%d cancels and %d reads sent); want one of each at most: one per state entered, not one per retry. All events: %v",
			evs["Warning/"+opsv1.ReasonRemoteUnavailable], evs["Normal/"+opsv1.ReasonCancelling]+evs["Warning/"+opsv1.ReasonCancelling], cancels, reads, evs)
	}
	t.Logf("Ready went %s; events %v; %d cancels and %d reads failed", rw, evs, cancels, reads)
}

// TestSeamDeletionWithHungCancelSendsNothingAfterTheDeadline: deletionPolicy Cancel, and the
// cancel endpoint takes every call and never answers. Deletion gives up on the cancel at
// DeletionTimestamp + --deletion-cancel-timeout (2 s), although a call may wait for its answer
// up to --request-timeout (5 s): no cancel may be sent after the deadline, none may be held
// open past it, and the resource must go.
func TestSeamDeletionWithHungCancelSendsNothingAfterTheDeadline(t *testing.T) {
	const (
		deletionTimeout = 2 * time.Second
		requestTimeout  = 5 * time.Second
		// A call sent just before the deadline arrives a moment after it; the emulator sees
		// a call given up at the deadline end a little later (it notices the closed
		// connection), more so on a loaded machine.
		sendSlack, endSlack = 300 * time.Millisecond, time.Second
	)
	h := newHarness(t, withRequestTimeout(requestTimeout), withOptions(func(o *controllers.Options) {
		o.DeletionCancelTimeout = deletionTimeout
	}))
	h.startRunning("hung", deletionPolicy(opsv1.DeletionPolicyCancel))
	h.waitFor("hung", "holding the finalizer", func(o *opsv1.OptimizationOperation) bool {
		return controllerutil.ContainsFinalizer(o, controllers.Finalizer)
	})
	h.fault(cancelPath, emulator.MethodFault{Hang: 1})
	h.delete("hung")
	o := h.get("hung")
	if o.DeletionTimestamp == nil {
		t.Fatalf("hung: no deletionTimestamp after the delete: %s", describe(o))
	}
	deadline := o.DeletionTimestamp.Add(deletionTimeout)
	h.waitGone("hung")
	gone := time.Now()

	// Whatever was still held when the resource went is over once its client gives up.
	var cancels []emulator.CallRecord
	for until := time.Now().Add(requestTimeout + 5*time.Second); ; time.Sleep(100 * time.Millisecond) {
		cancels = h.callRecords(cancelPath, "")
		inFlight := 0
		for _, c := range cancels {
			if c.InFlight() {
				inFlight++
			}
		}
		if inFlight == 0 || time.Now().After(until) {
			break
		}
	}
	if len(cancels) == 0 {
		t.Fatal("no cancel was sent at all; the test needs the first one, sent within the deadline, to hang")
	}
	var lines []string
	for _, c := range cancels {
		end := "still held"
		if !c.InFlight() {
			end = fmt.Sprintf("ended %+.1fs (status %d)", c.Ended.Sub(deadline).Seconds(), c.Status)
		}
		lines = append(lines, fmt.Sprintf("arrived %+.1fs, %s", c.Arrived.Sub(deadline).Seconds(), end))
	}
	summary := fmt.Sprintf("cancels relative to the deadline (deletionTimestamp %s + %s): %s; the resource was gone %+.1fs",
		o.DeletionTimestamp.UTC().Format(time.RFC3339), deletionTimeout, strings.Join(lines, "; "), gone.Sub(deadline).Seconds())
	var sentLate, heldLate []string
	for _, c := range cancels {
		if c.Arrived.After(deadline.Add(sendSlack)) {
			sentLate = append(sentLate, fmt.Sprintf("%+.1fs", c.Arrived.Sub(deadline).Seconds()))
		}
		if c.InFlight() || c.Ended.After(deadline.Add(endSlack)) {
			heldLate = append(heldLate, fmt.Sprintf("%+.1fs", c.Arrived.Sub(deadline).Seconds()))
		}
	}
	if len(sentLate) > 0 {
		t.Errorf("%d cancels were sent after the deletion's deadline (arriving at %s); want none. %s", len(sentLate), strings.Join(sentLate, ", "), summary)
	}
	if len(heldLate) > 0 {
		t.Errorf("%d cancels (sent at %s) were held open past the deadline, waited for up to --request-timeout %s; want each given up by the deadline",
			len(heldLate), strings.Join(heldLate, ", "), requestTimeout)
	}
	t.Log(summary)
}

// TestSeamRelabelDuringInFlightSubmit: two shards, shard=a and shard=b. A resource of shard a
// starts its solve; while the request is at the server (its answer takes 4 s), the resource is
// relabelled to shard b. The request started a solve, and shard a received its name: the
// resource must end up tracking that operation (whichever shard does it) with exactly one
// solve started, not held SubmitUncertain by shard b, nor left with a name nobody reads.
func TestSeamRelabelDuringInFlightSubmit(t *testing.T) {
	const (
		label   = "seam-relabel"
		latency = 4 * time.Second
	)
	h := newHarness(t)
	h.stopManager()
	sel := func(s string) labels.Selector { return labels.SelectorFromSet(labels.Set{"shard": s}) }
	h.startSeamManager(sel("a"))
	h.startSeamManager(sel("b"))
	h.fault(emulator.MethodOptimizeToursLongRunning, emulator.MethodFault{Latency: latency})

	h.applySubmit("moving", toursInline(label, "1800s"), func(o *opsv1.OptimizationOperation) {
		o.Labels = map[string]string{"shard": "a"}
	})
	rw := h.watchReady("moving")
	var sent emulator.CallRecord
	for until := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c := h.callRecords(emulator.MethodOptimizeToursLongRunning, ""); len(c) > 0 {
			sent = c[0]
			break
		}
		if time.Now().After(until) {
			t.Fatalf("shard a never sent the request of moving: %s", describe(h.get("moving")))
		}
	}
	if !sent.InFlight() {
		t.Fatalf("the request was answered before the relabel could happen: %+v", sent)
	}
	obj := h.get("moving")
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Labels["shard"] = "b"
	must(t, k8s.Patch(h.ctx, obj, patch))
	relabelled := time.Now()

	var answered emulator.CallRecord
	for until := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c := h.callRecords(emulator.MethodOptimizeToursLongRunning, ""); len(c) > 0 && !c[0].InFlight() {
			answered = c[0]
			break
		}
		if time.Now().After(until) {
			t.Fatal("the emulator never answered the request")
		}
	}
	if answered.Status != 200 {
		t.Fatalf("the request was answered %d, want 200", answered.Status)
	}

	// Tracking means reading: the operation finishes a little after the answer, and the
	// resource must say so. Bounded: a tracked operation is read every second at most.
	var last *opsv1.OptimizationOperation
	for until := answered.Ended.Add(10 * time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		if last = h.get("moving"); last.Status.OperationName != "" {
			break
		}
	}
	if last.Status.OperationName == "" {
		t.Fatalf("10 s after the server answered the request with an operation name (relabelled to shard b %.1fs before the answer), the resource holds no status.operationName: Succeeded %s, Ready %s: %s",
			answered.Ended.Sub(relabelled).Seconds(), condition(last, opsv1.ConditionSucceeded), condition(last, opsv1.ConditionReady), describe(last))
	}
	op := last.Status.OperationName
	time.Sleep(time.Until(answered.Ended.Add(2 * time.Second)))
	must(t, h.admin.Finish(h.ctx, op))
	finished := time.Now()
	for until := finished.Add(15 * time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		if last = h.get("moving"); last.Status.Done {
			break
		}
	}
	if !last.Status.Done || succeededReason(last) != opsv1.ReasonSucceeded {
		var readsAfter int
		for _, c := range h.callRecords(getPath, "") {
			if c.Name == op && c.Arrived.After(*answered.Ended) {
				readsAfter++
			}
		}
		t.Errorf("the resource does not track the operation its submit started: relabelled to shard b %.1fs before the server answered, it holds %s, "+
			"but 15 s after that operation finished it still says Succeeded %s, Ready %s (want True/Succeeded); the operation was read %d times after the answer. Ready went: %s. %s",
			answered.Ended.Sub(relabelled).Seconds(), op, condition(last, opsv1.ConditionSucceeded), condition(last, opsv1.ConditionReady), readsAfter, rw, describe(last))
	}
	t.Logf("Ready went: %s", rw)
	if n, calls := h.solves().ByLabel[label], len(h.callRecords(emulator.MethodOptimizeToursLongRunning, "")); n != 1 || calls != 1 {
		t.Errorf("%d solves started and %d requests sent for the resource; want exactly one of each", n, calls)
	}
}
