package emulator

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRetryDelay is the RetryInfo delay of injected RESOURCE_EXHAUSTED
// errors when a fault sets none; it matches Google's guidance of backing off
// at least 30 s on quota errors.
const DefaultRetryDelay = 30 * time.Second

// MethodFault configures the faults injected into one method. The seven
// rates are probabilities in [0,1] whose sum may not exceed 1; one draw per
// call picks at most one of them.
type MethodFault struct {
	Unavailable       float64 // rate of 503 UNAVAILABLE
	ResourceExhausted float64 // rate of 429 RESOURCE_EXHAUSTED with RetryInfo
	Internal          float64 // rate of 500 INTERNAL
	// PermissionDenied is the rate of 403 PERMISSION_DENIED. At 1 on one method it plays
	// a principal whose role grants some methods and not others (operations.get without
	// operations.cancel), which the token check cannot express.
	PermissionDenied float64
	// Cancelled is the rate of HTTP 499 with status CANCELLED: a frontend or
	// proxy gave up on the request. Go's REST stack reads 499 as
	// FAILED_PRECONDITION; only the envelope's status tells the truth.
	Cancelled float64
	// RequestTimeout is the rate of HTTP 408 with status DEADLINE_EXCEEDED,
	// which the REST stack also reads as FAILED_PRECONDITION.
	RequestTimeout float64
	// NoStatus leaves the status out of the envelopes of injected 499 and 408
	// answers, as a proxy's answer may, so that only the HTTP status is left.
	NoStatus   bool
	RetryDelay time.Duration // RetryInfo delay; 0 means DefaultRetryDelay
	Latency    time.Duration // added to every call before it is answered
	// FailNext makes the next N calls answer 503 UNAVAILABLE regardless of
	// the rates, then counts down. Handy for deterministic retry tests.
	FailNext int
	// Hang is the rate of calls that are served in full and then never
	// answered: the emulator reads the body and does what the call asks (a
	// submit method starts its solve, a cancel takes effect), then holds the
	// connection without a byte of answer until the client gives up (or
	// MaxHang passes, when it closes the connection). This is the answer lost
	// after the request was taken, which a client cannot tell from one lost
	// before.
	Hang float64
	// HangNext makes the next N calls hang as Hang does, regardless of the
	// rates (after FailNext), then counts down.
	HangNext int
}

// MaxHang bounds how long a hung call holds its connection when the client
// does not give up.
const MaxHang = 10 * time.Minute

// Faults is the complete fault configuration. Methods is keyed by method name
// (see the Method* constants) or AllMethods ("*"), which applies to every
// method without an entry of its own.
type Faults struct {
	Methods map[string]MethodFault `json:"methods,omitempty"`
	// FailAll makes every /v1 call answer 503 UNAVAILABLE.
	FailAll bool `json:"failAll,omitempty"`
	// Projects scopes faults to the calls of one project: project ID, then
	// method name or AllMethods, as in Methods. A call of a project with an
	// entry here for its method (or "*") gets that entry instead of Methods';
	// see projectOf for which calls belong to a project. Quota, outages and
	// IAM are per project at Google, and one operator may serve several.
	Projects map[string]map[string]MethodFault `json:"projects,omitempty"`
}

// Validate reports the first problem with f.
func (f Faults) Validate() error {
	for m, mf := range f.Methods {
		if m != AllMethods && !isKnownMethod(m) {
			return fmt.Errorf("faults: unknown method %q", m)
		}
		for _, r := range []float64{mf.Unavailable, mf.ResourceExhausted, mf.Internal, mf.PermissionDenied, mf.Cancelled, mf.RequestTimeout, mf.Hang} {
			if !(r >= 0 && r <= 1) { // also rejects NaN
				return fmt.Errorf("faults: %s: rate %v outside [0,1]", m, r)
			}
		}
		if s := mf.rateSum(); s > 1+1e-9 {
			return fmt.Errorf("faults: %s: rates sum to %v > 1", m, s)
		}
		if mf.RetryDelay < 0 || mf.Latency < 0 || mf.FailNext < 0 || mf.HangNext < 0 {
			return fmt.Errorf("faults: %s: negative retryDelay, latency, failNext or hangNext", m)
		}
	}
	return validateProjects(f.Projects)
}

func (f Faults) clone() Faults {
	c := Faults{FailAll: f.FailAll}
	if f.Methods != nil {
		c.Methods = make(map[string]MethodFault, len(f.Methods))
		for k, v := range f.Methods {
			c.Methods[k] = v
		}
	}
	c.Projects = cloneProjects(f.Projects)
	return c
}

