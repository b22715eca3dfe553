package slimcache

import (
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// decoded builds an object as the JSON decoder would: every string its own allocation.
func decoded(msg string) *opsv1.OptimizationOperation {
	fresh := func(s string) string { return string([]byte(s)) }
	return &opsv1.OptimizationOperation{
		ObjectMeta: metav1.ObjectMeta{
			Name: "a", Namespace: fresh("team-a"),
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "keep": "me"},
		},
		Status: opsv1.OptimizationOperationStatus{
			MetadataType: fresh("type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursLongRunningMetadata"),
			Conditions: []metav1.Condition{
				{Type: fresh("Succeeded"), Status: metav1.ConditionStatus(fresh("Unknown")), Reason: fresh("Running"), Message: fresh(msg)},
				{Type: fresh("Ready"), Status: metav1.ConditionStatus(fresh("True")), Reason: fresh("Running"), Message: fresh(msg)},
				{Type: fresh("Stalled"), Status: metav1.ConditionStatus(fresh("False")), Reason: fresh("Running"), Message: fresh("other")},
			},
		},
	}
}

func data(s string) *byte { return unsafe.StringData(s) }

func TestTransform(t *testing.T) {
	a, b := decoded("Operation x is running"), decoded("Operation x is running")
	want := decoded("Operation x is running")
	want.ManagedFields = nil
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)
	for _, o := range []*opsv1.OptimizationOperation{a, b} {
		if _, err := Transform(o); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(o, want) {
			t.Fatalf("the transform changed a value:\n got %+v\nwant %+v", o, want)
		}
	}
	shared := map[string][2]string{
		"namespace":        {a.Namespace, b.Namespace},
		"metadata type":    {a.Status.MetadataType, b.Status.MetadataType},
		"condition type":   {a.Status.Conditions[0].Type, b.Status.Conditions[0].Type},
		"condition reason": {a.Status.Conditions[1].Reason, b.Status.Conditions[2].Reason},
		"condition status": {string(a.Status.Conditions[1].Status), string(b.Status.Conditions[1].Status)},
		"repeated message": {a.Status.Conditions[0].Message, a.Status.Conditions[1].Message},
	}
	for what, s := range shared {
		if data(s[0]) != data(s[1]) {
			t.Errorf("%s: two copies of %q", what, s[0])
		}
	}
	if data(a.Status.Conditions[2].Message) == data(a.Status.Conditions[0].Message) {
		t.Error("different messages share memory")
	}
}

func TestTransformLeavesOtherObjects(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	if _, err := Transform(s); err != nil || s.ManagedFields != nil {
		t.Errorf("managed fields kept (%v)", err)
	}
}
