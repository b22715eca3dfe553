#!/usr/bin/env bash
# Local environment of the operator: a real kube-apiserver and etcd (built by `make envtest-assets`),
# the Route Optimization emulator and the manager, all on 127.0.0.1.
#
#   hack/demo.sh demo            start everything, walk through the product with kubectl, stop (make demo)
#   hack/demo.sh dev             start everything and keep it running until Ctrl-C (make dev)
#   hack/demo.sh exec CMD ARGS   start everything, run CMD with the environment exported, stop
#
# Needs bin/demo-env, bin/manager and bin/routeopt-emulator (the Makefile targets build them),
# kubectl and curl. Every process it starts is stopped on exit, also on Ctrl-C.
#
# Environment:
#   DEMO_DIR        directory for the kubeconfig and logs (default: a new temporary directory,
#                   removed on success and kept on failure)
#   EMULATOR_CANCEL_MODE  how the emulator answers CancelOperation: unimplemented (default, what
#                   Google's API answers today), supported, ignored or notfound. The demo sets
#                   the mode itself through the emulator's admin API before each cancel.
#   EMULATOR_ARGS   extra flags for bin/routeopt-emulator
#   MANAGER_ARGS    extra flags for bin/manager
#   START_MANAGER   0 to start no manager (dev: run your own with `make run`)
#
# CMD of `exec` sees KUBECONFIG, ROUTEOPTIMIZATION_EMULATOR_HOST, EMULATOR_URL, METRICS_URL,
# MANAGER_PID and DEMO_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
BIN="${BIN:-${ROOT}/bin}"
MODE="${1:-demo}"
[[ $# -gt 0 ]] && shift

case "${MODE}" in
  demo | dev) ;;
  exec)
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || { echo "usage: hack/demo.sh exec CMD [ARGS...]" >&2; exit 2; }
    ;;
  *)
    echo "usage: hack/demo.sh demo | dev | exec CMD [ARGS...]" >&2
    exit 2
    ;;
esac

if [[ "${MODE}" == demo && "${START_MANAGER:-1}" == 0 ]]; then
  echo "hack/demo.sh: START_MANAGER=0 is for dev and exec; the demo needs its manager" >&2
  exit 2
fi

for b in demo-env manager routeopt-emulator; do
  [[ -x "${BIN}/${b}" ]] || { echo "hack/demo.sh: ${BIN}/${b} is missing; run it through make (make demo, make dev)" >&2; exit 1; }
done
command -v kubectl >/dev/null || { echo "hack/demo.sh: kubectl is not on PATH" >&2; exit 1; }
command -v curl >/dev/null || { echo "hack/demo.sh: curl is not on PATH" >&2; exit 1; }

if [[ -t 1 ]]; then
  BOLD=$'\033[1m' DIM=$'\033[2m' GREEN=$'\033[32m' RED=$'\033[31m' RESET=$'\033[0m'
else
  BOLD="" DIM="" GREEN="" RED="" RESET=""
fi

START=$(date +%s)
OWN_DIR=0
if [[ -z "${DEMO_DIR:-}" ]]; then
  DEMO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/routeopt-demo.XXXXXX")"
  OWN_DIR=1
fi
mkdir -p "${DEMO_DIR}"
export KUBECONFIG="${DEMO_DIR}/kubeconfig"
rm -f "${KUBECONFIG}"

CP_PID="" EMU_PID="" MGR_PID=""

log() { printf '%s%s%s\n' "${DIM}" "$*" "${RESET}"; }
fail() { printf '%shack/demo.sh: %s%s\n' "${RED}" "$*" "${RESET}" >&2; exit 1; }

