package emulator

import (
	"slices"
	"sync"
	"time"
)

// callHistorySeconds bounds the call history: a long-running emulator keeps the
// last day, enough for any benchmark, at a few kilobytes per busy minute.
const callHistorySeconds = 24 * 60 * 60

// CallSecond is the number of /v1 calls that arrived within one second of the
// emulator's clock, by method. Injected faults are included: they are calls a
// client spent.
type CallSecond struct {
	// Time is the start of the second.
	Time  time.Time        `json:"time"`
	Calls map[string]int64 `json:"calls"`
}

// CallHistogram lists the seconds in which /v1 calls arrived, oldest first;
// seconds without calls are left out. It covers the last day at most.
type CallHistogram struct {
	Seconds []CallSecond `json:"seconds"`
}

// MaxInWindow returns the largest number of calls of the given methods (all
// methods when none are given) within any window of whole seconds, and when
// that window started. Windows are aligned to the histogram's seconds, so a
// burst that straddles a second boundary may count lower than a sliding window
// would; window is rounded up to whole seconds.
func (h CallHistogram) MaxInWindow(window time.Duration, methods ...string) (int64, time.Time) {
	width := int64((window + time.Second - 1) / time.Second)
	if width < 1 {
		width = 1
	}
	var (
		best      int64
		bestStart time.Time
		sum       int64
		first     int // oldest second still inside the window
	)
	for _, s := range h.Seconds {
		sum += s.count(methods)
		for h.Seconds[first].Time.Unix() <= s.Time.Unix()-width {
			sum -= h.Seconds[first].count(methods)
			first++
		}
		if sum > best {
			best, bestStart = sum, h.Seconds[first].Time
		}
	}
	return best, bestStart
}

// Total returns the number of calls of the given methods (all when none are
// given) in the histogram.
func (h CallHistogram) Total(methods ...string) int64 {
	var n int64
	for _, s := range h.Seconds {
		n += s.count(methods)
	}
	return n
}

func (s CallSecond) count(methods []string) int64 {
	var n int64
	if len(methods) == 0 {
		for _, c := range s.Calls {
			n += c
		}
		return n
	}
	for _, m := range methods {
		n += s.Calls[m]
	}
	return n
}

// callLog counts calls per method per second of the emulator's clock. Counting
// by second rather than logging every call keeps its size independent of the
// call rate.
type callLog struct {
	mu       sync.Mutex
	bySecond map[int64]map[string]int64
	oldest   int64 // lower bound of the keys, for pruning
}

func newCallLog() *callLog { return &callLog{bySecond: map[int64]map[string]int64{}} }

func (c *callLog) add(method string, at time.Time) {
	sec := at.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.bySecond[sec]
	if !ok {
		if len(c.bySecond) == 0 || sec < c.oldest {
			c.oldest = sec
		}
		m = map[string]int64{}
		c.bySecond[sec] = m
		if limit := sec - callHistorySeconds; c.oldest <= limit {
			c.prune(limit)
		}
	}
	m[method]++
}

// prune drops the seconds up to limit. c.mu must be held.
func (c *callLog) prune(limit int64) {
	first := true
	for sec := range c.bySecond {
		switch {
		case sec <= limit:
			delete(c.bySecond, sec)
		case first || sec < c.oldest:
			c.oldest, first = sec, false
		}
	}
}

func (c *callLog) snapshot() CallHistogram {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := CallHistogram{Seconds: make([]CallSecond, 0, len(c.bySecond))}
	for sec, m := range c.bySecond {
		cp := make(map[string]int64, len(m))
		for k, v := range m {
			cp[k] = v
		}
		h.Seconds = append(h.Seconds, CallSecond{Time: time.Unix(sec, 0).UTC(), Calls: cp})
	}
	slices.SortFunc(h.Seconds, func(a, b CallSecond) int { return a.Time.Compare(b.Time) })
	return h
}

func (c *callLog) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bySecond = map[int64]map[string]int64{}
	c.oldest = 0
}
