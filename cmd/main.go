// Command manager runs the routeopt-operator: the OptimizationOperation controller.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/shard"
	"github.com/routeopt/routeopt-operator/internal/slimcache"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(opsv1.AddToScheme(scheme))
}

type config struct {
	metricsAddr      string
	pprofAddr        string
	probeAddr        string
	secureMetrics    bool
	enableHTTP2      bool
	leaderElect      bool
	leaderElectionNS string
	watchNamespaces  string
	shards           shard.Flags
	endpoint         string
	quotaProject     string
	trustedTokenURIs string
	requestTimeout   time.Duration
	apiQPS           float64
	apiBurst         int
	opts             controllers.Options
}

func parseFlags() (config, zap.Options) {
	c := config{opts: controllers.DefaultOptions}
	flag.StringVar(&c.metricsAddr, "metrics-bind-address", "0",
		"The address the metrics endpoint binds to. Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&c.leaderElect, "leader-elect", false,
		"Enable leader election for controller manager. Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&c.leaderElectionNS, "leader-election-namespace", "",
		"Namespace of the leader election lease (default: the namespace the manager runs in).")
	flag.StringVar(&c.shards.LeaderElectionID, "leader-election-id", shard.DefaultLeaderElectionID,
		"Name of the leader election Lease. Unless given, a manager with --watch-label-selector uses this name plus a hash of the selector, so that two shards never share a Lease.")
	flag.StringVar(&c.shards.WatchLabelSelector, "watch-label-selector", "",
		"Track only the OptimizationOperations this label selector selects: "+shard.Label+"=NAME for a shard, '!"+shard.Label+"' for the default manager of a sharded installation. Empty tracks all.")
	flag.StringVar(&c.shards.KnownShards, "known-shards", "",
		"Comma-separated names of the shards that run (values of "+shard.Label+"). When given, the leader counts every minute the OptimizationOperations labelled with any other shard, which no manager tracks (routeopt_unselected_operations).")
	flag.BoolVar(&c.secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS, with authentication and authorization. Use --metrics-secure=false to use HTTP instead.")
	flag.BoolVar(&c.enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server (off by default: HTTP/2 Stream Cancellation and Rapid Reset CVEs).")
	flag.StringVar(&c.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	flag.StringVar(&c.endpoint, "endpoint", remote.DefaultEndpoint,
		"Base URL of the Route Optimization API. "+remote.EmulatorHostEnv+"=host:port overrides it with a plain-HTTP emulator without credentials.")
	flag.StringVar(&c.quotaProject, "quota-project", "",
		"Project billed for quota (x-goog-user-project); needed with user credentials. Sent only with the operator's own credentials, not with keys from spec.credentialsSecretRef.")
	flag.StringVar(&c.trustedTokenURIs, "trusted-token-uris", "",
		"Comma-separated OAuth2 token endpoints, besides https://oauth2.googleapis.com/token, that a service-account key's token_uri may name. A key naming any other is refused before any request.")
	flag.DurationVar(&c.requestTimeout, "request-timeout", controllers.DefaultRequestTimeout, "Timeout of one request to the API, reads and cancels alike.")
	flag.Float64Var(&c.apiQPS, "api-qps", 5,
		"Calls per second to the API, shared by all resources (polls and cancels).")
	flag.IntVar(&c.apiBurst, "api-burst", 10, "Burst of calls above --api-qps.")
	flag.DurationVar(&c.opts.Poll.Min, "min-poll-interval", c.opts.Poll.Min,
		"Shortest time between two reads of one operation.")
	flag.DurationVar(&c.opts.Poll.Max, "max-poll-interval", c.opts.Poll.Max,
		"Longest time between two reads of one running operation (spec.pollInterval may lower it), and the backoff cap.")
	flag.DurationVar(&c.opts.DeletionCancelTimeout, "deletion-cancel-timeout", c.opts.DeletionCancelTimeout,
		"How long deleting a resource with deletionPolicy Cancel retries a cancel that fails transiently.")
	flag.DurationVar(&c.opts.RemoteUnavailableAfter, "remote-unavailable-after", c.opts.RemoteUnavailableAfter,
		"How long reads must keep failing transiently before Ready turns False with RemoteUnavailable.")
	flag.DurationVar(&c.opts.CredentialsRecheck, "credentials-recheck-interval", c.opts.CredentialsRecheck,
		"How often a resource whose credentials were refused re-reads its Secret to notice a fix.")
	flag.IntVar(&c.opts.MaxConcurrentReconciles, "max-concurrent-reconciles", c.opts.MaxConcurrentReconciles,
		"Number of resources reconciled in parallel; 0 sizes it from the budget: --api-qps x --request-timeout, "+
			"so that calls as slow as the timeout still use the whole budget (at least 4, at most "+fmt.Sprint(controllers.MaxAutoWorkers)+").")
	flag.BoolVar(&c.opts.CredentialsFromSecrets, "credentials-from-secrets", c.opts.CredentialsFromSecrets,
		"Allow spec.credentialsSecretRef: keys from Secrets labelled "+controllers.CredentialsLabel+"=true in the resource's namespace. "+
			"With false the operator reads no Secrets (and needs no access to them): every call uses its own identity.")
	flag.IntVar(&c.opts.MaxSubmitsPerMinute, "max-submits-per-minute", c.opts.MaxSubmitsPerMinute,
		"Most requests of spec.submit (BatchOptimizeTours, OptimizeToursLongRunning, OptimizeToursUri) sent to one project in any minute, restarts included, on top of --api-qps; "+
			"resources beyond it wait their turn. The API's default quota is 60 a minute per project for each of OptimizeTours and BatchOptimizeTours.")
	flag.StringVar(&c.pprofAddr, "pprof-bind-address", "0",
		"The address Go's pprof endpoints bind to, for memory and CPU profiles; 0 (the default) disables them.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	// controller-runtime's usage says 'epoch', but with the flag unset it encodes RFC 3339.
	if f := flag.CommandLine.Lookup("zap-time-encoding"); f != nil {
		f.Usage = "Zap time encoding (one of 'epoch', 'millis', 'nano', 'iso8601', 'rfc3339' or 'rfc3339nano'). Defaults to 'rfc3339'."
	}
	flag.Parse()
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "leader-election-id":
			c.shards.LeaderElectionIDGiven = true
		case "known-shards":
			c.shards.KnownShardsGiven = true
		}
	})
	return c, zapOpts
}

// remoteConfig is the API client's configuration; it comes from flags and the environment
// only, never from a resource.
func (c config) remoteConfig() remote.Config {
	rc := remote.Config{
		Endpoint:     c.endpoint,
		EmulatorHost: os.Getenv(remote.EmulatorHostEnv),
		QuotaProject: c.quotaProject,
		Timeout:      c.requestTimeout,
		UserAgent:    "routeopt-operator/" + version,
	}
	for _, u := range strings.Split(c.trustedTokenURIs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			rc.TrustedTokenURIs = append(rc.TrustedTokenURIs, u)
		}
	}
	return rc
}