# stop PID NAME: SIGTERM, then SIGKILL after 30 s.
stop() {
  local pid="$1" name="$2"
  [[ -n "${pid}" ]] || return 0
  kill -0 "${pid}" 2>/dev/null || { wait "${pid}" 2>/dev/null; return 0; }
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 300); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${pid}" 2>/dev/null; then
    echo "hack/demo.sh: ${name} (pid ${pid}) did not stop in 30s; killing it" >&2
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  wait "${pid}" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  stop "${MGR_PID}" manager
  stop "${EMU_PID}" emulator
  stop "${CP_PID}" "control plane"
  if [[ ${rc} -ne 0 && ${INTERRUPTED} -eq 0 ]]; then
    for f in controlplane emulator manager; do
      if [[ -s "${DEMO_DIR}/${f}.log" ]]; then
        printf '\n---- last lines of %s ----\n' "${DEMO_DIR}/${f}.log" >&2
        tail -n 15 "${DEMO_DIR}/${f}.log" >&2
      fi
    done
    echo "hack/demo.sh: exit status ${rc}; logs kept in ${DEMO_DIR}" >&2
  elif [[ ${OWN_DIR} -eq 1 ]]; then
    rm -rf "${DEMO_DIR}"
  fi
  [[ ${INTERRUPTED} -eq 0 ]] || log "Stopped."
  exit "${rc}"
}
# Ctrl-C ends `dev` normally; it interrupts `demo` and `exec`. Either way everything stops.
INTERRUPTED=0
interrupted() {
  INTERRUPTED=1
  echo
  log "Stopping ..."
  if [[ "${MODE}" == dev ]]; then exit 0; fi
  exit "$1"
}
trap cleanup EXIT
trap 'interrupted 130' INT
trap 'interrupted 143' TERM
trap 'interrupted 129' HUP

# wait_until SECONDS WHAT PID CMD...: run CMD until it succeeds; fail when PID exits or time is up.
wait_until() {
  local timeout="$1" what="$2" pid="$3"
  shift 3
  local deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "${pid}" ]] && ! kill -0 "${pid}" 2>/dev/null; then
      fail "${what}: the process exited"
    fi
    if (($(date +%s) >= deadline)); then
      # What the resources said when the wait gave up, for the report.
      kubectl get optop -o yaml >"${DEMO_DIR}/optop.yaml" 2>&1 || true
      fail "${what}: not ready after ${timeout}s (resources saved in ${DEMO_DIR}/optop.yaml)"
    fi
    sleep 0.2
  done
}

# ---- Start the environment ----

read -r EMU_PORT PROBE_PORT METRICS_PORT <<<"$("${BIN}/demo-env" freeport 3 | tr '\n' ' ')"

log "Starting kube-apiserver and etcd ..."
"${BIN}/demo-env" controlplane --kubeconfig "${KUBECONFIG}" >"${DEMO_DIR}/controlplane.log" 2>&1 &
CP_PID=$!

EMULATOR_CANCEL_MODE="${EMULATOR_CANCEL_MODE:-unimplemented}"
log "Starting the Route Optimization emulator on 127.0.0.1:${EMU_PORT} (cancel mode ${EMULATOR_CANCEL_MODE}) ..."
# shellcheck disable=SC2086 # EMULATOR_ARGS is a list of flags
"${BIN}/routeopt-emulator" --listen "127.0.0.1:${EMU_PORT}" --cancel-mode "${EMULATOR_CANCEL_MODE}" ${EMULATOR_ARGS:-} \
  >"${DEMO_DIR}/emulator.log" 2>&1 &
EMU_PID=$!
export ROUTEOPTIMIZATION_EMULATOR_HOST="127.0.0.1:${EMU_PORT}"
export EMULATOR_URL="http://${ROUTEOPTIMIZATION_EMULATOR_HOST}"
wait_until 30 "emulator" "${EMU_PID}" curl -sf "${EMULATOR_URL}/emulator/v1/config"

wait_until 180 "control plane" "${CP_PID}" grep -qx ready "${DEMO_DIR}/controlplane.log"
log "$(grep '^control plane ready' "${DEMO_DIR}/controlplane.log")"

export METRICS_URL=""
if [[ "${START_MANAGER:-1}" != 0 ]]; then
  log "Starting the manager ..."
  export METRICS_URL="http://127.0.0.1:${METRICS_PORT}/metrics"
  # shellcheck disable=SC2086 # MANAGER_ARGS is a list of flags
  "${BIN}/manager" \
    --metrics-bind-address="127.0.0.1:${METRICS_PORT}" --metrics-secure=false \
    --health-probe-bind-address="127.0.0.1:${PROBE_PORT}" ${MANAGER_ARGS:-} \
    >"${DEMO_DIR}/manager.log" 2>&1 &
  MGR_PID=$!
  wait_until 60 "manager" "${MGR_PID}" curl -sf "http://127.0.0.1:${PROBE_PORT}/readyz"
fi
export MANAGER_PID="${MGR_PID}" DEMO_DIR
log "Environment ready in $(($(date +%s) - START))s."

# ---- Modes ----

if [[ "${MODE}" == exec ]]; then
  set +e
  "$@"
  rc=$?
  set -e
  exit "${rc}"
fi

if [[ "${MODE}" == dev ]]; then
  cat <<EOF

