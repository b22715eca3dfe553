package gitops_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// TestFlagsDocumented builds the manager and checks that the flags table of docs/user-guide.md
// lists exactly the flags of `manager --help`.
func TestFlagsDocumented(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd: %v\n%s", err, out)
	}
	// --help prints the usage and exits 0 (flag.ExitOnError treats -help as success).
	help, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		served[m[1]] = true
	}
	if len(served) < 10 {
		t.Fatalf("found %d flags in the manager's --help:\n%s", len(served), help)
	}

	guide, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "user-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)`").FindAllStringSubmatch(string(guide), -1) {
		documented[m[1]] = true
	}
	for f := range served {
		if !documented[f] {
			t.Errorf("docs/user-guide.md (Manager flags) does not document --%s", f)
		}
	}
	for f := range documented {
		if !served[f] {
			t.Errorf("docs/user-guide.md documents --%s, which the manager does not have", f)
		}
	}
}
