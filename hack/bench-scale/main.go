// Command bench-scale measures the operator at scale, end to end: a real kube-apiserver and
// etcd, the manager binary built from ./cmd, and the Route Optimization emulator, all on
// loopback. It creates N long solves and N OptimizationOperations, waits until every operation
// was read once, cancels a spread and a burst of them, and prints one report: time to the
// first reads, cancel latency seen on a watch, calls per second at the emulator against the
// budget, status writes per object, and the manager's memory. With -storm it runs a fault
// storm instead (storm.go), and with -deadlines solves it starts itself through spec.submit,
// whose deadlines it knows (deadlines.go). Run it with `make bench-scale`; see
// docs/performance.md.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

type options struct {
	n              int
	workers        int
	solve          time.Duration
	spread         int
	spreadEvery    time.Duration
	burst          int
	cancelBound    time.Duration
	readTimeout    time.Duration
	timeout        time.Duration
	settle         time.Duration
	managerArgs    string
	managerLog     string
	managerMemLim  string
	managerGOGC    string
	managerLater   bool
	scheduleTrials int
	scheduleOnly   bool
	storm          bool
	st             stormOptions
	dl             deadlineOptions
}

func parseFlags() options {
	var o options
	flag.IntVar(&o.n, "n", 1000, "number of remote operations and OptimizationOperations")
	flag.IntVar(&o.workers, "workers", 8, "goroutines creating operations and resources")
	flag.DurationVar(&o.solve, "solve", time.Hour, "duration of every remote solve (long, so none ends during the run)")
	flag.IntVar(&o.spread, "spread-cancels", 20, "cancels sent one at a time, -spread-interval apart")
	flag.DurationVar(&o.spreadEvery, "spread-interval", 150*time.Millisecond, "time between two spread cancels")
	flag.IntVar(&o.burst, "burst-cancels", 100, "cancels sent at once after the spread")
	flag.DurationVar(&o.cancelBound, "cancel-bound", 4*time.Minute,
		"how long after its patch a cancel may take to show Cancelled; later ones are reported, not waited for")
	flag.DurationVar(&o.readTimeout, "read-timeout", 0,
		"how long to wait until every operation was read once (0: 8 x N / --api-qps + 2m)")
	flag.DurationVar(&o.timeout, "timeout", 0, "bound of the whole run (0: the phases' bounds + 10m)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "time to keep watching after the last cancel, for the writes that follow it")
	flag.StringVar(&o.managerMemLim, "manager-gomemlimit", "64MiB",
		"GOMEMLIMIT of the manager: config/manager sets it to the container's memory request, 64Mi (empty: none)")
	flag.StringVar(&o.managerGOGC, "manager-gogc", "50", "GOGC of the manager, as config/manager sets it (empty: Go's default, 100)")
	flag.StringVar(&o.managerArgs, "manager-args", "",
		"extra manager flags, space separated, after the benchmark's own (a repeated flag's last value wins), e.g. '--api-qps=50 --api-burst=20'")
	flag.StringVar(&o.managerLog, "manager-log", "", "keep the manager's log in this file (default: a temporary file, removed at exit)")
	flag.BoolVar(&o.managerLater, "manager-after-create", false,
		"start the manager after all resources exist (a restart with N to catch up on) instead of before")
	flag.IntVar(&o.scheduleTrials, "schedule-trials", 10000, "random draws of each poller in the schedule comparison")
	flag.BoolVar(&o.scheduleOnly, "schedule-only", false, "print the poll schedule comparison for -solve and exit (starts nothing)")
	flag.BoolVar(&o.storm, "storm", false,
		"run the fault storm instead of the scale run: solves that end under faults, cancels amid them, then a quiet spell (-n defaults to 300)")
	stormFlags(&o.st)
	deadlineFlags(&o.dl)
	flag.Parse()
	if o.storm && !flagSet("n") {
		// Set through the flag, so that the header prints the value in effect.
		_ = flag.Set("n", strconv.Itoa(stormOperations))
	}
	return o
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func (o options) validate() error {
	if o.dl.on {
		return o.dl.validate(o.n, o.storm)
	}
	if o.storm {
		return o.st.validate(o.n)
	}
	if o.n < o.spread+o.burst {
		return fmt.Errorf("-n %d is below the %d cancels", o.n, o.spread+o.burst)
	}
	return nil
}

func main() {
	o := parseFlags()
	if o.scheduleOnly {
		printScheduleComparison(os.Stdout, o.solve, o.scheduleTrials)
		printDeadlineComparison(os.Stdout, o.scheduleTrials)
		return
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(2)
	}
	// kube-apiserver and etcd run in process groups of their own, so a terminal's Ctrl-C does
	// not reach them: exiting before cleanup would leave them running. Later signals are
	// therefore only acknowledged while the cleanup runs.
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench-scale: %s: stopping what the run started\n", s)
		cancel()
		for s := range sig {
			fmt.Fprintf(os.Stderr, "bench-scale: %s: still stopping (kube-apiserver, etcd, the manager), a few seconds more\n", s)
		}
	}()
	b := &bench{o: o, out: os.Stdout}
	if o.storm {
		b.rec = &callRecorder{}
	}
	err := b.run(ctx)
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

// bench is one run; cleanup undoes, in reverse, what run started.
type bench struct {
	o   options
	out io.Writer

	cleanups []func()
	dir      string

	emuURL string
	admin  *emulator.AdminClient
	rec    *callRecorder // every /v1 call, from the emulator's request log (storm only)
	cl     client.WithWatch
	w      *watcher
	ns     string

	mgr        *exec.Cmd
	mgrDone    chan struct{}
	mgrExit    error
	mgrLogPath string
	metricsURL string
	qps        float64
	burst      int

	started     time.Time
	createStart time.Time
	createEnd   time.Time
	mgrStart    time.Time
	ops         []string // remote operation names; resource i tracks ops[i]
}

func (b *bench) onCleanup(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%7.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) run(ctx context.Context) error {
	b.started = time.Now()
	var err error
	if b.dir, err = os.MkdirTemp("", "bench-scale-"); err != nil {
		return err
	}
	b.onCleanup(func() { _ = os.RemoveAll(b.dir) })

	manager, err := b.buildManager(ctx)
	if err != nil {
		return err
	}
	if b.qps, b.burst, err = budgetOf(ctx, manager, b.managerArgs()); err != nil {
		return err
	}
	b.defaultTimeouts()
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	b.printHeader()

	if err := b.startEmulator(); err != nil {
		return err
	}
	kubeconfig, cfg, err := b.startControlPlane()
	if err != nil {
		return err
	}
	if err := b.startWatch(ctx, cfg); err != nil {
		return err
	}
	if b.o.storm {
		return b.runStorm(ctx, manager, kubeconfig)
	}
	if b.o.dl.on {
		return b.runDeadlines(ctx, manager, kubeconfig)
	}
	if err := b.createOperations(ctx, func(int) time.Duration { return b.o.solve }); err != nil {
		return err
	}
	if !b.o.managerLater {
		if err := b.startManager(ctx, manager, kubeconfig); err != nil {
			return err
		}
	}
	if err := b.createResources(ctx); err != nil {
		return err
	}
	if b.o.managerLater {
		if err := b.startManager(ctx, manager, kubeconfig); err != nil {
			return err
		}
	}

	r := &report{}
	if err := b.waitFirstReads(ctx, r); err != nil {
		return err
	}
	r.memTracked = b.memory(ctx)
	before, err := b.admin.ListOperations(ctx)
	if err != nil {
		return err
	}

	targets := b.cancelTargets()
	spread, burst := targets[:b.o.spread], targets[b.o.spread:]
	r.spreadStart = time.Now()
	if r.spread, err = b.cancelPhase(ctx, "spread", spread, b.o.spreadEvery); err != nil {
		return err
	}
	r.burstStart = time.Now()
	if r.burst, err = b.cancelPhase(ctx, "burst", burst, 0); err != nil {
		return err
	}
	b.logf("watching %s more for the writes that follow the cancels", b.o.settle)
	if err := sleep(ctx, b.o.settle); err != nil {
		return err
	}
	r.end = time.Now()

	if err := b.collect(ctx, r, before, targets); err != nil {
		return err
	}
	b.print(r)
	return nil
}

// defaultTimeouts fills in the bounds left at 0 from the run's phases.
func (b *bench) defaultTimeouts() {
	if b.o.storm {
		if b.o.timeout == 0 {
			b.o.timeout = b.o.st.length + b.o.st.quiet + 10*time.Minute
		}
		return
	}
	if b.o.dl.on {
		if b.o.timeout == 0 {
			b.o.timeout = b.o.dl.submitBound(b.o.n, b.qps) + b.o.dl.timeouts.hi + b.o.dl.margin + 10*time.Minute
		}
		return
	}
	if b.o.readTimeout == 0 {
		// N first reads take at least N/qps. A scheduler that lets the fast early re-reads of
		// young operations take the budget needs several times that, which the run should
		// measure rather than cut short.
		b.o.readTimeout = time.Duration(8*float64(b.o.n)/b.qps*float64(time.Second)) + 2*time.Minute
	}
	if b.o.timeout == 0 {
		b.o.timeout = b.o.readTimeout + 2*b.o.cancelBound + b.o.settle + 10*time.Minute
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// buildManager builds ./cmd the way the Dockerfile does, so that its memory is the shipped
// binary's. Another change may leave the tree briefly unbuildable, so a failed build is
// retried a few times.
func (b *bench) buildManager(ctx context.Context) (string, error) {
	bin := filepath.Join(b.dir, "manager")
	var out []byte
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		b.logf("building the manager (go build -trimpath -ldflags '-s -w' ./cmd, as the Dockerfile does)")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd")
		cmd.Dir = testenv.RepoRoot()
		if out, err = cmd.CombinedOutput(); err == nil {
			return bin, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		b.logf("build failed (attempt %d of 3), retrying in 30s:\n%s", attempt, out)
		if err := sleep(ctx, 30*time.Second); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("go build ./cmd: %w\n%s", err, out)
}

// managerArgs are the flags the manager runs with, but for the addresses chosen at start.
func (b *bench) managerArgs() []string {
	args := strings.Fields(b.o.managerArgs)
	if b.o.dl.on {
		// First, so that -manager-args can still set it.
		args = append([]string{fmt.Sprintf("--max-submits-per-minute=%d", b.o.n)}, args...)
	}
	return args
}

var defaultRe = regexp.MustCompile(`\(default ([^)]+)\)`)

// budgetOf is the manager's call budget under args: the last --api-qps and --api-burst in
// args, or the defaults the binary's own help prints.
func budgetOf(ctx context.Context, manager string, args []string) (float64, int, error) {
	out, _ := exec.CommandContext(ctx, manager, "--help").CombinedOutput()
	defaults := map[string]string{}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || (f[0] != "-api-qps" && f[0] != "-api-burst") || i+1 >= len(lines) {
			continue
		}
		if m := defaultRe.FindStringSubmatch(lines[i+1]); m != nil {
			defaults[f[0][1:]] = m[1]
		}
	}
	vals := map[string]string{"api-qps": defaults["api-qps"], "api-burst": defaults["api-burst"]}
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		if _, known := vals[name]; !known {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		vals[name] = value
	}
	qps, err := strconv.ParseFloat(vals["api-qps"], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot tell the manager's --api-qps (%q): %w", vals["api-qps"], err)
	}
	burst, err := strconv.Atoi(vals["api-burst"])
	if err != nil {
		return 0, 0, fmt.Errorf("cannot tell the manager's --api-burst (%q): %w", vals["api-burst"], err)
	}
	return qps, burst, nil
}

func (b *bench) printHeader() {
	w := b.out
	fmt.Fprintln(w, "== bench-scale ==")
	goVersion := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(w, "machine:      %d CPUs (nproc), %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, goVersion)
	if m := cpuModel(); m != "" {
		fmt.Fprintf(w, "cpu:          %s\n", m)
	}
	// go run builds into a temporary directory; its path says nothing.
	fmt.Fprintf(w, "command:      %s\n", strings.Join(append([]string{"bench-scale"}, os.Args[1:]...), " "))
	var fl []string
	flag.VisitAll(func(f *flag.Flag) {
		// kubeconfig is controller-runtime's own flag, unused here: the control plane is started.
		if f.Name != "schedule-only" && f.Name != "manager-log" && f.Name != "kubeconfig" {
			fl = append(fl, fmt.Sprintf("-%s=%s", f.Name, f.Value))
		}
	})
	fmt.Fprintf(w, "flags:        %s\n", strings.Join(fl, " "))
	if b.o.storm || b.o.dl.on {
		fmt.Fprintf(w, "              (timeout %s in effect)\n", b.o.timeout)
	} else {
		fmt.Fprintf(w, "              (read-timeout %s and timeout %s in effect)\n", b.o.readTimeout, b.o.timeout)
	}
	fmt.Fprintf(w, "manager args: %s\n", strings.Join(append(b.fixedManagerArgs("<metrics>", "<probe>", "<ns>"), b.managerArgs()...), " "))
	fmt.Fprintf(w, "manager env:  GOMEMLIMIT=%s GOGC=%s\n", b.o.managerMemLim, b.o.managerGOGC)
	fmt.Fprintf(w, "budget:       --api-qps %g --api-burst %d\n", b.qps, b.burst)
	fmt.Fprintln(w)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (b *bench) fixedManagerArgs(metrics, probe, ns string) []string {
	return []string{"--metrics-bind-address=" + metrics, "--metrics-secure=false",
		"--health-probe-bind-address=" + probe, "--watch-namespaces=" + ns}
}

func (b *bench) startEmulator() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var opts emulator.Options
	if b.rec != nil {
		opts.Logger = slog.New(b.rec)
	}
	b.deadlineEmulatorOptions(&opts)
	srv := &http.Server{Handler: emulator.New(opts), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	b.onCleanup(func() { _ = srv.Close() })
	b.emuURL = "http://" + l.Addr().String()
	b.admin = &emulator.AdminClient{BaseURL: b.emuURL, HTTPClient: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute,
	}}
	b.logf("emulator at %s", b.emuURL)
	return nil
}

func (b *bench) startControlPlane() (string, *rest.Config, error) {
	b.logf("starting kube-apiserver and etcd")
	env, cfg, err := testenv.Start()
	if err != nil {
		return "", nil, err
	}
	b.onCleanup(func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench-scale: stopping the control plane:", err)
		}
	})
	kubeconfig := filepath.Join(b.dir, "kubeconfig")
	if err := testenv.Kubeconfig(env, kubeconfig); err != nil {
		return "", nil, err
	}
	b.logf("control plane at %s", cfg.Host)
	return kubeconfig, cfg, nil
}

func (b *bench) startWatch(ctx context.Context, cfg *rest.Config) error {
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := opsv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // as fast as the apiserver takes it
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	b.cl = cl
	b.ns = "bench-scale"
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}); err != nil {
		return err
	}
	b.w = newWatcher(cl, b.ns)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	b.onCleanup(func() { stop(); <-done })
	ready := make(chan error, 1)
	go func() {
		defer close(done)
		b.w.run(wctx, ready)
	}()
	return <-ready
}

// parallel runs f(i) for i in [0,n) on the benchmark's workers and returns the first error.
func (b *bench) parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(b.o.workers, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// createOperations creates the N remote operations; solve gives the i-th its duration.
func (b *bench) createOperations(ctx context.Context, solve func(i int) time.Duration) error {
	b.ops = make([]string, b.o.n)
	start := time.Now()
	err := b.parallel(ctx, b.o.n, func(ctx context.Context, i int) error {
		name, err := b.admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: solve(i)})
		b.ops[i] = name
		return err
	})
	if err != nil {
		return fmt.Errorf("create remote operations: %w", err)
	}
	b.logf("created %d remote operations in %s", b.o.n, time.Since(start).Round(time.Millisecond))
	return nil
}

