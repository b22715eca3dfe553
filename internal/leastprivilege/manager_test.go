package leastprivilege_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// manager is one run of the manager binary.
type manager struct {
	cmd *exec.Cmd
	// log collects the manager's stdout and stderr (klog writes there too, and client-go
	// reports refused requests through it).
	log         *testenv.LogBuffer
	exited      chan struct{}
	exitErr     error
	grace       time.Duration
	metricsURL  string // "" when the Deployment turns the endpoint off
	leaseNS     string
	changedArgs []string
}

// podArgs returns the Deployment's args for a process on this machine instead of a pod. Two
// things differ, and nothing else:
//   - --metrics-bind-address and --health-probe-bind-address get a free loopback port instead
//     of :8443 and :8081: in a pod those ports are the pod's own, here they are shared with
//     everything else on the host (another test package, a developer's tools) and a busy port
//     would make the manager exit for a reason that has nothing to do with RBAC.
//   - with --leader-elect, --leader-election-namespace is the Deployment's namespace, unless the
//     args set it: controller-runtime takes it from the pod's service-account mount
//     (/var/run/secrets/kubernetes.io/serviceaccount/namespace), which a process outside a pod
//     does not have; without the flag it refuses to start.
func podArgs(t *testing.T, inst *installation) (args []string, m *manager) {
	t.Helper()
	c := inst.manager(t)
	m = &manager{grace: 30 * time.Second, leaseNS: inst.saNamespace}
	if g := inst.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		m.grace = time.Duration(*g) * time.Second
	}
	metricsAddr, secure, leaderElect, leNSSet := "0", true, false, false
	for _, a := range c.Args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "metrics-bind-address", "health-probe-bind-address":
			if !hasVal {
				t.Fatalf("Deployment arg %q: write it as --%s=VALUE", a, name)
			}
			if val != "0" {
				val = freeAddr(t)
				a = "--" + name + "=" + val
				m.changedArgs = append(m.changedArgs, a)
			}
			if name == "metrics-bind-address" {
				metricsAddr = val
			}
		case "metrics-secure":
			secure = boolFlag(t, a, val, hasVal)
		case "leader-elect":
			leaderElect = boolFlag(t, a, val, hasVal)
		case "leader-election-namespace":
			leNSSet = true
			m.leaseNS = val
		}
		args = append(args, a)
	}
	if leaderElect && !leNSSet {
		a := "--leader-election-namespace=" + inst.saNamespace
		args = append(args, a)
		m.changedArgs = append(m.changedArgs, a)
	}
	if metricsAddr != "0" {
		scheme := "https"
		if !secure {
			scheme = "http"
		}
		m.metricsURL = scheme + "://" + metricsAddr + "/metrics"
	}
	return args, m
}

