package emulator

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// CancelMode selects how CancelOperation behaves.
type CancelMode string

const (
	// CancelSupported answers {} and, after Options.CancelDelay, turns the
	// operation into a done one with error code 1 (CANCELLED).
	CancelSupported CancelMode = "supported"
	// CancelUnimplemented answers 501 UNIMPLEMENTED, as the production
	// service documents for its "(Currently unsupported)" methods.
	CancelUnimplemented CancelMode = "unimplemented"
	// CancelIgnored answers {} but lets the solve run to completion: the
	// best-effort semantics allow a server to do exactly that.
	CancelIgnored CancelMode = "ignored"
	// CancelNotFound answers 404 NOT_FOUND to a cancel of a
	// projects/*/locations/*/operations/* name while GET still reads it:
	// production's cancel URL template only matches operations/**, so this is
	// a plausible answer there too.
	CancelNotFound CancelMode = "notfound"
)

// ParseCancelMode validates a cancel mode name.
func ParseCancelMode(s string) (CancelMode, error) {
	switch m := CancelMode(s); m {
	case CancelSupported, CancelUnimplemented, CancelIgnored, CancelNotFound:
		return m, nil
	}
	return "", fmt.Errorf("unknown cancel mode %q (want %s, %s, %s or %s)", s, CancelSupported, CancelUnimplemented, CancelIgnored, CancelNotFound)
}

// Defaults applied by New to zero Options fields.
const (
	DefaultBatchDuration       = 30 * time.Second
	DefaultLongRunningDuration = 10 * time.Second
	DefaultRetention           = time.Hour
)

// Options configure a Server. The zero value is a usable emulator.
type Options struct {
	// Clock drives solve ends, cancellation and retention. Nil means the
	// real clock.
	Clock Clock
	// CancelMode defaults to CancelSupported.
	CancelMode CancelMode
	// CancelDelay is how long after a supported cancel the operation becomes
	// done with CANCELLED. Zero means at once: a GET right after the cancel
	// already sees the operation done.
	CancelDelay time.Duration
	// BatchDuration is how long a BatchOptimizeTours solve runs. Zero means
	// DefaultBatchDuration.
	BatchDuration time.Duration
	// LongRunningDuration is how long an OptimizeToursLongRunning (or
	// OptimizeToursUri) solve runs when the request sets no timeout. Zero
	// means DefaultLongRunningDuration.
	LongRunningDuration time.Duration
	// EarlyFinish is the share of OptimizeToursLongRunning solves whose request sets a
	// timeout that end before it, at a uniformly drawn point of it; the rest end at the
	// timeout, as large problems do (the server answers before the deadline and uses most of
	// it). Zero: every solve ends at its timeout.
	EarlyFinish float64
	// Retention is how long a finished operation stays readable; after that
	// it answers 404 like an expired production operation. Zero means
	// DefaultRetention.
	Retention time.Duration
	// RequireToken makes every /v1 call carry "Authorization: Bearer <token>"
	// (401 UNAUTHENTICATED otherwise). With AcceptedTokens non-empty a token
	// outside the list answers 403 PERMISSION_DENIED; with it empty any token
	// is accepted.
	RequireToken   bool
	AcceptedTokens []string
	// Seed makes fault injection (and generated operation IDs, when non-zero)
	// reproducible.
	Seed int64
	// Faults are active from the start; see SetFaults for run-time changes.
	Faults Faults
	// Logger receives one record per request. Nil means silent.
	Logger *slog.Logger
}

// Kinds of operation, named after the method that creates them.
const (
	KindOptimizeToursLongRunning = "optimizeToursLongRunning"
	KindBatchOptimizeTours       = "batchOptimizeTours"
	KindOptimizeToursURI         = "optimizeToursUri"
)

// settings is the run-time configuration, replaced wholesale (copy on write)
// so request handling reads it without locking.
type settings struct {
	cancelMode          CancelMode
	cancelDelay         time.Duration
	batchDuration       time.Duration
	longRunningDuration time.Duration
	earlyFinish         float64
	retention           time.Duration
	requireToken        bool
	acceptedTokens      map[string]struct{}
}