${BOLD}The environment is running. In another shell:${RESET}

  export KUBECONFIG=${KUBECONFIG}
  export ROUTEOPTIMIZATION_EMULATOR_HOST=${ROUTEOPTIMIZATION_EMULATOR_HOST}

  kubectl get optop -o wide
  curl -s ${EMULATOR_URL}/emulator/v1/operations         # the emulator's admin API

Emulator:  ${EMULATOR_URL} (Google REST surface under /v1/, admin API under /emulator/v1/)
           cancel mode ${EMULATOR_CANCEL_MODE}; change it with
           curl -X PUT ${EMULATOR_URL}/emulator/v1/config -d '{"cancelMode":"supported"}'
EOF
  if [[ -n "${MGR_PID}" ]]; then
    cat <<EOF
Manager:   pid ${MGR_PID}, metrics ${METRICS_URL}, probes http://127.0.0.1:${PROBE_PORT}/readyz
EOF
  else
    cat <<EOF
Manager:   not started (START_MANAGER=0); run yours with the two exports above, e.g. make run
EOF
  fi
  cat <<EOF
Logs:      ${DEMO_DIR}/{controlplane,emulator,manager}.log

Press Ctrl-C to stop everything.
EOF
  while true; do
    for p in "${CP_PID}:control plane" "${EMU_PID}:emulator" "${MGR_PID}:manager"; do
      pid="${p%%:*}"
      [[ -z "${pid}" ]] || kill -0 "${pid}" 2>/dev/null || fail "${p#*:} exited"
    done
    sleep 1 &
    wait $! || true
  done
fi

# ---- The walkthrough (demo) ----

step() { printf '\n%s==> %s%s\n' "${BOLD}" "$*" "${RESET}"; }
# run 'COMMAND': print the command, then run it through the shell.
run() {
  printf '%s$ %s%s\n' "${GREEN}" "$1" "${RESET}"
  eval "$1"
}
# state NAME: the reason of the Ready condition (the STATE column).
state() {
  kubectl get optop "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'
}
# state_is NAME WANT: whether the STATE column of NAME reads WANT now (re-read on every call).
state_is() { test "$(state "$1")" = "$2"; }
wait_state() {
  local name="$1" want="$2"
  wait_until 60 "optop/${name} to reach ${want}" "${MGR_PID}" state_is "${name}" "${want}"
}
# cancel_outcome NAME: the server's answer to the cancel (status.cancel.outcome).
cancel_outcome() { kubectl get optop "$1" -o jsonpath='{.status.cancel.outcome}'; }

cat >"${DEMO_DIR}/short-solve.json" <<'JSON'
{
  "timeout": "5s",
  "model": {
    "shipments": [
      {"label": "parcel-1", "deliveries": [{"arrivalLocation": {"latitude": 48.8566, "longitude": 2.3522}, "duration": "300s"}]},
      {"label": "parcel-2", "deliveries": [{"arrivalLocation": {"latitude": 48.8606, "longitude": 2.3376}, "duration": "180s"}]}
    ],
    "vehicles": [
      {"label": "van-1", "startLocation": {"latitude": 48.8530, "longitude": 2.3499}, "costPerKilometer": 1.5}
    ]
  }
}
JSON
sed 's/"timeout": "5s"/"timeout": "15s"/' "${DEMO_DIR}/short-solve.json" >"${DEMO_DIR}/mid-solve.json"
sed 's/"timeout": "5s"/"timeout": "600s"/' "${DEMO_DIR}/short-solve.json" >"${DEMO_DIR}/long-solve.json"

create_url="${EMULATOR_URL}/v1/projects/demo-project/locations/global:optimizeToursLongRunning"
config_url="${EMULATOR_URL}/emulator/v1/config"
# operation_name FILE: the "name" of the Operation JSON in FILE.
operation_name() {
  grep -o '"name": *"[^"]*"' "$1" | sed -n '1s/.*"\([^"]*\)"$/\1/p'
}

step "1. Start three solves through the Google-facing API (here the emulator): of 5 s, 15 s and 10 min"
run "cat ${DEMO_DIR}/short-solve.json"
run "curl -sS -X POST ${create_url} -H 'Content-Type: application/json' -d @${DEMO_DIR}/short-solve.json | tee ${DEMO_DIR}/short-op.json"
run "curl -sS -X POST ${create_url} -H 'Content-Type: application/json' -d @${DEMO_DIR}/mid-solve.json | tee ${DEMO_DIR}/mid-op.json"
run "curl -sS -X POST ${create_url} -H 'Content-Type: application/json' -d @${DEMO_DIR}/long-solve.json | tee ${DEMO_DIR}/long-op.json"
SHORT_OP="$(operation_name "${DEMO_DIR}/short-op.json")"
MID_OP="$(operation_name "${DEMO_DIR}/mid-op.json")"
LONG_OP="$(operation_name "${DEMO_DIR}/long-op.json")"
[[ -n "${SHORT_OP}" && -n "${MID_OP}" && -n "${LONG_OP}" ]] || fail "the emulator returned no operation names"