func resourceName(i int) string { return fmt.Sprintf("op-%05d", i) }

func (b *bench) createResources(ctx context.Context) error {
	b.createStart = time.Now()
	var done atomic.Int64
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	go func() {
		for range progress.C {
			b.logf("created %d of %d resources", done.Load(), b.o.n)
		}
	}()
	err := b.parallel(ctx, b.o.n, func(ctx context.Context, i int) error {
		o := &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Name: resourceName(i), Namespace: b.ns},
			Spec:       opsv1.OptimizationOperationSpec{OperationName: b.ops[i]},
		}
		if err := b.cl.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.Name, err)
		}
		b.w.noteCreated(o.Name, time.Now())
		done.Add(1)
		return nil
	})
	b.createEnd = time.Now()
	if err != nil {
		return err
	}
	b.logf("created %d resources in %s", b.o.n, b.createEnd.Sub(b.createStart).Round(time.Millisecond))
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func (b *bench) startManager(ctx context.Context, manager, kubeconfig string) error {
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	b.mgrLogPath = b.o.managerLog
	if b.mgrLogPath == "" {
		b.mgrLogPath = filepath.Join(b.dir, "manager.log")
	}
	logFile, err := os.Create(b.mgrLogPath)
	if err != nil {
		return err
	}
	args := append(b.fixedManagerArgs(metricsAddr, probeAddr, b.ns), b.managerArgs()...)
	// Not CommandContext: the manager must get SIGTERM and time to stop, not SIGKILL.
	cmd := exec.Command(manager, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig,
		"ROUTEOPTIMIZATION_EMULATOR_HOST="+strings.TrimPrefix(b.emuURL, "http://"))
	if b.o.managerMemLim != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+b.o.managerMemLim)
	}
	if b.o.managerGOGC != "" {
		cmd.Env = append(cmd.Env, "GOGC="+b.o.managerGOGC)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group keeps a terminal's Ctrl-C for this program, which then stops the
	// manager in order; Pdeathsig ends it should this program die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return err
	}
	b.mgr, b.mgrStart = cmd, time.Now()
	b.mgrDone = make(chan struct{})
	go func() {
		b.mgrExit = cmd.Wait()
		_ = logFile.Close()
		close(b.mgrDone)
	}()
	b.onCleanup(b.stopManager)
	b.metricsURL = "http://" + metricsAddr + "/metrics"
	b.logf("manager started (pid %d), log %s", cmd.Process.Pid, b.mgrLogPath)

	readyz := "http://" + probeAddr + "/readyz"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ok := httpOK(ctx, readyz); ok {
			return nil
		}
		if err := b.wait(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("manager not ready after 2m; log %s", b.mgrLogPath)
		}
	}
}

