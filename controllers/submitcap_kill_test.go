package controllers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/remote"
	"github.com/routeopt/routeopt-operator/internal/submit"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// managerBinary runs the manager binary, built once per test, against the test API server and
// an emulator, restarted as often as a test kills it.
type managerBinary struct {
	t    *testing.T
	bin  string
	args []string
	env  []string
	logs *testenv.LogBuffer
}

func newManagerBinary(t *testing.T, emuURL string, args ...string) *managerBinary {
	t.Helper()
	started := time.Now()
	bin, err := testenv.BuildManager(t.TempDir())
	must(t, err)
	t.Logf("manager built in %s", time.Since(started).Round(100*time.Millisecond))
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	must(t, testenv.Kubeconfig(testEnv, kubeconfig))
	return &managerBinary{t: t, bin: bin, logs: &testenv.LogBuffer{},
		args: append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=error"}, args...),
		env:  []string{"HOME=" + dir, "KUBECONFIG=" + kubeconfig, remote.EmulatorHostEnv + "=" + strings.TrimPrefix(emuURL, "http://")}}
}

func (m *managerBinary) start() *exec.Cmd {
	cmd := exec.Command(m.bin, m.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = m.env, m.logs, m.logs
	must(m.t, cmd.Start())
	m.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func (m *managerBinary) kill(cmd *exec.Cmd) {
	must(m.t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
}

func (m *managerBinary) stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

// TestSubmitCapSurvivesKills: --max-submits-per-minute holds across restarts. 3K resources
// with spec.submit are created at once under a cap of K; the manager binary is killed with
// SIGKILL at random moments and restarted, several times, during the burst, then left to send
// the rest. At the emulator, no 60 s window may see more than K submits: a new process must
// count what the killed ones sent in the last minute, not send K more at once.
func TestSubmitCapSurvivesKills(t *testing.T) {
	const (
		k         = 4
		resources = 3 * k
		kills     = 5
		window    = time.Minute
		method    = submit.MethodOptimizeToursLongRunning
	)
	started := time.Now()
	// A little latency, so that some kills land while a submit is at the emulator. The
	// emulator records a call's arrival before the latency.
	emu := httptest.NewServer(emulator.New(emulator.Options{Faults: emulator.Faults{Methods: map[string]emulator.MethodFault{
		method: {Latency: 200 * time.Millisecond},
	}}}))
	defer emu.Close()
	admin := &emulator.AdminClient{BaseURL: emu.URL}

	ctx := context.Background()
	ns := fmt.Sprintf("capkill-%d", nsSeq.Add(1))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	m := newManagerBinary(t, emu.URL, "--watch-namespaces="+ns, fmt.Sprintf("--max-submits-per-minute=%d", k),
		"--max-concurrent-reconciles=4", "--api-qps=100", "--api-burst=50", "--request-timeout=5s")
	for i := range resources {
		must(t, k8s.Create(ctx, &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("r%d", i)},
			Spec:       opsv1.OptimizationOperationSpec{Submit: toursInline(fmt.Sprintf("capkill-%d", i), "1800s")},
		}))
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("random kill points from seed %d", seed)
	var starts []time.Time
	for round := 1; round <= kills; round++ {
		if countSubmitStates(t, ns).waiting == 0 {
			break
		}
		starts = append(starts, time.Now())
		cmd := m.start()
		time.Sleep(time.Duration(300+rng.IntN(11700)) * time.Millisecond)
		m.kill(cmd)
		c := countSubmitStates(t, ns)
		t.Logf("kill %d after %s: %2d tracked, %2d uncertain, %2d not started yet; %d submits at the emulator",
			round, time.Since(starts[len(starts)-1]).Round(100*time.Millisecond), c.tracked, c.uncertain, c.waiting, callsOf(t, admin, method))
	}

	// One more manager, left to send the rest: at K a minute, 3K need two more windows.
	starts = append(starts, time.Now())
	cmd := m.start()
	deadline := time.Now().Add(4 * window)
	var c submitStates
	for {
		c = countSubmitStates(t, ns)
		if c.waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			m.stop(cmd)
			t.Fatalf("%d resources still not sent after the last manager ran %s; its log:\n%s",
				c.waiting, 4*window, lastLogLines(m.logs.String(), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
	m.stop(cmd)

	records, err := admin.CallRecords(ctx)
	must(t, err)
	if records.FirstSeq > 1 {
		t.Fatalf("the emulator dropped its oldest call records (first is %d)", records.FirstSeq)
	}
	var arrivals []time.Time
	for _, r := range records.Of(method, "") {
		arrivals = append(arrivals, r.Arrived)
	}
	most, from := worstWindow(arrivals, window)
	var timeline []string
	for _, a := range arrivals {
		process := 0
		for process+1 < len(starts) && !a.Before(starts[process+1]) {
			process++
		}
		timeline = append(timeline, fmt.Sprintf("%s(p%d)", a.Sub(starts[0]).Round(100*time.Millisecond), process+1))
	}
	t.Logf("%d submits from %d processes, arrived at %s", len(arrivals), len(starts), strings.Join(timeline, " "))
	t.Logf("at most %d submits in a %s window (from %s), cap %d; %d tracked, %d SubmitUncertain; %s in all",
		most, window, from.Sub(starts[0]).Round(100*time.Millisecond), k, c.tracked, c.uncertain, time.Since(started).Round(time.Second))
	if most > k {
		t.Errorf("%d submits arrived within %s, more than --max-submits-per-minute=%d", most, window, k)
	}

	solves, err := admin.Solves(ctx)
	must(t, err)
	for i := range resources {
		if n := solves.ByLabel[fmt.Sprintf("capkill-%d", i)]; n > 1 {
			t.Errorf("r%d started %d solves", i, n)
		}
	}
	var list opsv1.OptimizationOperationList
	must(t, k8s.List(ctx, &list, client.InNamespace(ns)))
	for i := range list.Items {
		o := &list.Items[i]
		if o.Status.OperationName == "" && succeededReason(o) != opsv1.ReasonSubmitUncertain {
			t.Errorf("%s neither tracks an operation nor is SubmitUncertain: %s", o.Name, describe(o))
		}
	}
	if t.Failed() {
		t.Logf("manager log (last lines):\n%s", lastLogLines(m.logs.String(), 30))
	}
}

// worstWindow returns the most arrivals less than window apart, and the first of them.
func worstWindow(arrivals []time.Time, window time.Duration) (int, time.Time) {
	a := slices.Clone(arrivals)
	slices.SortFunc(a, func(x, y time.Time) int { return x.Compare(y) })
	most, from := 0, time.Time{}
	for i, lo := 0, 0; i < len(a); i++ {
		for a[i].Sub(a[lo]) >= window {
			lo++
		}
		if i-lo+1 > most {
			most, from = i-lo+1, a[lo]
		}
	}
	return most, from
}

// TestSubmitAnswerSurvivesKill: the name of the operation a submit started must be stored
// before anything else can delay the write. The emulator answers the submit and then holds the
// first read of the operation; the manager binary is killed while it waits for that read, and
// restarted once the emulator answers again. The resource must track the one operation it
// started: the answer had reached the operator, and losing it would leave the resource
// SubmitUncertain, waiting for a person, over a solve that is running and billed.
func TestSubmitAnswerSurvivesKill(t *testing.T) {
	const method = submit.MethodOptimizeToursLongRunning
	emu := httptest.NewServer(emulator.New(emulator.Options{Faults: emulator.Faults{Methods: map[string]emulator.MethodFault{
		emulator.MethodGetOperation: {Hang: 1},
	}}}))
	defer emu.Close()
	admin := &emulator.AdminClient{BaseURL: emu.URL}

	ctx := context.Background()
	ns := fmt.Sprintf("answerkill-%d", nsSeq.Add(1))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	// A long request timeout: the held read must outlast the wait for it below.
	m := newManagerBinary(t, emu.URL, "--watch-namespaces="+ns, "--request-timeout=60s")
	key := client.ObjectKey{Namespace: ns, Name: "answer"}
	must(t, k8s.Create(ctx, &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec:       opsv1.OptimizationOperationSpec{Submit: toursInline("answer-kill", "1800s")},
	}))

	cmd := m.start()
	// The solve started, and the first read of it arrived: the manager holds the answer.
	var name string
	deadline := time.Now().Add(30 * time.Second)
	for name == "" {
		if time.Now().After(deadline) {
			m.stop(cmd)
			t.Fatalf("no read of a started operation within 30 s; manager log:\n%s", lastLogLines(m.logs.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
		solves, err := admin.Solves(ctx)
		must(t, err)
		if solves.ByMethod[method] == 0 {
			continue
		}
		records, err := admin.CallRecords(ctx)
		must(t, err)
		for _, r := range records.Of(emulator.MethodGetOperation, "") {
			name = r.Name
		}
	}
	m.kill(cmd)
	var o opsv1.OptimizationOperation
	must(t, k8s.Get(ctx, key, &o))
	t.Logf("killed while %s was read; stored: %s", name, describe(&o))

	must(t, admin.SetFaults(ctx, emulator.Faults{}))
	cmd = m.start()
	defer m.stop(cmd)
	deadline = time.Now().Add(60 * time.Second)
	for {
		must(t, k8s.Get(ctx, key, &o))
		reason := succeededReason(&o)
		if reason == opsv1.ReasonSubmitUncertain || (o.Status.OperationName != "" && (reason == opsv1.ReasonRunning || reason == opsv1.ReasonSucceeded)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, neither tracked nor SubmitUncertain within 60 s: %s; manager log:\n%s",
				describe(&o), lastLogLines(m.logs.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after the restart: %s", describe(&o))
	if reason := succeededReason(&o); reason != opsv1.ReasonRunning && reason != opsv1.ReasonSucceeded {
		t.Errorf("Succeeded has reason %s after the restart, want %s or %s", reason, opsv1.ReasonRunning, opsv1.ReasonSucceeded)
	}
	if o.Status.OperationName != name {
		t.Errorf("the resource tracks %q with reason %s, want the operation its submit started, %s",
			o.Status.OperationName, succeededReason(&o), name)
	}
	solves, err := admin.Solves(ctx)
	must(t, err)
	if n := solves.ByMethod[method]; n != 1 {
		t.Errorf("%d solves started, want 1", n)
	}
}
