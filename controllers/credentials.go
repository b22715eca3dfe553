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

// CredentialsLabel marks a Secret that may be used as credentials by spec.credentialsSecretRef
// (value "true"). Without it, whoever may create OptimizationOperations in a namespace could
// make the operator use any key in it, such as another team's, and probe what Secrets hold.
const CredentialsLabel = "ops.routeopt.dev/credentials"

// credentials loads the identity for obj's calls. The key identifies the credentials (or the
// reason they could not be loaded) so a change to the Secret can be noticed without caching
// Secrets: the Secret is read through the uncached API reader, with "get" permission only.
//
// Messages about a Secret that did not opt in say nothing of what it holds, and a missing
// Secret reads the same as one that did not opt in, so they cannot be used to probe Secrets.
func (r *OptimizationOperationReconciler) credentials(ctx context.Context, obj *opsv1.OptimizationOperation) (creds remote.Credentials, key string, err error) {
	ref := obj.Spec.CredentialsSecretRef
	if ref == nil {
		return remote.Credentials{}, "adc", nil
	}
	if !r.Options.CredentialsFromSecrets {
		return refused(fmt.Errorf("this operator takes no credentials from Secrets (--credentials-from-secrets=false); " +
			"remove spec.credentialsSecretRef to use the operator's own identity (Workload Identity)"))
	}
	secretKey := ref.Key
	if secretKey == "" {
		secretKey = defaultSecretKey
	}
	notUsable := fmt.Errorf("secret %s/%s (spec.credentialsSecretRef) does not exist or has not opted in as credentials: "+
		"create it with the label %s=true", obj.Namespace, ref.Name, CredentialsLabel)
	var secret corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, &secret); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return refused(notUsable)
		case apierrors.IsForbidden(err):
			return refused(fmt.Errorf("the operator may not read secret %s/%s: %w", obj.Namespace, ref.Name, err))
		default:
			return remote.Credentials{}, "", fmt.Errorf("read secret %s/%s: %w", obj.Namespace, ref.Name, err)
		}
	}
	if secret.Labels[CredentialsLabel] != "true" {
		return refused(notUsable)
	}
	data, ok := secret.Data[secretKey]
	switch {
	case !ok:
		return refused(fmt.Errorf("secret %s/%s has no key %q (it has: %s); set spec.credentialsSecretRef.key",
			obj.Namespace, ref.Name, secretKey, strings.Join(slices.Sorted(maps.Keys(secret.Data)), ", ")))
	case len(data) == 0:
		return refused(fmt.Errorf("key %q of secret %s/%s is empty; put a service-account key file there",
			secretKey, obj.Namespace, ref.Name))
	}
	sum := sha256.Sum256(data)
	return remote.Credentials{JSON: data}, "json:" + hex.EncodeToString(sum[:]), nil
}

// refused reports credentials that cannot be used. Its key is derived from the reason, so a
// changed reason (the Secret was fixed in part) counts as a change and is acted on at once.
func refused(err error) (remote.Credentials, string, error) {
	sum := sha256.Sum256([]byte(err.Error()))
	return remote.Credentials{}, "invalid:" + hex.EncodeToString(sum[:8]), &policy.CredentialsError{Err: err}
}
