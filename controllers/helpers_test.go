package controllers_test

import (
	"context"
	"testing"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/api/option"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/controllers"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

type controllersOptions = controllers.Options

const (
	goodAccount = "solver@demo-project.iam.gserviceaccount.com"
	badAccount  = "intruder@other-project.iam.gserviceaccount.com"
)

func toUnstructured(m map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: m}
}

// cancelViaGoogleAPI cancels an operation the way another tool would: with Google's own
// client, straight against the API, not through the resource.
func cancelViaGoogleAPI(t *testing.T, h *harness, name string) {
	t.Helper()
	c, err := lroauto.NewOperationsRESTClient(context.Background(),
		option.WithEndpoint(h.emu.URL), option.WithoutAuthentication())
	must(t, err)
	defer func() { _ = c.Close() }()
	must(t, c.CancelOperation(h.ctx, &longrunningpb.CancelOperationRequest{Name: name}))
}

// serviceAccountKey returns a service-account key file for email whose token_uri is the
// emulator's OAuth2 endpoint: the operator then runs Google's real service-account flow.
func serviceAccountKey(t *testing.T, h *harness, email string) []byte {
	t.Helper()
	key, err := emulator.NewServiceAccountKey(h.emu.URL, email)
	must(t, err)
	return key
}

// putSecret creates or replaces the data of a Secret in the harness namespace. A Secret that
// exists keeps its labels.
func (h *harness) putSecret(name string, data map[string][]byte) {
	h.t.Helper()
	h.putSecretWith(name, nil, data)
}

// putCredentials stores key as key.json in a Secret that opted in as credentials.
func (h *harness) putCredentials(name string, key []byte) {
	h.t.Helper()
	h.putSecretWith(name, map[string]string{controllers.CredentialsLabel: "true"}, map[string][]byte{"key.json": key})
}

// putSecretWith creates or replaces a Secret's data, and sets labels unless they are nil.
func (h *harness) putSecretWith(name string, labels map[string]string, data map[string][]byte) {
	h.t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, s); err == nil {
		s.Data = data
		if labels != nil {
			s.Labels = labels
		}
		must(h.t, k8s.Update(h.ctx, s))
		return
	}
	s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Labels: labels}, Data: data}
	must(h.t, k8s.Create(h.ctx, s))
}

func ptrDuration(d time.Duration) *opsv1.Duration { return opsv1.DurationOf(d) }