func (c config) validate() error {
	if err := c.remoteConfig().Validate(); err != nil {
		return fmt.Errorf("--trusted-token-uris: %w", err)
	}
	if _, err := c.shards.Settings(); err != nil {
		return err
	}
	switch {
	case c.apiQPS <= 0:
		return fmt.Errorf("--api-qps must be positive, got %v", c.apiQPS)
	case c.apiBurst < 1:
		return fmt.Errorf("--api-burst must be at least 1, got %d", c.apiBurst)
	case c.opts.Poll.Min <= 0:
		return fmt.Errorf("--min-poll-interval must be positive, got %s", c.opts.Poll.Min)
	case c.opts.Poll.Max < c.opts.Poll.Min:
		return fmt.Errorf("--max-poll-interval (%s) must not be below --min-poll-interval (%s)", c.opts.Poll.Max, c.opts.Poll.Min)
	case c.opts.MaxSubmitsPerMinute < 1:
		return fmt.Errorf("--max-submits-per-minute must be at least 1, got %d", c.opts.MaxSubmitsPerMinute)
	case c.opts.MaxConcurrentReconciles < 0:
		return fmt.Errorf("--max-concurrent-reconciles must not be negative, got %d", c.opts.MaxConcurrentReconciles)
	// Zero would fail every call (the timeout) or requeue in a hot loop (the recheck).
	case c.requestTimeout <= 0:
		return fmt.Errorf("--request-timeout must be positive, got %s", c.requestTimeout)
	case c.opts.CredentialsRecheck <= 0:
		return fmt.Errorf("--credentials-recheck-interval must be positive, got %s", c.opts.CredentialsRecheck)
	// Zero means "do not retry" and "report at once"; only a negative value is a mistake.
	case c.opts.DeletionCancelTimeout < 0:
		return fmt.Errorf("--deletion-cancel-timeout must not be negative, got %s", c.opts.DeletionCancelTimeout)
	case c.opts.RemoteUnavailableAfter < 0:
		return fmt.Errorf("--remote-unavailable-after must not be negative, got %s", c.opts.RemoteUnavailableAfter)
	}
	return nil
}