func (b *bench) stopManager() {
	select {
	case <-b.mgrDone:
	default:
		_ = b.mgr.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.mgrDone:
		case <-time.After(30 * time.Second):
			_ = b.mgr.Process.Kill()
			<-b.mgrDone
		}
	}
	if b.o.managerLog != "" {
		fmt.Fprintf(os.Stderr, "bench-scale: manager log kept in %s\n", b.o.managerLog)
	}
}

// wait sleeps for d, and returns early with an error when the manager exits or ctx ends.
func (b *bench) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-b.mgrDone:
		return b.managerExited()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// managerExited is the error for a manager that stopped during the run; b.mgrDone is closed.
func (b *bench) managerExited() error {
	return fmt.Errorf("manager exited: %v; log %s:\n%s", b.mgrExit, b.mgrLogPath, tail(b.mgrLogPath, 20))
}

func httpOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// waitFirstReads waits until the emulator saw every operation read once and the watch saw
// every resource's first status, bounded by -read-timeout.
func (b *bench) waitFirstReads(ctx context.Context, r *report) error {
	deadline := time.Now().Add(b.o.readTimeout)
	every := max(time.Second, time.Duration(b.o.n/2000)*time.Second)
	lastLog := time.Now()
	for {
		ops, err := b.admin.ListOperations(ctx)
		if err != nil {
			return err
		}
		read := 0
		var last time.Time
		for _, op := range ops {
			if op.FirstReadTime != nil {
				read++
				if op.FirstReadTime.After(last) {
					last = *op.FirstReadTime
				}
			}
		}
		withStatus, lastStatus := b.w.withStatus()
		if read == b.o.n && withStatus == b.o.n {
			r.allRead, r.allStatus = last, lastStatus
			r.firstReads = ops
			b.logf("every operation read once, every resource has a status")
			return nil
		}
		if time.Now().After(deadline) {
			r.readTimedOut = true
			r.firstReads = ops
			r.allRead, r.allStatus = last, lastStatus
			b.logf("read timeout: %d of %d read, %d with status", read, b.o.n, withStatus)
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			b.logf("first reads: %d of %d operations, %d resources with a status", read, b.o.n, withStatus)
			lastLog = time.Now()
		}
		if err := b.wait(ctx, every); err != nil {
			return err
		}
	}
}

