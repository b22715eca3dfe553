// Package testenv starts a real kube-apiserver and etcd for tests, with the project's CRDs
// installed. The binaries are built from Go modules by `make envtest-assets` (which `make test`
// runs first) into bin/k8s/<version>-<os>-<arch>.
//
// Test packages call Start from TestMain and exit non-zero with the returned error; they never
// skip when the control plane is missing:
//
//	func TestMain(m *testing.M) {
//		env, cfg, err := testenv.Start()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		_ = env.Stop()
//		os.Exit(code)
//	}
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	// assetsEnv names the directory that holds kube-apiserver and etcd.
	assetsEnv = "KUBEBUILDER_ASSETS"
	// startTimeoutEnv overrides how long each control plane component may take to start.
	startTimeoutEnv = "KUBEBUILDER_CONTROLPLANE_START_TIMEOUT"
	// defaultStartTimeout is generous because tests often run while other packages compile.
	defaultStartTimeout = 2 * time.Minute
)

// RepoRoot returns the root of the repository, found from this source file's location so it
// works from any package's test binary.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testenv: cannot determine the source file location")
	}
	// file is <root>/internal/testenv/testenv.go
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CRDDir returns the directory of the generated CRD manifests (config/crd/bases).
func CRDDir() string {
	return filepath.Join(RepoRoot(), "config", "crd", "bases")
}

// PinnedVersions returns the values of hack/versions.env, the single place where the versions
// of the test control plane and the tools are pinned (KUBERNETES_VERSION, ETCD_VERSION, ...).
func PinnedVersions() (map[string]string, error) {
	path := filepath.Join(RepoRoot(), "hack", "versions.env")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vals, nil
}

// AssetsDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS when set,
// otherwise bin/k8s/<pinned Kubernetes version>-<os>-<arch> in the repository. It returns an
// error naming `make test` when the binaries are not there.
func AssetsDir() (string, error) {
	dir, fromEnv := os.LookupEnv(assetsEnv)
	if !fromEnv || dir == "" {
		versions, err := PinnedVersions()
		if err != nil {
			return "", fmt.Errorf("testenv: reading pinned versions: %w", err)
		}
		k8s := versions["KUBERNETES_VERSION"]
		if k8s == "" {
			return "", errors.New("testenv: KUBERNETES_VERSION is not set in hack/versions.env")
		}
		dir = filepath.Join(RepoRoot(), "bin", "k8s", fmt.Sprintf("%s-%s-%s", k8s, runtime.GOOS, runtime.GOARCH))
	}
	var missing []string
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		source := "the repository's default location"
		if fromEnv && dir != "" {
			source = "$" + assetsEnv
		}
		return "", fmt.Errorf("testenv: test control plane not found: %s missing in %s (%s). "+
			"Run the tests with `make test`, which builds kube-apiserver and etcd first, "+
			"or run `make envtest-assets` once before `go test`",
			strings.Join(missing, " and "), dir, source)
	}
	return dir, nil
}

// Start starts kube-apiserver and etcd from AssetsDir with the CRDs of config/crd/bases installed
// and established, and returns the environment and an admin rest.Config. Stop the environment
// with env.Stop. If the binaries are missing the error says to run `make test`.
func Start() (*envtest.Environment, *rest.Config, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	timeout := defaultStartTimeout
	if v := os.Getenv(startTimeoutEnv); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			return nil, nil, fmt.Errorf("testenv: %s: %w", startTimeoutEnv, err)
		}
	}
	env := &envtest.Environment{
		UseExistingCluster:       ptr.To(false),
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{CRDDir()},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: timeout,
	}
	// envtest looks up every binary in $KUBEBUILDER_ASSETS first; pin the ones we checked.
	env.ControlPlane.GetAPIServer().Path = filepath.Join(assets, "kube-apiserver")
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(assets, "etcd")}
	// kubectl is not built with the control plane; use the one on PATH for ControlPlane.KubeCtl.
	if _, err := os.Stat(filepath.Join(assets, "kubectl")); err != nil {
		if p, err := exec.LookPath("kubectl"); err == nil {
			env.ControlPlane.KubectlPath = p
		}
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, nil, fmt.Errorf("testenv: starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	return env, cfg, nil
}

// Kubeconfig writes a kubeconfig file for env's admin user (group system:masters) to path, for
// driving the real kubectl against the test control plane.
func Kubeconfig(env *envtest.Environment, path string) error {
	if env == nil || env.Config == nil {
		return errors.New("testenv: Kubeconfig needs a started environment")
	}
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("testenv: provisioning admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("testenv: rendering kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