// faultInjector decides, per call, whether to inject a fault. Each method has
// its own random stream derived from the seed, so the fault sequence a method
// sees depends only on the seed and how often that method was called, not on
// traffic to other methods.
type faultInjector struct {
	seed   int64
	active atomic.Bool // fast path: false when no fault is configured

	mu     sync.Mutex
	faults Faults
	rngs   map[string]*rand.Rand
}

func newFaultInjector(seed int64, f Faults) *faultInjector {
	fi := &faultInjector{seed: seed}
	fi.set(f)
	return fi
}

// set replaces the configuration and restarts the random streams, so the
// same seed and configuration always produce the same sequence.
func (fi *faultInjector) set(f Faults) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.faults = f.clone()
	fi.rngs = map[string]*rand.Rand{}
	fi.active.Store(f.FailAll || len(f.Methods) > 0 || len(f.Projects) > 0)
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.faults.clone()
}

// entry returns the configuration that applies to a call of method in
// project ("" for a call of no project); fi.mu must be held. A method's own
// entry replaces the "*" entry entirely, and the project's entries replace
// the global ones.
func (fi *faultInjector) entry(project, method string) (at faultSlot, mf MethodFault, ok bool) {
	if byMethod, found := fi.faults.Projects[project]; found && project != "" {
		for _, key := range []string{method, AllMethods} {
			if mf, ok := byMethod[key]; ok {
				return faultSlot{project: project, key: key}, mf, true
			}
		}
	}
	if mf, ok := fi.faults.Methods[method]; ok {
		return faultSlot{key: method}, mf, true
	}
	mf, ok = fi.faults.Methods[AllMethods]
	return faultSlot{key: AllMethods}, mf, ok
}

// latency returns the delay to add to a call of method.
func (fi *faultInjector) latency(method string) time.Duration {
	return fi.latencyFor("", method)
}

// latencyFor returns the delay to add to a call of method in project.
func (fi *faultInjector) latencyFor(project, method string) time.Duration {
	if !fi.active.Load() {
		return 0
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	_, mf, _ := fi.entry(project, method)
	return mf.Latency
}

// verdict is the fault injected into one call: at most one of an error
// answer instead of the call, or a hang after it.
type verdict struct {
	err  *apiError
	hang bool
}

// decide returns the fault to inject into a call of method.
func (fi *faultInjector) decide(method string) verdict {
	return fi.decideFor("", method)
}

// decideFor returns the fault to inject into a call of method in project.
func (fi *faultInjector) decideFor(project, method string) verdict {
	if !fi.active.Load() {
		return verdict{}
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()

	if fi.faults.FailAll {
		return verdict{err: errUnavailable(method)}
	}
	at, mf, ok := fi.entry(project, method)
	if !ok {
		return verdict{}
	}
	switch {
	case mf.FailNext > 0:
		mf.FailNext--
		fi.store(at, mf)
		return verdict{err: errUnavailable(method)}
	case mf.HangNext > 0:
		mf.HangNext--
		fi.store(at, mf)
		return verdict{hang: true}
	case mf.rateSum() == 0:
		return verdict{}
	}
	// New kinds go last, so that a seed keeps giving the sequences it gave
	// before they existed.
	u := fi.rng(at.stream(method)).Float64()
	bound := 0.0
	for _, k := range []struct {
		rate float64
		err  func() *apiError
	}{
		{mf.Unavailable, func() *apiError { return errUnavailable(method) }},
		{mf.ResourceExhausted, func() *apiError {
			d := mf.RetryDelay
			if d == 0 {
				d = DefaultRetryDelay
			}
			return errResourceExhausted(method, d)
		}},
		{mf.Internal, func() *apiError { return errInternal(method) }},
		{mf.PermissionDenied, func() *apiError { return errPermissionDenied(method) }},
		{mf.Cancelled, func() *apiError { return errRequestCancelled(method, mf.NoStatus) }},
		{mf.RequestTimeout, func() *apiError { return errRequestTimeout(method, mf.NoStatus) }},
		{mf.Hang, nil},
	} {
		bound += k.rate
		if u < bound {
			if k.err == nil {
				return verdict{hang: true}
			}
			return verdict{err: k.err()}
		}
	}
	return verdict{}
}

func (mf MethodFault) rateSum() float64 {
	return mf.Unavailable + mf.ResourceExhausted + mf.Internal + mf.PermissionDenied + mf.Cancelled + mf.RequestTimeout + mf.Hang
}

// rng returns the method's random stream; fi.mu must be held.
func (fi *faultInjector) rng(method string) *rand.Rand {
	r, ok := fi.rngs[method]
	if !ok {
		h := fnv.New64a()
		_, _ = h.Write([]byte(method))
		r = rand.New(rand.NewPCG(uint64(fi.seed), h.Sum64()))
		fi.rngs[method] = r
	}
	return r
}