// cancelTargets picks the resources to cancel, spread over the whole set (seeded, so runs
// cancel the same ones).
func (b *bench) cancelTargets() []string {
	idx := rand.New(rand.NewPCG(7, 7)).Perm(b.o.n)[:b.o.spread+b.o.burst]
	names := make([]string, len(idx))
	for i, j := range idx {
		names[i] = resourceName(j)
	}
	return names
}

type phaseResult struct {
	names     []string
	latencies []time.Duration // of those seen Cancelled within the bound
	sent      []time.Duration // from the patch to the CancelOperation call at the emulator
	late      int             // not Cancelled within the bound
	patchErrs int
}

var cancelPatch = client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))

// cancelPhase patches names, every apart (0: all at once), and waits until each shows
// Cancelled on the watch or its bound passes.
func (b *bench) cancelPhase(ctx context.Context, phase string, names []string, every time.Duration) (phaseResult, error) {
	res := phaseResult{names: names}
	b.logf("%s: %d cancels", phase, len(names))
	sent, patchErrs, err := b.patchCancels(ctx, names, every)
	res.patchErrs = patchErrs
	if err != nil {
		return res, err
	}
	var lastSent time.Time
	for _, t := range sent {
		if t.After(lastSent) {
			lastSent = t
		}
	}
	deadline := lastSent.Add(b.o.cancelBound)
	for {
		done, at := b.w.cancelled(names)
		if done == len(sent) || time.Now().After(deadline) {
			for n, t := range sent {
				if c, ok := at[n]; ok && c.Sub(t) <= b.o.cancelBound {
					res.latencies = append(res.latencies, c.Sub(t))
				} else {
					res.late++
				}
			}
			res.sent = b.sentLatencies(ctx, sent)
			b.logf("%s: %d of %d Cancelled (%s); cancel sent %s", phase, len(res.latencies), len(names), latencies(res.latencies), latencies(res.sent))
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// patchCancels patches names with spec.cancel true, every apart (0: all at once), and returns
// when each patch that succeeded was sent, and how many failed.
func (b *bench) patchCancels(ctx context.Context, names []string, every time.Duration) (map[string]time.Time, int, error) {
	sent := make(map[string]time.Time, len(names))
	failed := 0
	var mu sync.Mutex
	send := func(name string) {
		at := time.Now()
		b.w.noteCancelSent(name, at)
		o := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.ns}}
		err := b.cl.Patch(ctx, o, cancelPatch)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			b.logf("cancel patch %s: %v", name, err)
			return
		}
		sent[name] = at
	}
	if every > 0 {
		for i, n := range names {
			if i > 0 {
				if err := sleep(ctx, every); err != nil {
					return sent, failed, err
				}
			}
			send(n)
		}
		return sent, failed, nil
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, n := range names {
		wg.Go(func() { <-start; send(n) })
	}
	close(start)
	wg.Wait()
	return sent, failed, nil
}

// sentLatencies is, for each patched resource, the time from its patch to the first
// CancelOperation call for its operation at the emulator (same process, same clock): the
// part of the cancel latency before the cancel left the operator.
func (b *bench) sentLatencies(ctx context.Context, patched map[string]time.Time) []time.Duration {
	ops, err := b.admin.ListOperations(ctx)
	if err != nil {
		b.logf("list operations: %v", err)
		return nil
	}
	firstCancel := make(map[string]time.Time, len(ops))
	for _, op := range ops {
		if op.FirstCancelTime != nil {
			firstCancel[op.Name] = *op.FirstCancelTime
		}
	}
	var out []time.Duration
	for name, at := range patched {
		if i := opIndex(name); i >= 0 && i < len(b.ops) {
			if c, ok := firstCancel[b.ops[i]]; ok {
				out = append(out, c.Sub(at))
			}
		}
	}
	return out
}

// memSample is the manager's memory at one moment.
type memSample struct {
	rss, hwm            float64 // bytes, from /proc/<pid>/status
	anon, file          float64 // the RSS in anonymous memory and in pages of mapped files (the binary)
	heapInuse, heapLive float64 // go_memstats_heap_inuse_bytes, go_memstats_heap_alloc_bytes
	goroutines          float64
	err                 error
}

func (b *bench) memory(ctx context.Context) memSample {
	var m memSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.mgr.Process.Pid))
	if err != nil {
		m.err = err
		return m
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			m.rss = kb * 1024
		case "VmHWM":
			m.hwm = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		case "RssFile":
			m.file = kb * 1024
		}
	}
	metrics, err := b.scrape(ctx)
	if err != nil {
		m.err = err
		return m
	}
	m.heapInuse = metrics.sum("go_memstats_heap_inuse_bytes", nil)
	m.heapLive = metrics.sum("go_memstats_heap_alloc_bytes", nil)
	m.goroutines = metrics.sum("go_goroutines", nil)
	return m
}

