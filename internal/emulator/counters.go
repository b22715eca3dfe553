package emulator

import "sync"

// Counters counts answered /v1 requests by method and HTTP status, e.g.
// Counters["GetOperation"][503]. Injected faults are counted too.
type Counters map[string]map[int]int64

type counters struct {
	mu sync.Mutex
	m  Counters
}

func newCounters() *counters { return &counters{m: Counters{}} }

func (c *counters) add(method string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byStatus, ok := c.m[method]
	if !ok {
		byStatus = map[int]int64{}
		c.m[method] = byStatus
	}
	byStatus[status]++
}

func (c *counters) snapshot() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counters, len(c.m))
	for m, byStatus := range c.m {
		cp := make(map[int]int64, len(byStatus))
		for s, n := range byStatus {
			cp[s] = n
		}
		out[m] = cp
	}
	return out
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = Counters{}
}
