package leastprivilege_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/routeopt/routeopt-operator/internal/testenv"
)

// kubectl runs the real kubectl; with a control plane when kc is set.
var kubectl = testenv.Kubectl

func mustKubectl(t *testing.T, kc string, args ...string) string {
	t.Helper()
	out, stderr, err := kubectl(t, kc, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// render runs kubectl kustomize on dir, relative to the repository root.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	return []byte(mustKubectl(t, "", "kustomize", dir))
}

// renderWith renders an overlay of base (relative to the repository root) that adds the given
// components, the way an installation's own kustomization uses them.
func renderWith(t *testing.T, base string, components ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(), p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resources:\n- %s\ncomponents:\n", rel(base))
	for _, c := range components {
		fmt.Fprintf(&b, "- %s\n", rel(c))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return []byte(mustKubectl(t, "", "kustomize", dir))
}

// installerPath returns dist/install.yaml after checking that it is the rendering of
// config/default (image aside): an old file would test old RBAC.
func installerPath(t *testing.T) string {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "dist", "install.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `make build-installer` (make test runs it first)", err)
	}
	image := regexp.MustCompile(`(?m)^(\s*image:) .*$`)
	if !bytes.Equal(image.ReplaceAll(data, []byte("$1 X")), image.ReplaceAll(render(t, "config/default"), []byte("$1 X"))) {
		t.Fatalf("%s is older than config/: run `make build-installer`", path)
	}
	return path
}

// apply applies a rendering with the real kubectl, as a person installs it.
func apply(t *testing.T, c *cluster, manifests []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "install.yaml")
	if err := os.WriteFile(path, manifests, 0o600); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, c.kc, "apply", "-f", path)
}

// installDefault applies dist/install.yaml, which also undoes what an earlier test applied
// over it, and returns it parsed.
func installDefault(t *testing.T, c *cluster) *installation {
	t.Helper()
	path := installerPath(t)
	mustKubectl(t, c.kc, "apply", "-f", path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseInstallation(t, data)
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// roleID names a Role (Namespace set) or a ClusterRole.
type roleID struct{ Kind, Namespace, Name string }

func (r roleID) String() string {
	if r.Namespace != "" {
		return r.Kind + " " + r.Namespace + "/" + r.Name
	}
	return r.Kind + " " + r.Name
}

// boundRole is a role bound to the manager's ServiceAccount, with where the binding grants it
// ("" for the whole cluster).
type boundRole struct {
	id    roleID
	scope string
	rules []rbacv1.PolicyRule
}

// installation is what the tests need from a rendering: the manager's container, its
// ServiceAccount and the roles bound to it.
type installation struct {
	objs        []*unstructured.Unstructured
	deployment  *appsv1.Deployment
	saNamespace string
	saName      string
	roles       []boundRole
}

func parseInstallation(t *testing.T, data []byte) *installation {
	t.Helper()
	inst := &installation{objs: testenv.DecodeManifests(t, data)}
	roles := map[roleID][]rbacv1.PolicyRule{}
	aggregated := map[roleID]bool{} // their rules are filled in by the API server
	for _, o := range inst.objs {
		switch o.GetKind() {
		case "Deployment":
			if inst.deployment != nil {
				t.Fatal("the rendering has more than one Deployment")
			}
			inst.deployment = &appsv1.Deployment{}
			fromUnstructured(t, o, inst.deployment)
		case "Role":
			var r rbacv1.Role
			fromUnstructured(t, o, &r)
			roles[roleID{o.GetKind(), o.GetNamespace(), o.GetName()}] = r.Rules
		case "ClusterRole":
			var r rbacv1.ClusterRole
			fromUnstructured(t, o, &r)
			id := roleID{Kind: o.GetKind(), Name: o.GetName()}
			roles[id] = r.Rules
			if r.AggregationRule != nil {
				aggregated[id] = true
			}
		}
	}
	if inst.deployment == nil {
		t.Fatal("the rendering has no Deployment")
	}
	inst.saNamespace = inst.deployment.Namespace
	inst.saName = inst.deployment.Spec.Template.Spec.ServiceAccountName
	for _, o := range inst.objs {
		var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		switch o.GetKind() {
		case "RoleBinding", "ClusterRoleBinding":
			fromUnstructured(t, o, &b)
		default:
			continue
		}
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == inst.saNamespace && s.Name == inst.saName
		}) {
			continue
		}
		id := roleID{Kind: b.RoleRef.Kind, Name: b.RoleRef.Name}
		if id.Kind == "Role" {
			id.Namespace = b.Namespace
		}
		rules, ok := roles[id]
		switch {
		case !ok:
			t.Fatalf("%s %s refers to %s, which the rendering does not contain", o.GetKind(), o.GetName(), id)
		case aggregated[id]:
			t.Fatalf("%s %s binds the aggregated %s, whose rules the rendering does not show", o.GetKind(), o.GetName(), id)
		}
		inst.roles = append(inst.roles, boundRole{id: id, scope: b.Namespace, rules: rules})
	}
	return inst
}

