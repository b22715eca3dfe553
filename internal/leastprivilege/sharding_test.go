package leastprivilege_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/shard"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

const (
	shardedOverlay  = "config/overlays/sharded"
	defaultManager  = "routeopt-controller-manager"
	unselectedGauge = "routeopt_unselected_operations"
)

// splitDeployments parses a rendering with several manager Deployments as one installation per
// Deployment, each with every other object of the rendering (the RBAC they share), keyed by the
// Deployment's name.
func splitDeployments(t *testing.T, objs []*unstructured.Unstructured) map[string]*installation {
	t.Helper()
	var shared [][]byte
	var deployments []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deployments = append(deployments, o)
			continue
		}
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, data)
	}
	insts := map[string]*installation{}
	for _, d := range deployments {
		data, err := yaml.Marshal(d.Object)
		if err != nil {
			t.Fatal(err)
		}
		insts[d.GetName()] = parseInstallation(t, bytes.Join(append(slices.Clone(shared), data), []byte("---\n")))
	}
	return insts
}

// argValue returns the value of --name in args, and how often it is there.
func argValue(args []string, name string) (value string, n int) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			value, n = v, n+1
		}
	}
	return value, n
}

// checkShardedRendering checks config/overlays/sharded without running it: it adds shard
// Deployments and their metrics Services to config/default and changes only the default
// manager's args; every manager selects its own resources, its own pods, and (but for the
// default manager, which keeps the Lease of an installation without shards) gets a Lease of its
// own; and --known-shards names exactly the shards that run.
func checkShardedRendering(t *testing.T, base *installation, objs []*unstructured.Unstructured, insts map[string]*installation) (shards []string) {
	t.Helper()
	def, ok := insts[defaultManager]
	if !ok {
		t.Fatalf("%s has no Deployment %s; it has %v", shardedOverlay, defaultManager, slices.Sorted(maps.Keys(insts)))
	}
	var shardObjs []string
	for name := range insts {
		if name == defaultManager {
			continue
		}
		s, ok := strings.CutPrefix(name, defaultManager+"-")
		if !ok {
			t.Fatalf("Deployment %s is not named %s-<shard>", name, defaultManager)
		}
		shards = append(shards, s)
		shardObjs = append(shardObjs, "Deployment routeopt-system/"+name, "Service routeopt-system/routeopt-controller-manager-metrics-service-"+s)
	}
	slices.Sort(shards)
	slices.Sort(shardObjs)
	if len(shards) < 2 {
		t.Fatalf("%s runs %d shards, want 2 or more", shardedOverlay, len(shards))
	}
	onlyBase, onlyInst, changed := changes(base.objs, objs)
	if len(onlyBase) > 0 || !slices.Equal(onlyInst, shardObjs) ||
		!slices.Equal(changed, []string{"Deployment routeopt-system/" + defaultManager}) {
		t.Errorf("the overlay should add a Deployment and a metrics Service per shard and change only the default manager; removed %v, added %v (want %v), changed %v",
			onlyBase, onlyInst, shardObjs, changed)
	}

	baseArgs := base.manager(t).Args
	wantDefault := slices.Concat(baseArgs, []string{
		"--watch-label-selector=!" + shard.Label,
		"--leader-election-id=" + shard.DefaultLeaderElectionID,
		"--known-shards=" + strings.Join(shards, ","),
	})
	if got := def.manager(t).Args; !slices.Equal(got, wantDefault) {
		t.Errorf("default manager args %v, want %v", got, wantDefault)
	}
	for _, s := range shards {
		inst := insts[defaultManager+"-"+s]
		args := inst.manager(t).Args
		if sel, n := argValue(args, "watch-label-selector"); n != 1 || sel != shard.Label+"="+s {
			t.Errorf("shard %s: --watch-label-selector %q (%d times), want %s=%s once", s, sel, n, shard.Label, s)
		}
		for _, other := range []string{"leader-election-id", "known-shards"} {
			if _, n := argValue(args, other); n > 0 {
				t.Errorf("shard %s sets --%s: %v", s, other, args)
			}
		}
		if rest := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "--watch-label-selector=") }); !slices.Equal(rest, baseArgs) {
			t.Errorf("shard %s args %v, want config/default's %v with its selector", s, args, baseArgs)
		}
		if got, want := inst.deployment.Spec.Template.Spec.ServiceAccountName, base.saName; got != want {
			t.Errorf("shard %s runs as %q, want config/default's ServiceAccount %q", s, got, want)
		}
	}

	// No Deployment's selector takes another's pods, and each metrics Service selects the pods
	// of one Deployment.
	for name, inst := range insts {
		sel, err := metav1.LabelSelectorAsSelector(inst.deployment.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for other, o := range insts {
			if other != name && sel.Matches(labels.Set(o.deployment.Spec.Template.Labels)) {
				t.Errorf("the selector of Deployment %s matches the pods of %s", name, other)
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() != "Service" {
			continue
		}
		var svc corev1.Service
		fromUnstructured(t, o, &svc)
		var selected []string
		for name, inst := range insts {
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(inst.deployment.Spec.Template.Labels)) {
				selected = append(selected, name)
			}
		}
		if len(selected) != 1 {
			t.Errorf("Service %s selects the pods of %v, want one Deployment's", svc.Name, selected)
		}
	}
	return shards
}

// TestShardedOverlay renders config/overlays/sharded, checks it, and runs its three managers
// (the default one and shards shard-1 and shard-2) as they would run in the cluster, each
// against an emulator of its own: a manager that read a resource of another shard would ask its
// emulator for an operation it does not have, and get NOT_FOUND. Resources labelled shard-1 and
// shard-2 and one without the label are each tracked by their own manager, and one labelled
// shard-9, which no manager selects, by none: the default manager counts it in
// routeopt_unselected_operations and logs it. Relabelled shard-1, it is taken on by that shard,
// with the cancel it asked for.
func TestShardedOverlay(t *testing.T) {
	ctx := context.Background()
	base := installDefault(t, cp)
	objs := testenv.DecodeManifests(t, render(t, shardedOverlay))
	insts := splitDeployments(t, objs)
	shards := checkShardedRendering(t, base, objs, insts)
	if t.Failed() {
		t.FailNow()
	}
	if !slices.Equal(shards, []string{"shard-1", "shard-2"}) {
		t.Fatalf("%s runs the shards %v; this test drives shard-1 and shard-2", shardedOverlay, shards)
	}

	// The default manager watches the whole cluster: a resource left by another test would be
	// read from this test's emulator.
	var existing opsv1.OptimizationOperationList
	if err := cp.k8s.List(ctx, &existing); err != nil {
		t.Fatal(err)
	}
	if len(existing.Items) > 0 {
		t.Fatalf("the cluster holds %d OptimizationOperations from an earlier test (%s/%s ...); this test needs none", len(existing.Items), existing.Items[0].Namespace, existing.Items[0].Name)
	}

	// One emulator per manager, and the operations of each manager's resources only there.
	emus := map[string]*emulator.AdminClient{}
	hosts := map[string]string{}
	for name := range insts {
		srv := httptest.NewServer(emulator.New(emulator.Options{}))
		t.Cleanup(srv.Close)
		emus[name], hosts[name] = &emulator.AdminClient{BaseURL: srv.URL}, strings.TrimPrefix(srv.URL, "http://")
	}
	shard1, shard2 := defaultManager+"-shard-1", defaultManager+"-shard-2"
	newOp := func(manager string, d time.Duration) string {
		t.Helper()
		name, err := emus[manager].CreateOperation(ctx, emulator.CreateOperationRequest{Duration: d})
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	ns := newNamespace(t, cp)
	type resource struct {
		name, shard, manager, op string
		cancel                   bool
	}
	resources := []resource{
		// Created first, so that a manager that wrongly selected it would take it on first.
		{name: "nine", shard: "shard-9", manager: shard1, op: newOp(shard1, time.Hour), cancel: true},
		{name: "plain", manager: defaultManager, op: newOp(defaultManager, time.Hour)},
		{name: "one", shard: "shard-1", manager: shard1, op: newOp(shard1, time.Hour)},
		{name: "two", shard: "shard-2", manager: shard2, op: newOp(shard2, 0)}, // done at once
	}
	for _, r := range resources {
		obj := &opsv1.OptimizationOperation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: r.name},
			Spec:       opsv1.OptimizationOperationSpec{OperationName: r.op, Cancel: r.cancel},
		}
		if r.shard != "" {
			obj.Labels = map[string]string{shard.Label: r.shard}
		}
		if err := cp.k8s.Create(ctx, obj); err != nil {
			t.Fatalf("create %s: %v", r.name, err)
		}
	}

	// The managers start once the resources exist, so the default manager's first count,
	// made as soon as it leads, already sees shard-9.
	managers := map[string]*manager{}
	runners := map[string]*runner{}
	for _, name := range slices.Sorted(maps.Keys(insts)) {
		m := startManager(t, cp, insts[name], hosts[name])
		managers[name], runners[name] = m, &runner{t: t, c: cp, m: m}
	}
	defer func() {
		for _, m := range managers {
			m.stop()
		}
		cleanUp(t, cp, managers[defaultManager].leaseNS, []string{ns})
		if t.Failed() {
			for name, m := range managers {
				t.Logf("log of %s:\n%s", name, shorten(m.log.String(), 20000))
			}
		}
	}()
	check := func(broke string) {
		t.Helper()
		if broke != "" {
			t.Fatal(broke)
		}
	}

	check(runners[defaultManager].waitState(ns, "plain", opsv1.ReasonRunning))
	check(runners[shard1].waitState(ns, "one", opsv1.ReasonRunning))
	check(runners[shard2].waitState(ns, "two", opsv1.ReasonSucceeded))
	// A Lease each: the default manager keeps the one of an installation without shards, a
	// shard's is named after its selector.
	wantLeases := []string{shard.DefaultLeaderElectionID}
	for _, s := range shards {
		settings, err := shard.Flags{WatchLabelSelector: shard.Label + "=" + s, LeaderElectionID: shard.DefaultLeaderElectionID}.Settings()
		if err != nil {
			t.Fatal(err)
		}
		wantLeases = append(wantLeases, settings.LeaderElectionID)
	}
	slices.Sort(wantLeases)
	check(waitLeases(runners[defaultManager], wantLeases))

	// The count, on the default manager's metrics endpoint, and the log line naming the resource.
	def := runners[defaultManager]
	check(def.wait(unselectedGauge+" 1 on "+defaultManager, func() (bool, string, string) {
		body, broke := def.scrapeBody(insts[defaultManager])
		if broke != "" {
			return false, broke, ""
		}
		line := metricLine(body, unselectedGauge)
		return line == unselectedGauge+" 1", "", fmt.Sprintf("%q", line)
	}))
	check(def.wait(defaultManager+" logging "+ns+"/nine", func() (bool, string, string) {
		for line := range strings.Lines(def.m.log.String()) {
			if strings.Contains(line, "no known shard selects") && strings.Contains(line, ns+"/nine") {
				return true, "", ""
			}
		}
		return false, "", "no such line"
	}))
	for _, name := range []string{shard1, shard2} {
		body, broke := runners[name].scrapeBody(insts[name])
		check(broke)
		if line := metricLine(body, unselectedGauge); line != unselectedGauge+" 0" {
			t.Errorf("%s, which has no --known-shards, serves %q", name, line)
		}
	}

	// Nobody touched shard-9's resource: no status, no finalizer, no read of its operation.
	nine := &opsv1.OptimizationOperation{}
	if err := cp.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nine"}, nine); err != nil {
		t.Fatal(err)
	}
	if len(nine.Status.Conditions) > 0 || len(nine.Finalizers) > 0 {
		t.Errorf("a manager acted on %s/nine, labelled shard-9: %s", ns, describe(nine))
	}
	wantReads := map[string]bool{} // operation -> read (at its manager's emulator)
	for _, r := range resources {
		wantReads[r.op] = r.name != "nine"
	}
	checkEmulators(t, emus, wantReads)

	// Relabelled shard-1, the resource is shard-1's: it sends the cancel the resource has asked
	// for since its creation.
	if err := cp.k8s.Patch(ctx, nine, client.RawPatch(client.Merge.Type(),
		[]byte(`{"metadata":{"labels":{"`+shard.Label+`":"shard-1"}}}`))); err != nil {
		t.Fatal(err)
	}
	check(runners[shard1].waitState(ns, "nine", opsv1.ReasonCancelled))
	wantReads[resources[0].op] = true
	checkEmulators(t, emus, wantReads)
	info, err := emus[shard1].GetOperation(ctx, resources[0].op)
	if err != nil {
		t.Fatal(err)
	}
	if info.CancelCalls != 1 {
		t.Errorf("shard-1's emulator got %d cancels of %s, want 1", info.CancelCalls, resources[0].op)
	}
	for name, r := range runners {
		if b := r.m.broken(); b != "" {
			t.Errorf("%s: %s", name, b)
		}
	}
}

