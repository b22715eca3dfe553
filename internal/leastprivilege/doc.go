// Package leastprivilege holds tests that run the manager binary, built from ./cmd, with the
// identity and the permissions an installation gives it, against a real kube-apiserver: the
// ServiceAccount token is minted with the TokenRequest API, the arguments are the Deployment's
// own, and the RBAC objects are those of dist/install.yaml and of the kustomize components in
// config/components and config/overlays.
//
// The tests prove both halves of least privilege. With every permission the operator works
// end to end (status, cancel, a key from a Secret, events, the leader-election Lease, the
// metrics endpoint). With any single permission taken away, one rule and one verb at a time,
// something visible breaks; a permission whose removal breaks nothing fails the test, because
// it is not needed. docs/rbac.md lists what breaks for each one.
package leastprivilege
