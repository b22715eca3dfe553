// Package gitops holds tests of the files that other tools consume rather than Go code: the
// install manifests (config/default, dist/install.yaml) and samples against a real
// kube-apiserver, the Argo CD health check (config/argocd) in the Lua engine Argo CD embeds,
// and the Grafana dashboard (config/grafana) against the metrics the manager serves.
package gitops