// boolFlag reads a boolean flag as the flag package does: alone it means true.
func boolFlag(t *testing.T, arg, val string, hasVal bool) bool {
	t.Helper()
	if !hasVal {
		return true
	}
	b, err := strconv.ParseBool(val)
	if err != nil {
		t.Fatalf("Deployment arg %q: %v", arg, err)
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// startManager runs the manager binary as the installation's ServiceAccount, with the
// Deployment's args and environment, against the emulator at emulatorHost.
func startManager(t *testing.T, c *cluster, inst *installation, emulatorHost string) *manager {
	t.Helper()
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := testenv.ServiceAccountKubeconfig(context.Background(), c.admin, inst.saNamespace, inst.saName, time.Hour, kc); err != nil {
		t.Fatal(err)
	}
	args, m := podArgs(t, inst)
	// The pod's environment: the container's own variables, plus what a pod gets from outside
	// (its API server, here a kubeconfig) and the emulator in place of Google. Nothing is
	// inherited from the test process, so no credentials or kubeconfig of this machine leak in.
	env := []string{"HOME=" + dir, "KUBECONFIG=" + kc, remote.EmulatorHostEnv + "=" + emulatorHost}
	container := inst.manager(t)
	if len(container.EnvFrom) > 0 {
		t.Fatalf("the manager container uses envFrom, which this test does not resolve: %+v", container.EnvFrom)
	}
	for _, e := range container.Env {
		env = append(env, e.Name+"="+envValue(t, inst, container, e))
	}
	m.log = &testenv.LogBuffer{}
	m.exited = make(chan struct{})
	m.cmd = exec.Command(managerBin, args...)
	m.cmd.Env = env
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start manager: %v", err)
	}
	go func() {
		m.exitErr = m.cmd.Wait()
		close(m.exited)
	}()
	t.Logf("manager %s (differs from the Deployment in %s)", strings.Join(args, " "), strings.Join(m.changedArgs, " "))
	t.Cleanup(m.stop)
	return m
}

// envValue resolves a container variable as the kubelet would for the Deployment's pod.
func envValue(t *testing.T, inst *installation, container corev1.Container, e corev1.EnvVar) string {
	t.Helper()
	switch from := e.ValueFrom; {
	case from == nil:
		return e.Value
	case from.FieldRef != nil && from.FieldRef.FieldPath == "metadata.namespace":
		return inst.saNamespace
	case from.FieldRef != nil && from.FieldRef.FieldPath == "spec.serviceAccountName":
		return inst.saName
	case from.ResourceFieldRef != nil:
		ref := from.ResourceFieldRef
		c := container
		if ref.ContainerName != "" && ref.ContainerName != c.Name {
			i := slices.IndexFunc(inst.deployment.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == ref.ContainerName })
			if i < 0 {
				t.Fatalf("env %s refers to container %q, which the Deployment does not have", e.Name, ref.ContainerName)
			}
			c = inst.deployment.Spec.Template.Spec.Containers[i]
		}
		kind, name, _ := strings.Cut(ref.Resource, ".")
		list := map[string]corev1.ResourceList{"limits": c.Resources.Limits, "requests": c.Resources.Requests}[kind]
		q, ok := list[corev1.ResourceName(name)]
		if !ok {
			// The kubelet would take the node's allocatable amount, which a test cannot know.
			t.Fatalf("env %s refers to %s, which container %s does not set", e.Name, ref.Resource, c.Name)
		}
		divisor := ref.Divisor
		if divisor.IsZero() {
			divisor = resource.MustParse("1")
		}
		// Rounded up, as the kubelet does (a CPU amount in cores: 500m makes 1).
		if name == string(corev1.ResourceCPU) {
			return strconv.FormatInt((q.MilliValue()+divisor.MilliValue()-1)/divisor.MilliValue(), 10)
		}
		return strconv.FormatInt((q.Value()+divisor.Value()-1)/divisor.Value(), 10)
	}
	t.Fatalf("the manager container's env %s uses a valueFrom this test does not resolve: %+v", e.Name, e.ValueFrom)
	return ""
}

// stop ends the manager as the kubelet does: SIGTERM, then SIGKILL after the Deployment's
// terminationGracePeriodSeconds.
func (m *manager) stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(m.grace):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// broken reports what already shows that the manager lacks a permission: it exited, or it
// logged a request the API server refused. "" while neither happened.
func (m *manager) broken() string {
	select {
	case <-m.exited:
		return fmt.Sprintf("the manager exited (%v); it last logged:\n%s", m.exitErr, lastLines(m.log.String(), 4))
	default:
	}
	for line := range strings.Lines(m.log.String()) {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			return "the manager logged: " + shorten(summarize(line), 600)
		}
	}
	return ""
}

// summarize keeps the message and error of a log line: the manager logs JSON (zap), client-go
// parts of it log klog text.
func summarize(line string) string {
	line = strings.TrimSpace(line)
	var entry struct {
		Msg   string `json:"msg"`
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
		if entry.Error == "" {
			return entry.Msg
		}
		return entry.Msg + ": " + entry.Error
	}
	if _, text, ok := strings.Cut(line, "] "); ok && strings.IndexAny(line, "IWEF") == 0 {
		return text
	}
	return line
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = shorten(l, 400)
	}
	return strings.Join(lines, "\n")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)-n) + " more bytes)"
}
