package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"sync"

	"google.golang.org/protobuf/proto"
)

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

// SolveCounters count the solves the submit methods (BatchOptimizeTours,
// OptimizeToursLongRunning, OptimizeToursUri) started: every call that
// created an operation, whether its answer reached the client or not (see the
// hang fault). A call refused before it created one (an injected fault, an
// invalid request) counts nowhere here.
type SolveCounters struct {
	// ByMethod counts solves by method name.
	ByMethod map[string]int64 `json:"byMethod"`
	// ByHash counts solves by request hash: the SHA-256, in hex, of the
	// deterministic protobuf encoding of the decoded request message with
	// parent set from the URL. It is the hash internal/submit computes and
	// the operator records in status.submit.requestHash, so a test can ask
	// how many solves one resource's request started.
	ByHash map[string]int64 `json:"byHash"`
	// ByLabel counts solves by the request's label (OptimizeToursLongRunning)
	// or by the displayName of each model config (BatchOptimizeTours, one count
	// per model). Empty labels are not counted.
	ByLabel map[string]int64 `json:"byLabel"`
}

type solveCounters struct {
	mu sync.Mutex
	c  SolveCounters
}

func newSolveCounters() *solveCounters {
	s := &solveCounters{}
	s.reset()
	return s
}

func (s *solveCounters) add(method, hash string, labels []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.ByMethod[method]++
	s.c.ByHash[hash]++
	for _, l := range labels {
		if l != "" {
			s.c.ByLabel[l]++
		}
	}
}

func (s *solveCounters) snapshot() SolveCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SolveCounters{ByMethod: maps.Clone(s.c.ByMethod), ByHash: maps.Clone(s.c.ByHash), ByLabel: maps.Clone(s.c.ByLabel)}
}

func (s *solveCounters) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c = SolveCounters{ByMethod: map[string]int64{}, ByHash: map[string]int64{}, ByLabel: map[string]int64{}}
}

// requestHash is the SolveCounters.ByHash key of m.
func requestHash(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "unencodable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
