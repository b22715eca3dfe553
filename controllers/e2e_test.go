package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// TestEndToEndWithKubectl drives the manager binary, built from ./cmd, with the real kubectl,
// the way a person does: apply, patch, wait, get.
func TestEndToEndWithKubectl(t *testing.T) {
	kubectlPath, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is required for the end-to-end test: %v", err)
	}
	dir := t.TempDir()
	manager := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", manager, "./cmd")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build manager: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	must(t, testenv.Kubeconfig(testEnv, kubeconfig))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emu := httpServe(t, emulator.New(emulator.Options{}))
	admin := &emulator.AdminClient{BaseURL: "http://" + emu}
	ns := fmt.Sprintf("e2e-%d", nsSeq.Add(1)) // unique, so -count=N reruns on one control plane work
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))

	metricsAddr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, manager,
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address="+freeAddr(t), "--watch-namespaces="+ns,
		"--min-poll-interval=200ms", "--max-poll-interval=2s")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "ROUTEOPTIMIZATION_EMULATOR_HOST="+emu)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	must(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	kubectl := func(stdin string, args ...string) (string, error) {
		c := exec.Command(kubectlPath, append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...)...)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		t.Logf("$ kubectl %s\n%s", strings.Join(args, " "), out)
		return string(out), err
	}
	mustKubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kubectl(stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	short, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: time.Second})
	must(t, err)
	long, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{Duration: longSolve})
	must(t, err)
	mustKubectl(fmt.Sprintf(`apiVersion: ops.routeopt.dev/v1alpha1
kind: OptimizationOperation
metadata:
  name: short
spec:
  operationName: %s
---
apiVersion: ops.routeopt.dev/v1alpha1
kind: OptimizationOperation
metadata:
  name: long
spec:
  operationName: %s
`, short, long), "apply", "-f", "-")

	mustKubectl("", "wait", "optop/short", "--for=condition=Ready", "--timeout=60s")
	mustKubectl("", "wait", "optop/long", "--for=jsonpath={.status.conditions[?(@.type==\"Succeeded\")].reason}=Running", "--timeout=60s")
	out := mustKubectl("", "get", "optop")
	for _, want := range []string{"NAME", "READY", "STATE", "DONE", "AGE", "Succeeded", "Running"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get optop lacks %q:\n%s", want, out)
		}
	}

	mustKubectl("", "patch", "optop", "long", "--type", "merge", "-p", `{"spec":{"cancel":true}}`)
	mustKubectl("", "wait", "optop/long", "--for=condition=Ready", "--timeout=60s")
	out = mustKubectl("", "get", "optop", "-o", "wide")
	for _, want := range []string{"OPERATION", "START", "COMPLETION", "CANCEL", "MESSAGE", "Cancelled", "Accepted", "Succeeded", long, "was cancelled as requested"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get optop -o wide lacks %q:\n%s", want, out)
		}
	}

	// The latch: cancel cannot be taken back, and the API says why.
	out, err = kubectl("", "patch", "optop", "long", "--type", "merge", "-p", `{"spec":{"cancel":false}}`)
	if err == nil || !strings.Contains(out, "one-way latch") {
		t.Errorf("un-cancel was not rejected with a clear message: %v\n%s", err, out)
	}

	out = mustKubectl("", "describe", "optop", "long")
	for _, want := range []string{"CancelSent", "Cancelled"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe lacks event %q:\n%s", want, out)
		}
	}

	metrics := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`routeopt_operations{state="Cancelled"} 1`,
		`routeopt_operations{state="Succeeded"} 1`,
		`routeopt_remote_requests_total{code="OK",method="CancelOperation"} 1`,
		`routeopt_cancel_latency_seconds_count{state="Cancelled"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// httpServe serves h on a loopback port for the length of the test and returns host:port.
func httpServe(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	var lastErr error
	for range 100 {
		resp, err := http.Get(url) //nolint:gosec,noctx // a loopback test server
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return string(body)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("scrape %s: %v", url, lastErr)
	return ""
}
