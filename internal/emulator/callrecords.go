package emulator

import (
	"sync"
	"time"
)

// maxCallRecords bounds the per-call log: the most recent calls, enough for
// any test's assertions, at a few megabytes however long the emulator runs.
// The per-second CallHistogram covers longer spans.
const maxCallRecords = 1 << 16

// CallRecord is one /v1 call as the emulator saw it. Arrival is taken before
// any injected latency, so it is when the client sent the call, not when the
// emulator served it.
type CallRecord struct {
	// Seq numbers the calls in order of arrival, from 1.
	Seq    uint64 `json:"seq"`
	Method string `json:"method"`
	// Name is the resource the call addressed: the operation name, the parent
	// of a submit method, or the name prefix a list covers (empty: all).
	Name string `json:"name"`
	// Project is the project of Name (see projectOf), empty for none.
	Project string    `json:"project,omitempty"`
	Arrived time.Time `json:"arrived"`
	// Ended is when the call was answered, or (Status StatusNoAnswer) when the
	// emulator let go of a call it never answered; nil while the call is in
	// flight.
	Ended  *time.Time `json:"ended,omitempty"`
	Status int        `json:"status"`
}

// InFlight reports whether the emulator still holds the call.
func (c CallRecord) InFlight() bool { return c.Ended == nil }

// CallRecords lists the latest /v1 calls in order of arrival, calls still in
// flight included. Calls before Seq FirstSeq were dropped to bound memory.
type CallRecords struct {
	FirstSeq uint64       `json:"firstSeq"`
	Calls    []CallRecord `json:"calls"`
}

// Of returns the calls of method (any method when empty) in project (any
// project when empty), in order of arrival.
func (r CallRecords) Of(method, project string) []CallRecord {
	var out []CallRecord
	for _, c := range r.Calls {
		if (method == "" || c.Method == method) && (project == "" || c.Project == project) {
			out = append(out, c)
		}
	}
	return out
}

// callRecords keeps the latest calls one by one, unlike callLog, which counts
// them by second: a test that asks whether a call went out after some instant
// needs the instant, and which resource it was for.
type callRecords struct {
	mu    sync.Mutex
	limit int
	buf   []CallRecord
	first uint64 // Seq of buf[0]
	next  uint64
}

func newCallRecords(limit int) *callRecords {
	r := &callRecords{limit: limit}
	r.reset()
	return r
}

// arrive records a call as it arrives and returns its Seq.
func (r *callRecords) arrive(method, name string, at time.Time) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) >= r.limit {
		// Drop the older half at once: copying on every call would cost a
		// copy of the whole log per call.
		keep := r.limit / 2
		drop := len(r.buf) - keep
		r.buf = append(r.buf[:0], r.buf[drop:]...)
		r.first += uint64(drop)
	}
	seq := r.next
	r.next++
	r.buf = append(r.buf, CallRecord{Seq: seq, Method: method, Name: name, Project: projectOf(name), Arrived: at})
	return seq
}

// answer records how the call seq ended, unless it was dropped meanwhile.
func (r *callRecords) answer(seq uint64, status int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.first || seq >= r.next {
		return
	}
	c := &r.buf[seq-r.first]
	c.Status, c.Ended = status, &at
}

func (r *callRecords) snapshot() CallRecords {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := CallRecords{FirstSeq: r.first, Calls: make([]CallRecord, len(r.buf))}
	copy(out.Calls, r.buf)
	return out
}

func (r *callRecords) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf, r.first, r.next = nil, 1, 1
}

// CallRecords returns the latest /v1 calls one by one, in order of arrival.
func (s *Server) CallRecords() CallRecords { return s.records.snapshot() }