// metricLine returns the line of an unlabelled metric in a scrape, "" when it is missing.
func metricLine(body, name string) string {
	for line := range strings.Lines(body) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// checkEmulators checks that every emulator was read only for its own operations: no NOT_FOUND
// answered (a manager asking for another shard's operation), and each operation read or not as
// want says.
func checkEmulators(t *testing.T, emus map[string]*emulator.AdminClient, want map[string]bool) {
	t.Helper()
	ctx := context.Background()
	for name, emu := range emus {
		counters, err := emu.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for method, byStatus := range counters {
			if n := byStatus[404]; n > 0 {
				t.Errorf("%s's emulator answered %d %s calls with NOT_FOUND: a manager asked it for an operation of another shard", name, n, method)
			}
		}
		ops, err := emu.ListOperations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if read := op.Reads > 0; read != want[op.Name] {
				t.Errorf("%s's emulator: %s read %d times, want read: %v", name, op.Name, op.Reads, want[op.Name])
			}
		}
	}
}

// waitLeases waits until exactly the Leases named in want (sorted) have holders in the
// managers' namespace.
func waitLeases(r *runner, want []string) string {
	r.t.Helper()
	return r.wait(fmt.Sprintf("held Leases %v in %s", want, r.m.leaseNS), func() (bool, string, string) {
		leases, err := r.c.kube.CoordinationV1().Leases(r.m.leaseNS).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, "", err.Error()
		}
		var held []string
		for _, l := range leases.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				held = append(held, l.Name)
			}
		}
		slices.Sort(held)
		return slices.Equal(held, want), "", fmt.Sprintf("held: %v", held)
	})
}