func settingsFromOptions(o Options) (*settings, error) {
	s := &settings{
		cancelMode:          o.CancelMode,
		cancelDelay:         o.CancelDelay,
		batchDuration:       o.BatchDuration,
		longRunningDuration: o.LongRunningDuration,
		earlyFinish:         o.EarlyFinish,
		retention:           o.Retention,
		requireToken:        o.RequireToken,
		acceptedTokens:      tokenSet(o.AcceptedTokens),
	}
	if s.cancelMode == "" {
		s.cancelMode = CancelSupported
	}
	if _, err := ParseCancelMode(string(s.cancelMode)); err != nil {
		return nil, err
	}
	if s.batchDuration == 0 {
		s.batchDuration = DefaultBatchDuration
	}
	if s.longRunningDuration == 0 {
		s.longRunningDuration = DefaultLongRunningDuration
	}
	if s.retention == 0 {
		s.retention = DefaultRetention
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *settings) validate() error {
	switch {
	case s.cancelDelay < 0:
		return fmt.Errorf("cancel delay %v is negative", s.cancelDelay)
	case s.batchDuration < 0:
		return fmt.Errorf("batch duration %v is negative", s.batchDuration)
	case s.longRunningDuration < 0:
		return fmt.Errorf("long-running duration %v is negative", s.longRunningDuration)
	case s.retention <= 0:
		return fmt.Errorf("retention %v must be positive", s.retention)
	case !(s.earlyFinish >= 0 && s.earlyFinish <= 1): // also rejects NaN
		return fmt.Errorf("early finish share %v outside [0,1]", s.earlyFinish)
	}
	return nil
}

func tokenSet(tokens []string) map[string]struct{} {
	m := make(map[string]struct{}, len(tokens))
	for _, t := range tokens {
		if t != "" {
			m[t] = struct{}{}
		}
	}
	return m
}

// Config is a partial run-time configuration change: nil fields are left
// unchanged. In JSON, durations are strings such as "2s".
type Config struct {
	CancelMode          *CancelMode    `json:"cancelMode,omitempty"`
	CancelDelay         *time.Duration `json:"cancelDelay,omitempty"`
	BatchDuration       *time.Duration `json:"batchDuration,omitempty"`
	LongRunningDuration *time.Duration `json:"longRunningDuration,omitempty"`
	Retention           *time.Duration `json:"retention,omitempty"`
	RequireToken        *bool          `json:"requireToken,omitempty"`
	// AcceptedTokens replaces the accepted token list when non-nil; an empty
	// list accepts any bearer token.
	AcceptedTokens []string `json:"acceptedTokens,omitempty"`
}

// apply returns a copy of s with c's non-nil fields applied.
func (s *settings) apply(c Config) (*settings, error) {
	n := *s
	if c.CancelMode != nil {
		m, err := ParseCancelMode(string(*c.CancelMode))
		if err != nil {
			return nil, err
		}
		n.cancelMode = m
	}
	if c.CancelDelay != nil {
		n.cancelDelay = *c.CancelDelay
	}
	if c.BatchDuration != nil {
		n.batchDuration = *c.BatchDuration
	}
	if c.LongRunningDuration != nil {
		n.longRunningDuration = *c.LongRunningDuration
	}
	if c.Retention != nil {
		n.retention = *c.Retention
	}
	if c.RequireToken != nil {
		n.requireToken = *c.RequireToken
	}
	if c.AcceptedTokens != nil {
		n.acceptedTokens = tokenSet(c.AcceptedTokens)
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

// config reports s in full as a Config.
func (s *settings) config() Config {
	mode, delay, batch, lr, ret, req := s.cancelMode, s.cancelDelay, s.batchDuration, s.longRunningDuration, s.retention, s.requireToken
	tokens := make([]string, 0, len(s.acceptedTokens))
	for t := range s.acceptedTokens {
		tokens = append(tokens, t)
	}
	slices.Sort(tokens)
	return Config{
		CancelMode: &mode, CancelDelay: &delay, BatchDuration: &batch, LongRunningDuration: &lr,
		Retention: &ret, RequireToken: &req, AcceptedTokens: tokens,
	}
}
