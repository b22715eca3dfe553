package controllers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/submit"
)

// TestKilledDuringSubmitBurst runs the manager binary against the test API server and the
// emulator while 100 resources start their solves, and kills it with SIGKILL at random points,
// 20 times: during its start, between an attempt's record and its answer, between the answer
// and its write. Then one manager runs to the end. No resource may have started more than one
// solve, and each must either track its operation or be SubmitUncertain (its answer lost to a
// kill): a request whose fate is unknown is never sent again without a person.
func TestKilledDuringSubmitBurst(t *testing.T) {
	const (
		resources = 100
		kills     = 20
		method    = submit.MethodOptimizeToursLongRunning
	)
	started := time.Now()
	// Each submit takes a while at the emulator, so kills often land while one is in flight.
	// The latency runs before the emulator serves the call: a kill during it leaves a request
	// that the emulator still takes, the answer lost.
	emu := httptest.NewServer(emulator.New(emulator.Options{Faults: emulator.Faults{Methods: map[string]emulator.MethodFault{
		method: {Latency: 250 * time.Millisecond},
	}}}))
	defer emu.Close()
	admin := &emulator.AdminClient{BaseURL: emu.URL}

	ctx := context.Background()
	ns := fmt.Sprintf("kill-%d", nsSeq.Add(1))
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for i := range resources {
		must(t, k8s.Create(ctx, &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("r%d", i)},
			Spec:       opsv1.OptimizationOperationSpec{Submit: toursInline(fmt.Sprintf("kill-%d", i), "1800s")},
		}))
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("random kill points from seed %d", seed)
	m := newManagerBinary(t, emu.URL, "--watch-namespaces="+ns,
		"--max-concurrent-reconciles=2", "--api-qps=100", "--api-burst=50", "--request-timeout=5s")
	logs, run := m.logs, m.start

	for round := 1; round <= kills; round++ {
		cmd := run()
		time.Sleep(time.Duration(150+rng.IntN(1350)) * time.Millisecond)
		must(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		c := countSubmitStates(t, ns)
		t.Logf("kill %2d: %3d tracked, %2d uncertain, %3d not started yet; %d requests at the emulator",
			round, c.tracked, c.uncertain, c.waiting, callsOf(t, admin, method))
	}

	// One more manager, left to finish.
	cmd := run()
	deadline := time.Now().Add(90 * time.Second)
	var c submitStates
	for {
		c = countSubmitStates(t, ns)
		if c.waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%d resources still not sent after the last manager ran 90 s; its log:\n%s", c.waiting, lastLogLines(logs.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	solves, err := admin.Solves(ctx)
	must(t, err)
	var uncertainStarted, uncertainNone, attempts int
	var list opsv1.OptimizationOperationList
	must(t, k8s.List(ctx, &list, client.InNamespace(ns)))
	for i := range list.Items {
		o := &list.Items[i]
		label := "kill-" + strings.TrimPrefix(o.Name, "r")
		n := solves.ByLabel[label]
		if n > 1 {
			t.Errorf("%s started %d solves: %s", o.Name, n, describe(o))
		}
		if o.Status.Submit != nil {
			attempts += int(o.Status.Submit.Attempts)
		}
		switch reason := succeededReason(o); {
		case o.Status.OperationName != "":
			if n != 1 {
				t.Errorf("%s tracks %s, but %d solves started for it", o.Name, o.Status.OperationName, n)
			}
			if _, err := admin.GetOperation(ctx, o.Status.OperationName); err != nil {
				t.Errorf("%s tracks %s, which the emulator does not know: %v", o.Name, o.Status.OperationName, err)
			}
		case reason == opsv1.ReasonSubmitUncertain:
			if n == 1 {
				uncertainStarted++
			} else {
				uncertainNone++
			}
		default:
			t.Errorf("%s neither tracks an operation nor is SubmitUncertain: %s", o.Name, describe(o))
		}
	}
	var total int64
	for _, n := range solves.ByLabel {
		total += n
	}
	t.Logf("after %d kills: %d resources track their one operation, %d are SubmitUncertain (%d of them did start a solve, %d did not); "+
		"%d solves started in all, %d attempts recorded, %d requests reached the emulator; %s in all",
		kills, c.tracked, c.uncertain, uncertainStarted, uncertainNone, total, attempts, callsOf(t, admin, method),
		time.Since(started).Round(time.Second))
	if t.Failed() {
		t.Logf("manager log (last lines):\n%s", lastLogLines(logs.String(), 30))
	}
}

type submitStates struct{ tracked, uncertain, waiting int }

func countSubmitStates(t *testing.T, ns string) submitStates {
	t.Helper()
	var list opsv1.OptimizationOperationList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	var c submitStates
	for i := range list.Items {
		o := &list.Items[i]
		switch {
		case o.Status.OperationName != "":
			c.tracked++
		case succeededReason(o) == opsv1.ReasonSubmitUncertain:
			c.uncertain++
		default:
			c.waiting++
		}
	}
	return c
}

func succeededReason(o *opsv1.OptimizationOperation) string {
	if c := meta.FindStatusCondition(o.Status.Conditions, opsv1.ConditionSucceeded); c != nil {
		return c.Reason
	}
	return ""
}

func callsOf(t *testing.T, admin *emulator.AdminClient, method string) int64 {
	t.Helper()
	c, err := admin.Counters(context.Background())
	must(t, err)
	var n int64
	for _, v := range c[method] {
		n += v
	}
	return n
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
