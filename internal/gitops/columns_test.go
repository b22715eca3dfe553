package gitops_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// readCRD reads the generated CRD of OptimizationOperation.
func readCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	path := filepath.Join(testenv.CRDDir(), "ops.routeopt.dev_optimizationoperations.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(b, crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%s has %d versions, want 1", path, len(crd.Spec.Versions))
	}
	return crd
}

// capturedTable is the output of one kubectl get, cut into cells by the header's columns, and
// when it was read.
type capturedTable struct {
	source        string
	header        []string
	rows          map[string][]string // by NAME
	before, after time.Time
}

// parseTable cuts kubectl's table output into cells. kubectl aligns the columns with a
// tabwriter, so every cell starts where its header does; cells may be empty or hold spaces
// (MESSAGE, the last one).
func parseTable(t *testing.T, source string, lines []string) capturedTable {
	t.Helper()
	if len(lines) < 2 {
		t.Fatalf("%s: a table needs a header and a row, got %q", source, lines)
	}
	tab := capturedTable{source: source, rows: map[string][]string{}}
	head := []rune(lines[0])
	var starts []int
	for i, r := range head {
		if r != ' ' && (i == 0 || head[i-1] == ' ') {
			starts = append(starts, i)
			tab.header = append(tab.header, strings.TrimSpace(string(head[i:min(len(head), nextSpace(head, i))])))
		}
	}
	for _, line := range lines[1:] {
		row := []rune(line)
		cells := make([]string, len(starts))
		for c, s := range starts {
			end := len(row)
			if c+1 < len(starts) {
				end = min(end, starts[c+1])
			}
			if s < end {
				cells[c] = strings.TrimSpace(string(row[s:end]))
			}
			if c > 0 && s > 0 && s <= len(row) && row[s-1] != ' ' {
				t.Errorf("%s: in row %q a cell runs into column %s", source, line, tab.header[c])
			}
		}
		tab.rows[cells[0]] = cells
	}
	return tab
}

func nextSpace(r []rune, from int) int {
	for i := from; i < len(r); i++ {
		if r[i] == ' ' {
			return i
		}
	}
	return len(r)
}

var capturedAt = regexp.MustCompile(`^# (testdata/[a-z-]+\.yaml), read between (\S+) and (\S+)$`)

// readColumns reads config/argocd/testdata/columns.txt: for each fixture, the output of
// `kubectl get optop NAME -o wide` read together with it.
func readColumns(t *testing.T) map[string]capturedTable {
	t.Helper()
	path := filepath.Join(argoDir(), "testdata", "columns.txt")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]capturedTable{}
	for block := range strings.SplitSeq(string(b), "\n\n") {
		lines := strings.Split(strings.Trim(block, "\n"), "\n")
		m := capturedAt.FindStringSubmatch(lines[0])
		if m == nil {
			continue // the file's own comment
		}
		tab := parseTable(t, m[1], lines[1:])
		for i, s := range []string{m[2], m[3]} {
			at, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Fatalf("%s: %s: %v", path, m[1], err)
			}
			if i == 0 {
				tab.before = at
			} else {
				tab.after = at
			}
		}
		tables[m[1]] = tab
	}
	return tables
}

// wantCell is what the API server's table convertor for custom resources
// (k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor) puts in the cell of
// col for obj, as kubectl prints it: the first result of the JSONPath, missing keys allowed;
// strings as jsonpath prints them, booleans as true or false, dates as the age kubectl shows
// at any time between before and after (whole seconds, as the capture recorded them). A missing
// value prints as an empty cell.
func wantCell(t *testing.T, col apiextensionsv1.CustomResourceColumnDefinition, obj map[string]any, before, after time.Time) []string {
	t.Helper()
	p := jsonpath.New(col.Name)
	if err := p.Parse(fmt.Sprintf("{%s}", col.JSONPath)); err != nil {
		t.Fatalf("column %s: JSONPath %s: %v", col.Name, col.JSONPath, err)
	}
	p.AllowMissingKeys(true)
	results, err := p.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return []string{""}
	}
	v := results[0][0].Interface()
	switch col.Type {
	case "string":
		var b bytes.Buffer
		if err := p.PrintResults(&b, results[0][:1]); err != nil {
			t.Fatalf("column %s: %v", col.Name, err)
		}
		return []string{b.String()}
	case "boolean":
		if x, ok := v.(bool); ok {
			return []string{fmt.Sprint(x)}
		}
	case "date":
		s, ok := v.(string)
		if !ok {
			return []string{""}
		}
		var ts metav1.Time
		if err := ts.UnmarshalQueryParameter(s); err != nil {
			return []string{"<invalid>"}
		}
		var ages []string
		for at := before; !at.After(after); at = at.Add(time.Second) {
			ages = append(ages, duration.HumanDuration(at.Sub(ts.Time)))
		}
		return ages
	default:
		t.Fatalf("column %s has type %s, which this test does not render", col.Name, col.Type)
	}
	return []string{""}
}

