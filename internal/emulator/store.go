package emulator

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// shardCount spreads operations over independently locked maps so that
// concurrent GETs of different operations do not contend on one lock.
const shardCount = 64

// store is the in-memory operation table, safe for concurrent use.
type store struct {
	seed   maphash.Seed
	seq    atomic.Uint64
	shards [shardCount]shard
}

type shard struct {
	mu  sync.RWMutex
	ops map[string]*operation
}

func newStore() *store {
	s := &store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].ops = map[string]*operation{}
	}
	return s
}

func (s *store) shard(name string) *shard {
	return &s.shards[maphash.String(s.seed, name)%shardCount]
}

func (s *store) get(name string) *operation {
	sh := s.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.ops[name]
}

// insert adds op, assigning its sequence number, unless the name is taken.
func (s *store) insert(op *operation) bool {
	sh := s.shard(op.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.ops[op.name]; ok {
		return false
	}
	op.seq = s.seq.Add(1)
	sh.ops[op.name] = op
	return true
}

// remove deletes op if it is still the entry under its name; a concurrent
// remove-and-recreate of the same name must not drop the newer operation.
func (s *store) remove(op *operation) bool {
	sh := s.shard(op.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ops[op.name] != op {
		return false
	}
	delete(sh.ops, op.name)
	return true
}

// all returns every operation in creation order.
func (s *store) all() []*operation {
	var out []*operation
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, op := range sh.ops {
			out = append(out, op)
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b *operation) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out
}

func (s *store) clear() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.ops = map[string]*operation{}
		sh.mu.Unlock()
	}
}