// manager returns the manager's container: the Deployment's default container.
func (inst *installation) manager(t *testing.T) corev1.Container {
	t.Helper()
	spec := inst.deployment.Spec.Template.Spec
	name := inst.deployment.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]
	for _, c := range spec.Containers {
		if c.Name == name || len(spec.Containers) == 1 {
			return c
		}
	}
	t.Fatalf("the Deployment has no container %q", name)
	return corev1.Container{}
}

// serviceAccountUser is the user name the API server sees for the manager.
func (inst *installation) serviceAccountUser() string {
	return "system:serviceaccount:" + inst.saNamespace + ":" + inst.saName
}

// grant is one verb on one resource (or non-resource URL) from one rule of one role: the unit a
// test takes away.
type grant struct {
	role          roleID
	group         string
	resource      string // with its subresource, as in a rule: optimizationoperations/status
	resourceNames []string
	url           string
	verb          string
}

func (g grant) String() string {
	if g.url != "" {
		return g.verb + " " + g.url
	}
	what := g.resource
	if g.group != "" {
		what += "." + g.group
	}
	if len(g.resourceNames) > 0 {
		what += " " + strings.Join(g.resourceNames, ",")
	}
	return g.verb + " " + what
}

func (g grant) rule() rbacv1.PolicyRule {
	if g.url != "" {
		return rbacv1.PolicyRule{NonResourceURLs: []string{g.url}, Verbs: []string{g.verb}}
	}
	return rbacv1.PolicyRule{APIGroups: []string{g.group}, Resources: []string{g.resource},
		ResourceNames: g.resourceNames, Verbs: []string{g.verb}}
}

// covers says whether g grants what other asks for (wildcards included).
func (g grant) covers(other grant) bool {
	match := func(have, want string) bool { return have == "*" || have == want }
	if g.url != "" || other.url != "" {
		return g.url != "" && other.url != "" && match(g.url, other.url) && match(g.verb, other.verb)
	}
	return match(g.group, other.group) && match(g.resource, other.resource) && match(g.verb, other.verb) &&
		(len(g.resourceNames) == 0 || slices.Equal(g.resourceNames, other.resourceNames))
}

func grantsOf(id roleID, rules []rbacv1.PolicyRule) []grant {
	var gs []grant
	for _, r := range rules {
		for _, verb := range r.Verbs {
			for _, url := range r.NonResourceURLs {
				gs = append(gs, grant{role: id, url: url, verb: verb})
			}
			for _, group := range r.APIGroups {
				for _, res := range r.Resources {
					gs = append(gs, grant{role: id, group: group, resource: res, resourceNames: r.ResourceNames, verb: verb})
				}
			}
		}
	}
	return gs
}

// grants lists every grant of the roles bound to the manager.
func (inst *installation) grants() []grant {
	var gs []grant
	for _, r := range inst.roles {
		gs = append(gs, grantsOf(r.id, r.rules)...)
	}
	return gs
}

