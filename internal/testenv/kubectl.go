package testenv

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// Kubectl runs the real kubectl in the repository root, against the control plane of the
// kubeconfig kc, or without one when kc is empty (kustomize). A missing kubectl fails the test:
// the tests drive the client users have.
func Kubectl(t testing.TB, kc string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path, lerr := exec.LookPath("kubectl")
	if lerr != nil {
		t.Fatalf("kubectl is needed for this test: %v", lerr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if kc != "" {
		args = append([]string{"--kubeconfig", kc}, args...)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = RepoRoot()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}