// TestPrinterColumnsMatchCapturedStates evaluates every printer column of the generated CRD on
// the object captured in each state and compares the result with `kubectl get -o wide` read
// with that object, so a column whose JSONPath stops matching the status fails here rather
// than showing blank in a cluster.
func TestPrinterColumnsMatchCapturedStates(t *testing.T) {
	cols := readCRD(t).Spec.Versions[0].AdditionalPrinterColumns
	wantHeader := []string{"NAME"}
	for _, c := range cols {
		wantHeader = append(wantHeader, strings.ToUpper(c.Name))
	}
	tables := readColumns(t)
	for _, tc := range readHealthTests(t).Tests {
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml"), func(t *testing.T) {
			tab, ok := tables[tc.InputPath]
			if !ok {
				t.Fatalf("testdata/columns.txt has no row for %s; regenerate with hack/demo/argocd-fixtures.sh", tc.InputPath)
			}
			if got := strings.Join(tab.header, " "); got != strings.Join(wantHeader, " ") {
				t.Fatalf("captured header %q, the CRD's columns are %q: regenerate the captures", got, strings.Join(wantHeader, " "))
			}
			obj := readObject(t, filepath.Join(argoDir(), tc.InputPath))
			name := obj["metadata"].(map[string]any)["name"].(string)
			row, ok := tab.rows[name]
			if !ok || len(tab.rows) != 1 {
				t.Fatalf("want one row, for %s; got %v", name, tab.rows)
			}
			for i, col := range cols {
				got := row[i+1]
				want := wantCell(t, col, obj, tab.before, tab.after)
				if !contains(want, got) {
					t.Errorf("column %s (%s): kubectl printed %q, the JSONPath on the object gives %q", col.Name, col.JSONPath, got, want)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStateColumnNamesTheProblem checks, on the captured rows, what the columns are for: a
// resource that cannot be read shows READY False and the problem in STATE, not the Running it
// was last seen in.
func TestStateColumnNamesTheProblem(t *testing.T) {
	tables := readColumns(t)
	for fixture, want := range map[string][3]string{
		"auth-failed":        {"False", "AuthFailed", "false"},
		"auth-failed-secret": {"False", "AuthFailed", "false"},
		"remote-unavailable": {"False", "RemoteUnavailable", "false"},
		"request-rejected":   {"False", "RequestRejected", "false"},
		"running":            {"False", "Running", "false"},
		"succeeded":          {"True", "Succeeded", "true"},
		"failed":             {"False", "Failed", "true"},
		"cancelled":          {"True", "Cancelled", "true"},
	} {
		tab, ok := tables["testdata/"+fixture+".yaml"]
		if !ok {
			t.Errorf("testdata/columns.txt has no row for %s", fixture)
			continue
		}
		for _, row := range tab.rows {
			got := [3]string{row[index(tab.header, "READY")], row[index(tab.header, "STATE")], row[index(tab.header, "DONE")]}
			if got != want {
				t.Errorf("%s: READY, STATE, DONE = %q, want %q", fixture, got, want)
			}
		}
	}
}

func index(header []string, name string) int {
	for i, h := range header {
		if h == name {
			return i
		}
	}
	panic("no column " + name)
}

// TestStatusDocShowsCapturedTables checks that docs/status.md shows the tables captured with
// the fixtures (config/argocd/testdata/all-states.txt) as they were printed, and that they have
// the CRD's columns.
func TestStatusDocShowsCapturedTables(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(argoDir(), "testdata", "all-states.txt"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "status.md"))
	if err != nil {
		t.Fatal(err)
	}
	// kubectl pads the last cells with spaces, which editors strip.
	trimLines := func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " ")
		}
		return strings.Join(lines, "\n")
	}
	if !strings.Contains(trimLines(string(doc)), trimLines(string(b))) {
		t.Error("docs/status.md does not show config/argocd/testdata/all-states.txt as captured")
	}
	cols := readCRD(t).Spec.Versions[0].AdditionalPrinterColumns
	var narrow, wide []string
	for _, c := range cols {
		if c.Priority == 0 {
			narrow = append(narrow, strings.ToUpper(c.Name))
		}
		wide = append(wide, strings.ToUpper(c.Name))
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n$ ")
	if len(parts) != 2 {
		t.Fatalf("all-states.txt: want two commands, got %d", len(parts))
	}
	for i, want := range [][]string{narrow, wide} {
		lines := strings.Split(strings.TrimPrefix(parts[i], "$ "), "\n")
		tab := parseTable(t, lines[0], lines[1:])
		if got := strings.Join(tab.header, " "); got != "NAME "+strings.Join(want, " ") {
			t.Errorf("%s: header %q, the CRD's columns are %q", lines[0], got, want)
		}
	}
}
