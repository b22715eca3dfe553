package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountToken mints a token for the ServiceAccount namespace/name with the TokenRequest
// API, as the kubelet does for a pod that runs as that account. admin must be allowed to create
// serviceaccounts/token.
func ServiceAccountToken(ctx context.Context, admin *rest.Config, namespace, name string, ttl time.Duration) (string, error) {
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return "", err
	}
	seconds := int64(ttl / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes to path a kubeconfig for the API server of admin that
// authenticates with a fresh token of the ServiceAccount namespace/name: a process that uses it
// has that account's permissions and nothing else, like a pod running as the account.
func ServiceAccountKubeconfig(ctx context.Context, admin *rest.Config, namespace, name string, ttl time.Duration, path string) error {
	token, err := ServiceAccountToken(ctx, admin, namespace, name, ttl)
	if err != nil {
		return err
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   admin.Host,
		CertificateAuthorityData: admin.CAData,
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "test"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("testenv: rendering kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
