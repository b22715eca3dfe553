package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// call is one /v1 call the emulator answered.
type call struct {
	method   string
	name     string // the operation, for GetOperation and CancelOperation
	status   int    // HTTP status, injected faults included
	arrived  time.Time
	answered time.Time // arrived plus the injected latency and the handling
}

// callRecorder is a slog.Handler for the emulator's request log (emulator.Options.Logger),
// which writes one record per /v1 call. It is the only record of which operation each call
// was for and when: the calls histogram counts per second and method only, and the
// per-operation counters leave out the calls an injected fault answered, and keep only the
// first and last read.
type callRecorder struct {
	mu    sync.Mutex
	calls []call
}

func (c *callRecorder) Enabled(context.Context, slog.Level) bool { return true } // reads log at debug
func (c *callRecorder) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *callRecorder) WithGroup(string) slog.Handler            { return c }

// Handle keeps the "request" records; the record's time is when the answer was written, and
// its "elapsed" goes back to the arrival (the emulator starts the clock as the call arrives).
func (c *callRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request" {
		return nil
	}
	cl := call{arrived: r.Time, answered: r.Time}
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		switch {
		case a.Key == "method" && v.Kind() == slog.KindString:
			cl.method = v.String()
		case a.Key == "name" && v.Kind() == slog.KindString:
			cl.name = v.String()
		case a.Key == "status" && v.Kind() == slog.KindInt64:
			cl.status = int(v.Int64())
		case a.Key == "elapsed" && v.Kind() == slog.KindDuration:
			cl.arrived = r.Time.Add(-v.Duration())
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, cl)
	return nil
}

// snapshot copies the calls so far, in the order they were answered.
func (c *callRecorder) snapshot() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// byOperation groups calls by operation, each list in order of arrival.
func byOperation(calls []call) map[string][]call {
	out := map[string][]call{}
	for _, cl := range calls {
		out[cl.name] = append(out[cl.name], cl)
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b call) int { return a.arrived.Compare(b.arrived) })
	}
	return out
}