func main() {
	c, zapOpts := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(c); err != nil {
		setupLog.Error(err, "manager exited")
		os.Exit(1)
	}
}

func run(c config) error {
	if err := c.validate(); err != nil {
		return err
	}
	var tlsOpts []func(*tls.Config)
	if !c.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(t *tls.Config) { t.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: c.metricsAddr, SecureServing: c.secureMetrics, TLSOpts: tlsOpts}
	if c.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cacheOpts := cache.Options{DefaultTransform: slimcache.Transform}
	if c.watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(c.watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	sharding, err := c.shards.Settings()
	if err != nil {
		return err
	}
	if sharding.Watch != nil {
		// Only OptimizationOperations are cached; Secrets are read uncached (APIReader), so the
		// selector cannot hide one.
		cacheOpts.ByObject = map[client.Object]cache.ByObject{&opsv1.OptimizationOperation{}: {Label: sharding.Watch}}
	}
	setupLog.Info("sharding", "watchLabelSelector", c.shards.WatchLabelSelector, "knownShards", c.shards.KnownShards,
		"leaderElect", c.leaderElect, "leaderElectionID", sharding.LeaderElectionID)

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		WebhookServer:           webhook.NewServer(webhook.Options{TLSOpts: tlsOpts}),
		HealthProbeBindAddress:  c.probeAddr,
		PprofBindAddress:        c.pprofAddr,
		LeaderElection:          c.leaderElect,
		LeaderElectionID:        sharding.LeaderElectionID,
		LeaderElectionNamespace: c.leaderElectionNS,
		// The process exits right after it stops leading, so it can release the lease at once
		// and the next leader takes over without waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	// The factory's context outlives every reconcile: token sources refresh with it.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	rc := c.remoteConfig()
	factory := remote.NewFactory(base, rc, metrics.ObserveRemote)
	b := budget.New(c.apiQPS, c.apiBurst)
	if err := metrics.Register(base, mgr.GetCache(), b); err != nil {
		return err
	}
	if sharding.Unselected != nil {
		if err := mgr.Add(&shard.Checker{
			Reader: mgr.GetAPIReader(), Selector: sharding.Unselected,
			Namespaces: slices.Sorted(maps.Keys(cacheOpts.DefaultNamespaces)),
			Interval:   time.Minute, PageSize: 500, Gauge: metrics.UnselectedOperations,
		}); err != nil {
			return fmt.Errorf("set up the unselected-operations check: %w", err)
		}
	}
	c.opts.Selector = sharding.Watch
	if c.opts.MaxConcurrentReconciles == 0 {
		c.opts.MaxConcurrentReconciles = controllers.WorkersFor(c.apiQPS, c.requestTimeout)
	}

	r := &controllers.OptimizationOperationReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("routeopt-operator"),
		Clients:   factory,
		Budget:    b,
		Options:   c.opts,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("set up health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("set up ready check: %w", err)
	}

	setupLog.Info("starting manager", "version", version, "endpoint", factory.Endpoint(),
		"apiQPS", c.apiQPS, "apiBurst", c.apiBurst, "maxSubmitsPerMinute", c.opts.MaxSubmitsPerMinute,
		"workers", c.opts.MaxConcurrentReconciles, "watchNamespaces", c.watchNamespaces)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
