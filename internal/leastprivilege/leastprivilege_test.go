package leastprivilege_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestLeastPrivilege runs the manager with the RBAC of dist/install.yaml, then once more for
// every grant (one verb on one resource) of the roles bound to its ServiceAccount, with that
// grant taken away. Everything must work with all of them, and something visible must break
// without any one of them.
func TestLeastPrivilege(t *testing.T) {
	inst := installDefault(t, cp)
	if len(inst.roles) == 0 {
		t.Fatalf("dist/install.yaml binds no role to %s", inst.serviceAccountUser())
	}
	t.Run("all permissions", func(t *testing.T) {
		ns := newNamespace(t, cp)
		if broke := run(t, runOptions{c: cp, inst: inst, plainNS: ns, keyedNS: ns}); broke != "" {
			t.Fatalf("with every permission of dist/install.yaml: %s", broke)
		}
	})
	if t.Failed() {
		return
	}

	var table []string
	for _, g := range inst.grants() {
		t.Run(fmt.Sprintf("without %s %s", g.role.Name, g), func(t *testing.T) {
			if other := inst.grantedElsewhere(g); other != "" {
				table = append(table, fmt.Sprintf("%s: %s -> redundant, %s grants it too", g.role, g, other))
				t.Errorf("%s of %s is redundant: %s grants it too; %s", g, g.role, other, whereToRemove(g))
				return
			}
			broke := runWithout(t, cp, inst, g)
			where := ""
			if broke == "" {
				// Clusters differ in the requests they make a client send: an API server
				// without streaming lists makes informers list before they watch.
				broke = runWithout(t, clusterWithoutStreamingLists(t), inst, g)
				where = " (API server without streaming lists)"
			}
			if broke == "" {
				table = append(table, fmt.Sprintf("%s: %s -> nothing breaks", g.role, g))
				t.Errorf("without %s of %s everything still works, so it is not needed; %s", g, g.role, whereToRemove(g))
				return
			}
			table = append(table, fmt.Sprintf("%s: %s -> %s%s", g.role, g, shorten(firstLine(broke), 300), where))
			t.Logf("without %s%s: %s", g, where, broke)
		})
	}
	t.Logf("permission -> what breaks without it:\n%s", strings.Join(table, "\n"))
}

// runWithout runs the manager on c with g taken away, and returns what broke.
func runWithout(t *testing.T, c *cluster, inst *installation, g grant) string {
	t.Helper()
	restore := withoutGrant(t, c, inst, g)
	defer restore()
	ns := newNamespace(t, c)
	return run(t, runOptions{c: c, inst: inst, plainNS: ns, keyedNS: ns, mayBreak: true})
}

// whereToRemove says where an unneeded grant comes from.
func whereToRemove(g grant) string {
	if g.role.Kind == "ClusterRole" && strings.HasSuffix(g.role.Name, "manager-role") {
		return "drop it from the +kubebuilder:rbac markers in controllers/ (they generate config/rbac/role.yaml)"
	}
	return "drop it from the role's file in config/rbac/"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
