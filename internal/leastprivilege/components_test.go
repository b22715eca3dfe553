package leastprivilege_test

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	noSecretsComponent = "config/components/no-secrets"
	namespacedOverlay  = "config/overlays/namespaced"
	noSecretsArg       = "--credentials-from-secrets=false"
)

func objKey(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// changes compares two renderings object by object: the objects only in a, only in b, and in
// both but different.
func changes(a, b []*unstructured.Unstructured) (onlyA, onlyB, changed []string) {
	index := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			m[objKey(o)] = o
		}
		return m
	}
	ia, ib := index(a), index(b)
	for k, o := range ia {
		switch other, ok := ib[k]; {
		case !ok:
			onlyA = append(onlyA, k)
		case !equality.Semantic.DeepEqual(o.Object, other.Object):
			changed = append(changed, k)
		}
	}
	for k := range ib {
		if _, ok := ia[k]; !ok {
			onlyB = append(onlyB, k)
		}
	}
	slices.Sort(onlyA)
	slices.Sort(onlyB)
	slices.Sort(changed)
	return onlyA, onlyB, changed
}

func managerRole(t *testing.T, inst *installation) []rbacv1.PolicyRule {
	t.Helper()
	for _, o := range inst.objs {
		if o.GetKind() == "ClusterRole" && strings.HasSuffix(o.GetName(), "manager-role") {
			var cr rbacv1.ClusterRole
			fromUnstructured(t, o, &cr)
			return cr.Rules
		}
	}
	t.Fatal("the rendering has no manager ClusterRole")
	return nil
}

func mentionsSecrets(rules []rbacv1.PolicyRule) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*")
	})
}

// TestNoSecretsComponent renders config/default with the no-secrets component, checks that it
// changes exactly the manager's args and its Secrets rule, and runs the manager with it: no
// permission on Secrets anywhere, and the operator still works for resources without one.
func TestNoSecretsComponent(t *testing.T) {
	installDefault(t, cp)
	base := parseInstallation(t, render(t, "config/default"))
	data := renderWith(t, "config/default", noSecretsComponent)
	inst := parseInstallation(t, data)

	onlyBase, onlyInst, changed := changes(base.objs, inst.objs)
	if len(onlyBase) > 0 || len(onlyInst) > 0 ||
		!slices.Equal(changed, []string{"ClusterRole /routeopt-manager-role", "Deployment routeopt-system/routeopt-controller-manager"}) {
		t.Errorf("the component should change the manager's ClusterRole and Deployment only; removed %v, added %v, changed %v", onlyBase, onlyInst, changed)
	}
	if got, want := inst.manager(t).Args, slices.Concat(base.manager(t).Args, []string{noSecretsArg}); !slices.Equal(got, want) {
		t.Errorf("args %v, want %v", got, want)
	}
	baseRules, rules := managerRole(t, base), managerRole(t, inst)
	if !mentionsSecrets(baseRules) {
		t.Fatal("config/default's manager role has no Secrets rule: the component's patch no longer applies")
	}
	if mentionsSecrets(rules) {
		t.Errorf("the manager role still grants Secrets: %+v", rules)
	}
	if want := slices.DeleteFunc(slices.Clone(baseRules), func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "secrets")
	}); !equality.Semantic.DeepEqual(rules, want) {
		t.Errorf("rules %+v, want those of config/default without Secrets: %+v", rules, want)
	}

	// With the namespaced overlay too: the RoleBindings grant the same role, now without Secrets.
	both := parseInstallation(t, renderWith(t, namespacedOverlay, noSecretsComponent))
	if mentionsSecrets(managerRole(t, both)) || !slices.Contains(both.manager(t).Args, noSecretsArg) {
		t.Errorf("no-secrets over %s: args %v, manager role %+v", namespacedOverlay, both.manager(t).Args, managerRole(t, both))
	}

	apply(t, cp, data)
	ns := newNamespace(t, cp)
	canI(t, cp, inst, "no", "get", "secrets", "-n", ns)
	canI(t, cp, inst, "no", "get", "secrets", "--all-namespaces")
	if broke := run(t, runOptions{c: cp, inst: inst, plainNS: ns, keyedNS: ns, noSecrets: true}); broke != "" {
		if strings.Contains(broke, "flag provided but not defined") {
			t.Fatalf("the manager has no %s flag (cmd/main.go): %s", strings.TrimSuffix(noSecretsArg, "=false"), broke)
		}
		t.Fatalf("with %s: %s", noSecretsComponent, broke)
	}
}

