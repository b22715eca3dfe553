#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd) from Go modules into
#   bin/k8s/<KUBERNETES_VERSION>-<GOOS>-<GOARCH>/
# and prints that directory on stdout (progress goes to stderr). Point KUBEBUILDER_ASSETS at it.
# A binary that is already there and reports the pinned version is not rebuilt, so this is cheap
# to run before every test run. The first build of kube-apiserver takes several minutes.
#
# Options:
#   --print-dir   only print the directory; build nothing
#   --check       exit 1 unless both binaries are present with the pinned versions
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HACK_DIR}/.." && pwd)"
# shellcheck source=versions.env
source "${HACK_DIR}/versions.env"

GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
ASSETS_DIR="${REPO_ROOT}/bin/k8s/${KUBERNETES_VERSION}-${GOOS}-${GOARCH}"

log() { printf '[envtest-assets] %s\n' "$*" >&2; }

apiserver_ok() {
  [[ -x "${ASSETS_DIR}/kube-apiserver" ]] &&
    [[ "$("${ASSETS_DIR}/kube-apiserver" --version 2>/dev/null)" == "Kubernetes v${KUBERNETES_VERSION}" ]]
}

etcd_ok() {
  local out
  [[ -x "${ASSETS_DIR}/etcd" ]] && out="$("${ASSETS_DIR}/etcd" --version 2>/dev/null)" &&
    [[ "${out}" == "etcd Version: ${ETCD_VERSION}"$'\n'* ]]
}

# require_pin <module dir> <module path> <want version>: the wrapper go.mod must match versions.env.
require_pin() {
  local dir="$1" mod="$2" want="$3" got
  got="$(cd "${dir}" && go list -mod=readonly -m -f '{{.Version}}' "${mod}")"
  if [[ "${got}" != "${want}" ]]; then
    echo "${dir#"${REPO_ROOT}"/}/go.mod pins ${mod} ${got}, hack/versions.env says ${want}." >&2
    echo "Run 'make update-modules' and commit the result." >&2
    exit 1
  fi
}

# elapsed <start seconds>
elapsed() { echo "$(($(date +%s) - $1))s"; }

build_apiserver() {
  local dir="${HACK_DIR}/controlplane/kube-apiserver" start
  require_pin "${dir}" k8s.io/kubernetes "v${KUBERNETES_VERSION}"
  local minor="${KUBERNETES_VERSION#*.}"
  minor="${minor%%.*}"
  local pkg="k8s.io/component-base/version"
  local ldflags="-X ${pkg}.gitVersion=v${KUBERNETES_VERSION}"
  ldflags+=" -X ${pkg}.gitMajor=${KUBERNETES_VERSION%%.*} -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean"
  log "building kube-apiserver v${KUBERNETES_VERSION} (takes several minutes on a cold build cache)"
  start="$(date +%s)"
  (cd "${dir}" && go build -mod=readonly -buildvcs=false -ldflags "${ldflags}" \
    -o "${ASSETS_DIR}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "${ASSETS_DIR}/kube-apiserver.tmp" "${ASSETS_DIR}/kube-apiserver"
  log "built kube-apiserver in $(elapsed "${start}"): $("${ASSETS_DIR}/kube-apiserver" --version)"
}

build_etcd() {
  local dir="${HACK_DIR}/controlplane/etcd" start
  require_pin "${dir}" go.etcd.io/etcd/server/v3 "v${ETCD_VERSION}"
  log "building etcd v${ETCD_VERSION}"
  start="$(date +%s)"
  (cd "${dir}" && go build -mod=readonly -buildvcs=false -o "${ASSETS_DIR}/etcd.tmp" .)
  mv -f "${ASSETS_DIR}/etcd.tmp" "${ASSETS_DIR}/etcd"
  local version
  version="$("${ASSETS_DIR}/etcd" --version)"
  log "built etcd in $(elapsed "${start}"): ${version%%$'\n'*}"
}

case "${1:-}" in
  --print-dir)
    echo "${ASSETS_DIR}"
    exit 0
    ;;
  --check)
    apiserver_ok && etcd_ok && exit 0
    echo "test control plane missing or outdated in ${ASSETS_DIR}; run 'make envtest-assets'" >&2
    exit 1
    ;;
  "") ;;
  *)
    echo "usage: $0 [--print-dir|--check]" >&2
    exit 2
    ;;
esac

mkdir -p "${ASSETS_DIR}"
# Serialise concurrent runs (two `make test` at once would otherwise both build).
if command -v flock >/dev/null 2>&1; then
  exec 9>"${ASSETS_DIR}/.lock"
  flock 9
fi

if apiserver_ok; then
  log "kube-apiserver v${KUBERNETES_VERSION} already built"
else
  build_apiserver
fi
if etcd_ok; then
  log "etcd v${ETCD_VERSION} already built"
else
  build_etcd
fi
echo "${ASSETS_DIR}"
