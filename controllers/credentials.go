package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/remote"
)

const defaultSecretKey = "key.json"

// credentials loads the identity for obj's calls. The key identifies the credentials (or the
// reason they could not be loaded) so a change to the Secret can be noticed without caching
// Secrets: the Secret is read through the uncached API reader, with "get" permission only.
func (r *OptimizationOperationReconciler) credentials(ctx context.Context, obj *opsv1.OptimizationOperation) (creds remote.Credentials, key string, err error) {
	ref := obj.Spec.CredentialsSecretRef
	if ref == nil {
		return remote.Credentials{}, "adc", nil
	}
	secretKey := ref.Key
	if secretKey == "" {
		secretKey = defaultSecretKey
	}
	var secret corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, &secret); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			err = fmt.Errorf("secret %s/%s (spec.credentialsSecretRef) does not exist", obj.Namespace, ref.Name)
		case apierrors.IsForbidden(err):
			err = fmt.Errorf("the operator may not read secret %s/%s: %w", obj.Namespace, ref.Name, err)
		default:
			return remote.Credentials{}, "", fmt.Errorf("read secret %s/%s: %w", obj.Namespace, ref.Name, err)
		}
		return remote.Credentials{}, invalidKey(err), &policy.CredentialsError{Err: err}
	}
	data, ok := secret.Data[secretKey]
	if !ok || len(data) == 0 {
		err := fmt.Errorf("secret %s/%s has no key %q (it has: %s); set spec.credentialsSecretRef.key",
			obj.Namespace, ref.Name, secretKey, strings.Join(slices.Sorted(maps.Keys(secret.Data)), ", "))
		return remote.Credentials{}, invalidKey(err), &policy.CredentialsError{Err: err}
	}
	sum := sha256.Sum256(data)
	return remote.Credentials{JSON: data}, "json:" + hex.EncodeToString(sum[:]), nil
}

func invalidKey(err error) string {
	sum := sha256.Sum256([]byte(err.Error()))
	return "invalid:" + hex.EncodeToString(sum[:8])
}
