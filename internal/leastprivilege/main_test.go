package leastprivilege_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// cluster is a test control plane and the admin's clients for it.
type cluster struct {
	name  string
	env   *envtest.Environment
	admin *rest.Config
	kube  kubernetes.Interface
	k8s   client.Client
	kc    string // the admin's kubeconfig, for kubectl

	scraperOnce sync.Once
	scraper     string
	scraperErr  error
}

// One control plane and one manager binary serve every test: starting kube-apiserver and
// linking the manager are the slow parts, and each run only needs fresh namespaces. A second
// control plane, configured like older clusters, is started only if a test asks for it.
var (
	cp         *cluster
	managerBin string
	workDir    string
	scheme     = runtime.NewScheme()

	noStreamingOnce sync.Once
	noStreaming     *cluster
	noStreamingErr  error
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(opsv1.AddToScheme(scheme))
	started := time.Now()
	var err error
	if workDir, err = os.MkdirTemp("", "leastprivilege-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leastprivilege tests need the test control plane:", err)
		return 1
	}
	cp, err = newCluster("default", env, cfg)
	defer stopCluster(cp, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { stopCluster(noStreaming, nil) }()
	if managerBin, err = testenv.BuildManager(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("control plane and manager ready in %s\n", time.Since(started).Round(time.Millisecond))
	return m.Run()
}

func newCluster(name string, env *envtest.Environment, cfg *rest.Config) (*cluster, error) {
	c := &cluster{name: name, env: env, admin: cfg, kc: filepath.Join(workDir, name+".kubeconfig")}
	var err error
	if err = testenv.Kubeconfig(env, c.kc); err != nil {
		return c, err
	}
	if c.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return c, fmt.Errorf("client: %w", err)
	}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return c, fmt.Errorf("clientset: %w", err)
	}
	return c, nil
}

func stopCluster(c *cluster, env *envtest.Environment) {
	if c != nil {
		env = c.env
	}
	if env == nil {
		return
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping test control plane:", err)
	}
}

// clusterWithoutStreamingLists returns a second control plane whose API server does not stream
// lists (feature gate WatchList off, the default of Kubernetes 1.33 and of releases before
// 1.32). Against it informers fall back from a streaming watch to list and watch, so a
// permission that only this fallback uses can be shown to be needed. dist/install.yaml is
// applied to it.
func clusterWithoutStreamingLists(t *testing.T) *cluster {
	t.Helper()
	noStreamingOnce.Do(func() {
		started := time.Now()
		assets, err := testenv.AssetsDir()
		if err != nil {
			noStreamingErr = err
			return
		}
		env := &envtest.Environment{
			UseExistingCluster:       ptr.To(false),
			BinaryAssetsDirectory:    assets,
			CRDDirectoryPaths:        []string{testenv.CRDDir()},
			ErrorIfCRDPathMissing:    true,
			ControlPlaneStartTimeout: 2 * time.Minute,
		}
		api := env.ControlPlane.GetAPIServer()
		api.Path = filepath.Join(assets, "kube-apiserver")
		api.Configure().Append("feature-gates", "WatchList=false")
		env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(assets, "etcd")}
		cfg, err := env.Start()
		if err != nil {
			_ = env.Stop()
			noStreamingErr = fmt.Errorf("starting a control plane without streaming lists: %w", err)
			return
		}
		if noStreaming, noStreamingErr = newCluster("no-streaming-lists", env, cfg); noStreamingErr != nil {
			return
		}
		installDefault(t, noStreaming)
		t.Logf("control plane without streaming lists started in %s", time.Since(started).Round(time.Millisecond))
	})
	if noStreamingErr != nil || noStreaming == nil {
		t.Fatalf("the control plane without streaming lists did not start: %v", noStreamingErr)
	}
	return noStreaming
}
