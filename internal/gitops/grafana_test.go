package gitops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/budget"
	"github.com/routeopt/routeopt-operator/internal/metrics"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

type fakeBudget struct{}

func (fakeBudget) Rate() float64 { return 5 }
func (fakeBudget) Waiting() int  { return 0 }

func (fakeBudget) WaitingFor(budget.Priority) int { return 0 }

var (
	registerOnce sync.Once
	served       map[string]bool
)

// servedMetrics returns the names of the operator's own metrics (routeopt_*) exactly as the
// manager registers them, read from the collectors' descriptors.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	registerOnce.Do(func() {
		scheme := runtime.NewScheme()
		if err := opsv1.AddToScheme(scheme); err != nil {
			t.Fatal(err)
		}
		if err := metrics.Register(context.Background(), &informertest.FakeInformers{Scheme: scheme}, fakeBudget{}); err != nil {
			t.Fatal(err)
		}
		served = map[string]bool{}
		descs := make(chan *prometheus.Desc, 64)
		go func() {
			// Every collector the manager registers, including vectors without samples yet.
			for _, c := range []prometheus.Collector{metrics.RemoteRequests, metrics.RemoteDuration,
				metrics.CancelLatency, metrics.PollLag, metrics.BudgetDeferred, metrics.Submits} {
				c.Describe(descs)
			}
			close(descs)
		}()
		fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
		for d := range descs {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				served[m[1]] = true
			}
		}
		// The collectors Register builds itself (state counts and budget gauges) always report.
		families, err := crmetrics.Registry.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		for _, f := range families {
			if strings.HasPrefix(f.GetName(), "routeopt_") {
				served[f.GetName()] = true
			}
		}
	})
	if len(served) == 0 {
		t.Fatal("no routeopt_ metrics registered")
	}
	return served
}

// metricName strips the series suffixes of histograms.
func metricName(series string, known map[string]bool) string {
	if known[series] {
		return series
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && known[base] {
			return base
		}
	}
	return series
}

var metricRef = regexp.MustCompile(`\brouteopt_[a-z_]+`)

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "config", "grafana", "routeopt-operator.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed: one JSON value, nothing after it.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s has data after the dashboard object", path)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d, data
}

// TestGrafanaDashboard checks that the dashboard is well-formed JSON of a Grafana dashboard and
// that every query uses metrics the manager serves.
func TestGrafanaDashboard(t *testing.T) {
	d, _ := readDashboard(t)
	known := servedMetrics(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard needs uid, title and schemaVersion; got %q %q %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Error("dashboard has no datasource variable; panels would be tied to one Prometheus")
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	occupied := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := occupied[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				occupied[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, target := range p.Targets {
			if strings.TrimSpace(target.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			if refs[target.RefID] {
				t.Errorf("panel %q: refId %q used twice", p.Title, target.RefID)
			}
			refs[target.RefID] = true
			if strings.Count(target.Expr, "(") != strings.Count(target.Expr, ")") ||
				strings.Count(target.Expr, "{") != strings.Count(target.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %s", p.Title, target.Expr)
			}
			for _, series := range metricRef.FindAllString(target.Expr, -1) {
				name := metricName(series, known)
				if !known[name] {
					t.Errorf("panel %q queries %s, which the manager does not serve", p.Title, series)
				}
				used[name] = true
			}
		}
	}
	// The dashboard's purpose: operations by state, cancel latency, remote calls by code, budget use.
	for _, want := range []string{"routeopt_operations", "routeopt_cancel_latency_seconds",
		"routeopt_remote_requests_total", "routeopt_api_budget_qps"} {
		if !used[want] {
			t.Errorf("no panel uses %s", want)
		}
	}
	var unused []string
	for name := range known {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	t.Logf("metrics served: %d, on the dashboard: %d, not on it: %v", len(known), len(used), unused)
}

// TestMetricsDocumented checks that docs/metrics.md has a table row for every metric the manager
// serves, and none for a metric it does not.
func TestMetricsDocumented(t *testing.T) {
	known := servedMetrics(t)
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `(routeopt_[a-z_]+)`")
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		rows[m[1]] = true
	}
	for name := range known {
		if !rows[name] {
			t.Errorf("docs/metrics.md has no table row for %s", name)
		}
	}
	for name := range rows {
		if !known[name] {
			t.Errorf("docs/metrics.md documents %s, which the manager does not serve", name)
		}
	}
}
