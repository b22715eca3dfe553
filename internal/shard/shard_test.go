package shard_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/shard"
)

func TestParseKnown(t *testing.T) {
	got, err := shard.ParseKnown(" shard-2, shard-1,,shard-2 ")
	if err != nil || !slices.Equal(got, []string{"shard-1", "shard-2"}) {
		t.Errorf("ParseKnown = %v, %v; want [shard-1 shard-2]", got, err)
	}
	if got, err := shard.ParseKnown(""); err != nil || len(got) != 0 {
		t.Errorf("ParseKnown(\"\") = %v, %v; want none", got, err)
	}
	if _, err := shard.ParseKnown("shard-1,not/a value"); err == nil || !strings.Contains(err.Error(), "not/a value") {
		t.Errorf("ParseKnown of an invalid label value: %v, want an error naming it", err)
	}
}

// TestSelectorsPartition checks the point of the selectors: with shards a and b known, every
// resource is selected by exactly one of the default manager, one shard, or the unselected
// count.
func TestSelectorsPartition(t *testing.T) {
	unselected, err := shard.UnselectedSelector([]string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := unselected.String(), shard.Label+","+shard.Label+" notin (a,b)"; got != want {
		t.Errorf("selector %q, want %q", got, want)
	}
	selectors := map[string]labels.Selector{
		"default":    labels.SelectorFromSet(nil).Add(mustRequirement(t, "!"+shard.Label)),
		"shard a":    labels.SelectorFromSet(labels.Set{shard.Label: "a"}),
		"shard b":    labels.SelectorFromSet(labels.Set{shard.Label: "b"}),
		"unselected": unselected,
	}
	for _, tc := range []struct {
		labels labels.Set
		want   string
	}{
		{nil, "default"},
		{labels.Set{"team": "x"}, "default"},
		{labels.Set{shard.Label: "a"}, "shard a"},
		{labels.Set{shard.Label: "b", "team": "x"}, "shard b"},
		{labels.Set{shard.Label: "c"}, "unselected"},
		{labels.Set{shard.Label: ""}, "unselected"}, // present, so not the default manager's
	} {
		var got []string
		for name, sel := range selectors {
			if sel.Matches(tc.labels) {
				got = append(got, name)
			}
		}
		if !slices.Equal(got, []string{tc.want}) {
			t.Errorf("labels %v are selected by %v, want exactly %s", tc.labels, got, tc.want)
		}
	}

	none, err := shard.UnselectedSelector(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !none.Matches(labels.Set{shard.Label: "a"}) || none.Matches(labels.Set{}) {
		t.Errorf("with no known shard, %q should select every labelled resource and only those", none)
	}
}

func mustRequirement(t *testing.T, s string) labels.Requirement {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	reqs, _ := sel.Requirements()
	return reqs[0]
}

func TestFlagsSettings(t *testing.T) {
	settings := func(f shard.Flags) shard.Settings {
		t.Helper()
		s, err := f.Settings()
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		return s
	}

	all := settings(shard.Flags{})
	if all.Watch != nil || all.Unselected != nil || all.LeaderElectionID != shard.DefaultLeaderElectionID {
		t.Errorf("no flags: %+v, want every resource, no count, Lease %s", all, shard.DefaultLeaderElectionID)
	}

	one := settings(shard.Flags{WatchLabelSelector: shard.Label + "=shard-1"})
	oneSpaced := settings(shard.Flags{WatchLabelSelector: " " + shard.Label + " = shard-1 "})
	two := settings(shard.Flags{WatchLabelSelector: shard.Label + "=shard-2"})
	if one.Watch == nil || !one.Watch.Matches(labels.Set{shard.Label: "shard-1"}) || one.Watch.Matches(labels.Set{shard.Label: "shard-2"}) {
		t.Errorf("selector %v should select shard-1 only", one.Watch)
	}
	if !strings.HasPrefix(one.LeaderElectionID, shard.DefaultLeaderElectionID+"-") {
		t.Errorf("shard Lease %q, want the default id with a suffix", one.LeaderElectionID)
	}
	if one.LeaderElectionID == two.LeaderElectionID {
		t.Errorf("shard-1 and shard-2 share the Lease %q", one.LeaderElectionID)
	}
	if one.LeaderElectionID != oneSpaced.LeaderElectionID {
		t.Errorf("two spellings of one selector give the Leases %q and %q", one.LeaderElectionID, oneSpaced.LeaderElectionID)
	}
	if given := settings(shard.Flags{WatchLabelSelector: shard.Label + "=shard-1", LeaderElectionID: "shard-1.example", LeaderElectionIDGiven: true}); given.LeaderElectionID != "shard-1.example" {
		t.Errorf("a given --leader-election-id became %q", given.LeaderElectionID)
	}

	if s := settings(shard.Flags{KnownShardsGiven: true}); s.Unselected == nil || s.Unselected.String() != shard.Label {
		t.Errorf("--known-shards= (given, empty): unselected selector %v, want %s", s.Unselected, shard.Label)
	}
	if s := settings(shard.Flags{KnownShards: "b,a", KnownShardsGiven: true}); s.Unselected == nil || s.Unselected.String() != shard.Label+","+shard.Label+" notin (a,b)" {
		t.Errorf("--known-shards=b,a: unselected selector %v", s.Unselected)
	}

	for _, tc := range []struct {
		f    shard.Flags
		want string
	}{
		{shard.Flags{WatchLabelSelector: "a in (", LeaderElectionID: shard.DefaultLeaderElectionID}, "--watch-label-selector"},
		{shard.Flags{LeaderElectionID: "Not_A_Lease", LeaderElectionIDGiven: true}, "--leader-election-id"},
		{shard.Flags{LeaderElectionID: shard.DefaultLeaderElectionID, KnownShards: "a,b c", KnownShardsGiven: true}, "--known-shards"},
	} {
		if _, err := tc.f.Settings(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.f, err, tc.want)
		}
	}
}

// pagingReader serves List in pages of the requested Limit with an offset as the continue
// token, as the API server does (the fake client ignores both), and counts the requests.
type pagingReader struct {
	client.Reader
	lists int
	fail  error
}

func (p *pagingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	p.lists++
	if p.fail != nil {
		return p.fail
	}
	if err := p.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	l := list.(*metav1.PartialObjectMetadataList)
	from := 0
	if lo.Continue != "" {
		from, _ = strconv.Atoi(lo.Continue)
	}
	all := len(l.Items)
	to := all
	if lo.Limit > 0 {
		to = min(all, from+int(lo.Limit))
	}
	l.Items, l.Continue = l.Items[from:to], ""
	if to < all {
		l.Continue = strconv.Itoa(to)
	}
	return nil
}

func TestCheckerCountsAndLogsTransitions(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := opsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	op := func(ns, name, shardName string) client.Object {
		o := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if shardName != "-" {
			o.Labels = map[string]string{shard.Label: shardName}
		}
		return o
	}
	objs := []client.Object{
		op("a", "plain", "-"), op("a", "one", "shard-1"), op("b", "two", "shard-2"),
		op("a", "lost-1", "shard-9"), op("a", "lost-2", "shard-9"), op("b", "lost-3", "old"),
		op("b", "lost-4", "old"), op("b", "lost-5", ""),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	reader := &pagingReader{Reader: c}
	sel, err := shard.UnselectedSelector([]string{"shard-1", "shard-2"})
	if err != nil {
		t.Fatal(err)
	}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_unselected"})
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(gauge)
	value := func() float64 {
		t.Helper()
		families, err := registry.Gather()
		if err != nil || len(families) != 1 {
			t.Fatalf("gather: %v, %d families", err, len(families))
		}
		return families[0].GetMetric()[0].GetGauge().GetValue()
	}
	checker := &shard.Checker{Reader: reader, Selector: sel, PageSize: 2, Gauge: gauge}
	var logs bytes.Buffer
	ctx := logf.IntoContext(context.Background(), zap.New(zap.WriteTo(&logs)))
	lines := func() []string { return strings.Split(strings.TrimSpace(logs.String()), "\n") }

	checker.Check(ctx)
	if got := value(); got != 5 {
		t.Errorf("gauge %v, want 5", got)
	}
	if reader.lists != 3 {
		t.Errorf("%d list requests for 5 resources in pages of 2, want 3", reader.lists)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], `"count":5`) || strings.Count(l[0], "lost-") != 3 {
		t.Errorf("want one log line with the count and three examples, got:\n%s", logs.String())
	}

	checker.Check(ctx)
	if l := lines(); len(l) != 1 {
		t.Errorf("a count that stays above zero logged again:\n%s", logs.String())
	}

	// Reading fails: the gauge keeps its value, the failure is logged.
	reader.fail = errors.New("the server is gone")
	checker.Check(ctx)
	reader.fail = nil
	if got := value(); got != 5 || !strings.Contains(logs.String(), "the server is gone") {
		t.Errorf("after a failed list: gauge %v (want 5 kept), log:\n%s", got, logs.String())
	}

	// Relabelled or deleted: back to zero, said once.
	for _, o := range objs {
		if strings.HasPrefix(o.GetName(), "lost-") {
			if err := c.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	logs.Reset()
	checker.Check(ctx)
	checker.Check(ctx)
	if got := value(); got != 0 {
		t.Errorf("gauge %v, want 0", got)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "selected by a known shard again") {
		t.Errorf("want one log line when the count returns to zero, got:\n%s", logs.String())
	}

	// Limited to namespaces (--watch-namespaces): only their resources count.
	if err := c.Create(ctx, op("a", "lost-6", "shard-9")); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, op("c", "lost-7", "shard-9")); err != nil {
		t.Fatal(err)
	}
	checker.Namespaces = []string{"a", "b"}
	checker.Check(ctx)
	if got := value(); got != 1 {
		t.Errorf("in namespaces a and b: gauge %v, want 1", got)
	}
}