// promSamples are the samples of a Prometheus text exposition.
type promSamples []promSample

type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRe = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

func (b *bench) scrape(ctx context.Context) (promSamples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var out promSamples
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		s := promSample{name: line[:sp], value: v, labels: map[string]string{}}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, m := range labelRe.FindAllStringSubmatch(s.name[i:], -1) {
				s.labels[m[1]] = m[2]
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// sum adds the samples of name whose labels include match.
func (p promSamples) sum(name string, match map[string]string) float64 {
	var t float64
	for _, s := range p {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			t += s.value
		}
	}
	return t
}

// by sums the samples of name by the value of one label.
func (p promSamples) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p {
		if s.name == name {
			out[s.labels[label]] += s.value
		}
	}
	return out
}

func (b *bench) collect(ctx context.Context, r *report, before []emulator.OperationInfo, targets []string) error {
	r.memEnd = b.memory(ctx)
	var err error
	if r.metrics, err = b.scrape(ctx); err != nil {
		r.metricsErr = err
	}
	if r.after, err = b.admin.ListOperations(ctx); err != nil {
		return err
	}
	r.before = before
	if r.calls, err = b.admin.Calls(ctx); err != nil {
		return err
	}
	if r.counters, err = b.admin.Counters(ctx); err != nil {
		return err
	}
	r.objs, r.events, r.restarts, r.resyncs, r.watchErr = b.w.snapshot()
	r.targets = targets
	r.logErrors, r.logErrorKinds = logErrors(b.mgrLogPath)
	return nil
}

// logErrors counts the manager's error log lines and their most frequent messages.
func logErrors(path string) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = f.Close() }()
	msgRe := regexp.MustCompile(`"msg":"((?:[^"\\]|\\.)*)"`)
	errRe := regexp.MustCompile(`"error":"((?:[^"\\]|\\.){0,120})`)
	n := 0
	kinds := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, `"level":"error"`) {
			continue
		}
		n++
		k := ""
		if m := msgRe.FindStringSubmatch(l); m != nil {
			k = m[1]
		}
		if m := errRe.FindStringSubmatch(l); m != nil {
			k += ": " + m[1]
		}
		kinds[k]++
	}
	type kc struct {
		k string
		n int
	}
	var list []kc
	for k, c := range kinds {
		list = append(list, kc{k, c})
	}
	slices.SortFunc(list, func(a, b kc) int { return b.n - a.n })
	var out []string
	for _, e := range list[:min(len(list), 5)] {
		out = append(out, fmt.Sprintf("%d x %s", e.n, e.k))
	}
	return n, out
}