// grantedElsewhere names another role that grants g wherever g's role does: taking g away would
// then prove nothing, and g is redundant.
func (inst *installation) grantedElsewhere(g grant) string {
	var scope string
	for _, r := range inst.roles {
		if r.id == g.role {
			scope = r.scope
		}
	}
	for _, r := range inst.roles {
		if r.id == g.role || (r.scope != "" && r.scope != scope) {
			continue
		}
		for _, other := range grantsOf(r.id, r.rules) {
			if other.covers(g) {
				return r.id.String()
			}
		}
	}
	return ""
}

// withoutGrant takes g away from its role in the cluster and returns a function that puts it
// back. Both wait until the API server's authorizer answers accordingly.
func withoutGrant(t *testing.T, c *cluster, inst *installation, g grant) (restore func()) {
	t.Helper()
	ctx := context.Background()
	rbac := c.kube.RbacV1()
	var orig []rbacv1.PolicyRule
	setRules := func(rules func([]rbacv1.PolicyRule) []rbacv1.PolicyRule) {
		t.Helper()
		var err error
		if g.role.Kind == "ClusterRole" {
			var cr *rbacv1.ClusterRole
			if cr, err = rbac.ClusterRoles().Get(ctx, g.role.Name, metav1.GetOptions{}); err == nil {
				if orig == nil {
					orig = cr.Rules
				}
				cr.Rules = rules(cr.Rules)
				_, err = rbac.ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{})
			}
		} else {
			var r *rbacv1.Role
			if r, err = rbac.Roles(g.role.Namespace).Get(ctx, g.role.Name, metav1.GetOptions{}); err == nil {
				if orig == nil {
					orig = r.Rules
				}
				r.Rules = rules(r.Rules)
				_, err = rbac.Roles(g.role.Namespace).Update(ctx, r, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			t.Fatalf("update %s: %v", g.role, err)
		}
	}
	setRules(func(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
		// One rule per remaining grant: the same permissions as the role's rules, minus g.
		var out []rbacv1.PolicyRule
		for _, other := range grantsOf(g.role, rules) {
			if other.String() != g.String() {
				out = append(out, other.rule())
			}
		}
		return out
	})
	waitAllowed(t, c, inst, g, false)
	return func() {
		t.Helper()
		setRules(func([]rbacv1.PolicyRule) []rbacv1.PolicyRule { return orig })
		waitAllowed(t, c, inst, g, true)
	}
}

// waitAllowed asks the API server (SubjectAccessReview) whether the manager has g, until the
// answer is want: RBAC changes reach the authorizer through an informer, not at once.
func waitAllowed(t *testing.T, c *cluster, inst *installation, g grant, want bool) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   inst.serviceAccountUser(),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + inst.saNamespace, "system:authenticated"},
	}}
	if g.url != "" {
		sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: g.url, Verb: g.verb}
	} else {
		res, sub, _ := strings.Cut(g.resource, "/")
		name := ""
		if len(g.resourceNames) > 0 {
			name = g.resourceNames[0]
		}
		sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: g.role.Namespace, Verb: g.verb, Group: g.group, Resource: res, Subresource: sub, Name: name,
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := c.kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview for %s: %v", g, err)
		}
		if got.Status.Allowed == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server still answers allowed=%v for %s %s after 30s (%s)", got.Status.Allowed, inst.serviceAccountUser(), g, got.Status.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// canI runs `kubectl auth can-i ... --as <manager>` until it answers want ("yes" or "no").
func canI(t *testing.T, c *cluster, inst *installation, want string, args ...string) {
	t.Helper()
	args = append(append([]string{"auth", "can-i"}, args...), "--as", inst.serviceAccountUser())
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := kubectl(t, c.kc, args...) // exits 1 on "no"
		got := strings.TrimSpace(out)
		if got == want {
			t.Logf("kubectl %s: %s", strings.Join(args, " "), got)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl %s: %q, want %q (still, after 30s)", strings.Join(args, " "), got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
