// Package slimcache holds the transform the manager's cache applies to every object it
// stores. The cache keeps every OptimizationOperation for as long as the operator runs, so what
// each copy costs is multiplied by the number of resources: at 10,000 the difference between a
// lean and a careless copy is tens of MiB (docs/performance.md).
package slimcache

import (
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// Transform drops what the operator never reads: managed fields and kubectl's last-applied copy
// of the object are most of a small resource's size. In an OptimizationOperation it also keeps
// one copy of the strings every object repeats (condition types, reasons and statuses, the
// metadata type, the namespace), and lets conditions with the same message share it: the JSON
// decoder allocates each of them anew for every object. Shared strings are safe: Go strings
// are immutable, and the cache's objects are read-only.
func Transform(in any) (any, error) {
	if obj, ok := in.(metav1.Object); ok {
		obj.SetManagedFields(nil)
		if a := obj.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			obj.SetAnnotations(a)
		}
	}
	if op, ok := in.(*opsv1.OptimizationOperation); ok {
		share(op)
	}
	return in, nil
}

func share(op *opsv1.OptimizationOperation) {
	op.Namespace = intern(op.Namespace)
	st := &op.Status
	st.MetadataType = intern(st.MetadataType)
	if st.Error != nil {
		st.Error.Status = intern(st.Error.Status)
	}
	if st.Result != nil {
		st.Result.Type = intern(st.Result.Type)
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason = intern(c.Type), intern(c.Reason)
		c.Status = metav1.ConditionStatus(intern(string(c.Status)))
		for j := range i {
			if st.Conditions[j].Message == c.Message {
				c.Message = st.Conditions[j].Message
				break
			}
		}
	}
}

// intern returns the canonical copy of s. The unique package holds it only while something
// refers to it, so values that stop recurring cost nothing.
func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}