step "2. Track the 5 s and the 10 min solves with OptimizationOperation resources (from config/samples/)"
run "sed 's|operationName: .*|operationName: ${SHORT_OP}|' config/samples/ops_v1alpha1_optimizationoperation.yaml | kubectl apply -f -"
run "sed 's|operationName: .*|operationName: ${LONG_OP}|' config/samples/ops_v1alpha1_optimizationoperation_deletionpolicy.yaml | kubectl apply -f -"
wait_state nightly-routes Running
wait_state weekly-plan Running

step "3. Track the 15 s solve with cancel: true, against a server that answers cancels UNIMPLEMENTED as Google's API does today"
run "curl -sS -X PUT ${config_url} -d '{\"cancelMode\":\"unimplemented\"}' | grep cancelMode"
run "sed 's|operationName: .*|operationName: ${MID_OP}|' config/samples/ops_v1alpha1_optimizationoperation_cancel.yaml | kubectl apply -f -"
run "kubectl wait optop/abandoned-plan --for=jsonpath='{.status.cancel.outcome}'=Unsupported --timeout=60s"
printf '%s# The server did not take the cancel: the solve keeps running, and the operator keeps tracking it:%s\n' "${DIM}" "${RESET}"
run "kubectl get optop abandoned-plan -o wide"

step "4. Start a solve from Git: the model in a ConfigMap whose name kustomize derives from its content, the request in spec.submit"
run "kubectl kustomize config/samples/configmap-model | sed -n '/^kind: OptimizationOperation/,\$p'"
run "kubectl apply -k config/samples/configmap-model"
wait_state morning-routes Running
printf '%s# The operator recorded the attempt before it sent the request, then the answer:%s\n' "${DIM}" "${RESET}"
run "kubectl get optop morning-routes -o jsonpath='{.status.submit}{\"\\n\"}'"

step "5. All four side by side: three track solves started through the API, one started its own (OPERATION is status.operationName in both)"
run "kubectl get optop -o wide"

step "6. Cancel the long one against a server that takes cancels: spec.cancel is a one-way latch"
run "curl -sS -X PUT ${config_url} -d '{\"cancelMode\":\"supported\"}' | grep cancelMode"
run "kubectl patch optop weekly-plan --type merge -p '{\"spec\":{\"cancel\":true}}'"
run "kubectl wait optop/weekly-plan --for=jsonpath='{.status.done}'=true --timeout=60s"
printf '%s# Setting it back is refused by the API server:%s\n' "${DIM}" "${RESET}"
run "kubectl patch optop weekly-plan --type merge -p '{\"spec\":{\"cancel\":false}}' || true"

step "7. The others run to their end, the one whose cancel was refused too (status.done turns true on success and on failure alike)"
run "kubectl wait optop --all --for=jsonpath='{.status.done}'=true --timeout=60s"

step "8. What happened, as events"
run "kubectl events --for optop/abandoned-plan"
run "kubectl events --for optop/weekly-plan"

step "9. A few of the operator's metrics"
run "curl -s ${METRICS_URL} | grep -E '^routeopt_(operations|remote_requests_total|submits_total|cancel_latency_seconds_count)' | grep -v ' 0\$'"

[[ "$(state nightly-routes)" == Succeeded ]] || fail "nightly-routes ended $(state nightly-routes), want Succeeded"
[[ "$(state morning-routes)" == Succeeded ]] || fail "morning-routes ended $(state morning-routes), want Succeeded"
[[ "$(state weekly-plan)" == Cancelled ]] || fail "weekly-plan ended $(state weekly-plan), want Cancelled"
[[ "$(cancel_outcome abandoned-plan)" == Unsupported ]] ||
  fail "the cancel of abandoned-plan was answered '$(cancel_outcome abandoned-plan)', want Unsupported"
[[ "$(state abandoned-plan)" == CompletedDespiteCancel ]] ||
  fail "abandoned-plan ended $(state abandoned-plan), want CompletedDespiteCancel"

step "10. Final state (the demo took $(($(date +%s) - START))s)"
run "kubectl get optop -o wide"
