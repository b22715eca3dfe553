package emulator

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// Server is the emulator: an http.Handler serving the Google-facing API under
// /v1/ and the admin API under /emulator/v1/. It is safe for concurrent use
// and starts no goroutines.
type Server struct {
	startup  *settings // restored by Reset
	clock    Clock
	log      *slog.Logger
	settings atomic.Pointer[settings]
	faults   *faultInjector
	initial  Faults // restored by Reset
	store    *store
	counters *counters
	solves   *solveCounters
	calls    *callLog
	records  *callRecords

	idMu  sync.Mutex
	idRng *mrand.Rand
	// seed is the --seed the emulator started with (0: none); Reset starts its ID sequence
	// again, so a reset emulator hands out the same names as a fresh one.
	seed uint64

	creates atomic.Uint64 // drives the occasional sweep of expired operations
}

// New returns a Server for opts. It panics if opts are invalid (an unknown
// CancelMode, negative durations, bad fault rates); use NewServer to get an
// error instead.
func New(opts Options) *Server {
	s, err := NewServer(opts)
	if err != nil {
		panic("emulator: " + err.Error())
	}
	return s
}

// NewServer is New with an error for invalid options.
func NewServer(opts Options) (*Server, error) {
	st, err := settingsFromOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := opts.Faults.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		startup:  st,
		clock:    opts.Clock,
		log:      opts.Logger,
		faults:   newFaultInjector(opts.Seed, opts.Faults),
		initial:  opts.Faults.clone(),
		store:    newStore(),
		counters: newCounters(),
		solves:   newSolveCounters(),
		calls:    newCallLog(),
		records:  newCallRecords(maxCallRecords),
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.seed = uint64(opts.Seed)
	s.resetIDs()
	s.settings.Store(st)
	return s, nil
}

// resetIDs starts the sequence of operation IDs. IDs are reproducible under a seed;
// otherwise random, so a restarted emulator never hands out a name a client may still poll.
func (s *Server) resetIDs() {
	idSeed := s.seed
	if idSeed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		idSeed = binary.LittleEndian.Uint64(b[:])
	}
	s.idMu.Lock()
	defer s.idMu.Unlock()
	s.idRng = mrand.New(mrand.NewPCG(idSeed, 0x726f7574656f7074))
}

// ServeHTTP dispatches to the Google-facing and admin surfaces.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/v1/"):
		s.serveGoogle(w, r)
	case p == tokenPath:
		s.serveToken(w, r)
	case strings.HasPrefix(p, adminPrefix):
		s.serveAdmin(w, r)
	case p == "/" || p == "/healthz":
		writeJSON(w, http.StatusOK, []byte("{}\n"))
	default:
		writeError(w, newError(codes.NotFound, "The requested URL %s was not found on this server.", clip(p)))
	}
}

// Sweep drops finished operations past retention. Reads already treat them
// as gone; sweeping only reclaims memory, and a long-running process should
// call it periodically (the command does, every minute).
func (s *Server) Sweep() int {
	now, ret := s.clock.Now(), s.settings.Load().retention
	n := 0
	for _, op := range s.store.all() {
		op.mu.Lock()
		op.advance(now)
		exp := op.expired(now, ret)
		op.mu.Unlock()
		if exp && s.store.remove(op) {
			n++
		}
	}
	return n
}

// Reset clears operations, counters (solves included) and faults and
// restores the startup configuration.
func (s *Server) Reset() {
	s.store.clear()
	s.counters.reset()
	s.solves.reset()
	s.calls.reset()
	s.records.reset()
	s.faults.set(s.initial)
	s.settings.Store(s.startup)
	if s.seed != 0 {
		s.resetIDs()
	}
}

// SetFaults replaces the fault configuration.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.set(f)
	return nil
}

// SetConfig applies a partial configuration change.
func (s *Server) SetConfig(c Config) error {
	for {
		old := s.settings.Load()
		n, err := old.apply(c)
		if err != nil {
			return err
		}
		if s.settings.CompareAndSwap(old, n) {
			return nil
		}
	}
}

// Counters returns a snapshot of the request counters.
func (s *Server) Counters() Counters { return s.counters.snapshot() }

// Calls returns the /v1 calls per second of the emulator's clock, by method.
func (s *Server) Calls() CallHistogram { return s.calls.snapshot() }

// Solves returns a snapshot of the solves the submit methods started.
func (s *Server) Solves() SolveCounters { return s.solves.snapshot() }

// newID returns a fresh operation ID: a decimal number, like the IDs
// Google's LRO services hand out.
func (s *Server) newID() string {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return fmt.Sprintf("%d", s.idRng.Uint64()>>1)
}

// solveTime is how long a solve with this timeout runs: to its end, or, for the share
// cfg.earlyFinish of them, to a uniformly drawn point of it.
func (s *Server) solveTime(cfg *settings, timeout time.Duration) time.Duration {
	if cfg.earlyFinish == 0 {
		return timeout
	}
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.idRng.Float64() >= cfg.earlyFinish {
		return timeout
	}
	return time.Duration(s.idRng.Float64() * float64(timeout))
}

// maybeSweep sweeps once every sweepEvery creations, bounding memory for
// in-process users that never call Sweep.
const sweepEvery = 4096

func (s *Server) maybeSweep() {
	if s.creates.Add(1)%sweepEvery == 0 {
		s.Sweep()
	}
}

func (s *Server) now() time.Time { return s.clock.Now() }
