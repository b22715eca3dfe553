// Command routeopt-emulator serves the emulated Route Optimization
// operations API (see internal/emulator and docs/emulator.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "routeopt-emulator:", err)
		}
		os.Exit(2)
	}
}

// config is the parsed command line.
type config struct {
	listen          string
	shutdownTimeout time.Duration
	sweepInterval   time.Duration
	logLevel        slog.Level
	opts            emulator.Options
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("routeopt-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	var (
		cancelMode = fs.String("cancel-mode", string(emulator.CancelSupported), "CancelOperation behaviour: supported, unimplemented, ignored or notfound")
		tokens     = fs.String("accepted-tokens", "", "comma-separated bearer tokens accepted with --require-token (empty: any token)")
		faults     = faultFlag{methods: map[string]emulator.MethodFault{}}
		logLevel   = fs.String("log-level", "info", "log level: debug (every request), info, warn or error")
	)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8085", "address to listen on; port 0 picks a free port")
	fs.DurationVar(&c.opts.CancelDelay, "cancel-delay", 0, "time from a supported cancel to the operation being done with CANCELLED (0: at once)")
	fs.DurationVar(&c.opts.BatchDuration, "batch-duration", emulator.DefaultBatchDuration, "how long a BatchOptimizeTours solve runs")
	fs.DurationVar(&c.opts.LongRunningDuration, "long-running-duration", emulator.DefaultLongRunningDuration, "how long an OptimizeToursLongRunning solve runs when the request has no timeout")
	fs.Float64Var(&c.opts.EarlyFinish, "early-finish", 0, "share of OptimizeToursLongRunning solves with a timeout that end before it, at a uniform point of it (the rest end at the timeout)")
	fs.DurationVar(&c.opts.Retention, "retention", emulator.DefaultRetention, "how long finished operations stay readable before GET answers 404")
	fs.BoolVar(&c.opts.RequireToken, "require-token", false, "require an Authorization: Bearer token on /v1 calls (401 without, 403 if not accepted)")
	fs.Int64Var(&c.opts.Seed, "seed", 0, "seed for fault injection and, when non-zero, operation IDs")
	fs.Var(&faults, "fault", "fault for a method, repeatable: METHOD:key=value,... with keys unavailable, resourceExhausted, internal, permissionDenied, cancelled (499), requestTimeout (408), hang (serve the call, never answer) (rates 0..1), noStatus (true: 499 and 408 envelopes without status), retryDelay, latency (durations), failNext, hangNext (counts); METHOD may be * (e.g. --fault 'GetOperation:unavailable=0.1,latency=50ms', --fault 'OptimizeToursLongRunning:hangNext=1')")
	fs.BoolVar(&faults.failAll, "fail-all", false, "answer every /v1 call with 503 UNAVAILABLE")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests on SIGTERM")
	fs.DurationVar(&c.sweepInterval, "sweep-interval", time.Minute, "how often expired operations are dropped from memory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	m, err := emulator.ParseCancelMode(*cancelMode)
	if err != nil {
		return nil, err
	}
	c.opts.CancelMode = m
	for _, t := range strings.Split(*tokens, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.opts.AcceptedTokens = append(c.opts.AcceptedTokens, t)
		}
	}
	if len(faults.methods) > 0 {
		c.opts.Faults.Methods = faults.methods
	}
	c.opts.Faults.FailAll = faults.failAll
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if c.sweepInterval <= 0 {
		return nil, fmt.Errorf("--sweep-interval must be positive")
	}
	return c, nil
}

// run serves until ctx is done, then shuts down gracefully. If ready is not
// nil it receives the bound address once the listener is up.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	c.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	srv, err := emulator.NewServer(c.opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "routeopt-emulator listening on http://%s\n", addr)
	fmt.Fprintf(stdout, "export ROUTEOPTIMIZATION_EMULATOR_HOST=%s\n", addr)
	if ready != nil {
		ready <- addr
	}

	// Requests run under a context that shutdown cancels: an injected latency then ends at
	// once instead of holding Shutdown until its timeout.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return reqCtx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	sweep := time.NewTicker(c.sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-sweep.C:
			if n := srv.Sweep(); n > 0 {
				c.opts.Logger.Debug("swept expired operations", "count", n)
			}
		case <-ctx.Done():
			c.opts.Logger.Info("shutting down")
			cancelRequests()
			sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
	}
}

// faultFlag parses repeated --fault METHOD:key=value,... flags.
type faultFlag struct {
	methods map[string]emulator.MethodFault
	failAll bool
}

func (f *faultFlag) String() string { return "" }

func (f *faultFlag) Set(v string) error {
	method, spec, ok := strings.Cut(v, ":")
	if !ok || method == "" {
		return fmt.Errorf("want METHOD:key=value,..., got %q", v)
	}
	mf := f.methods[method]
	for _, kv := range strings.Split(spec, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		var err error
		switch key {
		case "unavailable":
			mf.Unavailable, err = strconv.ParseFloat(val, 64)
		case "resourceExhausted":
			mf.ResourceExhausted, err = strconv.ParseFloat(val, 64)
		case "internal":
			mf.Internal, err = strconv.ParseFloat(val, 64)
		case "permissionDenied":
			mf.PermissionDenied, err = strconv.ParseFloat(val, 64)
		case "cancelled":
			mf.Cancelled, err = strconv.ParseFloat(val, 64)
		case "requestTimeout":
			mf.RequestTimeout, err = strconv.ParseFloat(val, 64)
		case "noStatus":
			mf.NoStatus, err = strconv.ParseBool(val)
		case "retryDelay":
			mf.RetryDelay, err = time.ParseDuration(val)
		case "latency":
			mf.Latency, err = time.ParseDuration(val)
		case "failNext":
			mf.FailNext, err = strconv.Atoi(val)
		case "hang":
			mf.Hang, err = strconv.ParseFloat(val, 64)
		case "hangNext":
			mf.HangNext, err = strconv.Atoi(val)
		default:
			return fmt.Errorf("unknown fault key %q", key)
		}
		if err != nil {
			return fmt.Errorf("fault %s: %w", key, err)
		}
	}
	f.methods[method] = mf
	// Validate early so a typo fails at startup with the flag named.
	return emulator.Faults{Methods: map[string]emulator.MethodFault{method: mf}}.Validate()
}