// TestNamespacedOverlay renders config/overlays/namespaced, checks that the manager is granted
// its role exactly in the namespaces it watches, and runs it with that RBAC: it works there and
// may not read a Secret anywhere else.
func TestNamespacedOverlay(t *testing.T) {
	installDefault(t, cp)
	base := parseInstallation(t, render(t, "config/default"))
	data := render(t, namespacedOverlay)
	inst := parseInstallation(t, data)

	var watched []string
	for _, a := range inst.manager(t).Args {
		if v, ok := strings.CutPrefix(a, "--watch-namespaces="); ok {
			watched = strings.Split(v, ",")
		}
	}
	if len(watched) == 0 {
		t.Fatalf("%s does not set --watch-namespaces: %v", namespacedOverlay, inst.manager(t).Args)
	}
	var granted []string
	for _, r := range inst.roles {
		if r.id.Kind == "ClusterRole" && strings.HasSuffix(r.id.Name, "manager-role") {
			if r.scope == "" {
				t.Errorf("%s still binds %s cluster-wide", namespacedOverlay, r.id)
			}
			granted = append(granted, r.scope)
		}
	}
	slices.Sort(granted)
	if !slices.Equal(granted, slices.Sorted(slices.Values(watched))) {
		t.Errorf("the manager role is bound in %v, but --watch-namespaces is %v: the two lists must name the same namespaces", granted, watched)
	}
	onlyBase, onlyInst, changed := changes(base.objs, inst.objs)
	if !slices.Equal(onlyBase, []string{"ClusterRoleBinding /routeopt-manager-rolebinding"}) ||
		!slices.Equal(changed, []string{"Deployment routeopt-system/routeopt-controller-manager"}) ||
		len(onlyInst) != len(watched) {
		t.Errorf("the overlay should drop the ClusterRoleBinding, add one RoleBinding per namespace and set --watch-namespaces only; removed %v, added %v, changed %v", onlyBase, onlyInst, changed)
	}
	if t.Failed() {
		t.FailNow()
	}

	// kubectl apply does not delete what the overlay leaves out of dist/install.yaml.
	for _, k := range onlyBase {
		for _, o := range base.objs {
			if objKey(o) == k {
				mustKubectl(t, cp.kc, "delete", strings.ToLower(o.GetKind()), o.GetName())
			}
		}
	}
	for _, ns := range watched {
		ensureNamespace(t, cp, ns)
	}
	const other = "not-watched"
	ensureNamespace(t, cp, other)
	apply(t, cp, data)
	t.Cleanup(func() {
		for _, k := range onlyInst {
			for _, o := range inst.objs {
				if objKey(o) == k {
					mustKubectl(t, cp.kc, "delete", "-n", o.GetNamespace(), strings.ToLower(o.GetKind()), o.GetName())
				}
			}
		}
	})

	canI(t, cp, inst, "yes", "get", "secrets", "-n", watched[0])
	canI(t, cp, inst, "no", "get", "secrets", "-n", other)
	canI(t, cp, inst, "no", "get", "secrets", "--all-namespaces")
	canI(t, cp, inst, "no", "list", "optimizationoperations.ops.routeopt.dev", "--all-namespaces")
	canI(t, cp, inst, "no", "list", "optimizationoperations.ops.routeopt.dev", "-n", other)
	if broke := run(t, runOptions{c: cp, inst: inst, plainNS: watched[0], keyedNS: watched[len(watched)-1], otherNS: other}); broke != "" {
		t.Fatalf("with %s: %s", namespacedOverlay, broke)
	}
}
