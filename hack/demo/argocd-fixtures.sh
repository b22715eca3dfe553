#!/usr/bin/env bash
# Captures the Argo CD health test fixtures (config/argocd/testdata/*.yaml) from real objects: the
# manager runs against the emulator and each resource is read with `kubectl get -o yaml` once it
# reached the state the fixture is named after. It also writes
#   config/argocd/health_test.yaml        the expected health of each fixture; its message is the
#                                         Ready condition's message of the captured object
#   config/argocd/testdata/columns.txt    `kubectl get optop NAME -o wide` of each fixture, read
#                                         with it (same resourceVersion), for the printer-column test
#   config/argocd/testdata/all-states.txt `kubectl get optop` and `kubectl get optop -o wide` at the
#                                         end, every state at once (docs/status.md), all but
#                                         request-rejected, whose name is 300 characters long
#
#   make demo-binaries envtest-assets
#   MANAGER_ARGS=--remote-unavailable-after=5s hack/demo.sh exec hack/demo/argocd-fixtures.sh
#
# Needs the environment of hack/demo.sh exec (KUBECONFIG, EMULATOR_URL, MANAGER_PID) and a manager
# started with --remote-unavailable-after=5s, as above. Takes about a minute.
#
# Problems that must still show at the end (refused credentials, an outage, a quota refusal) are
# faults of one project of the emulator each, so that they hold while the other resources, in
# demo-project, run normally.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-${ROOT}/config/argocd}"
: "${KUBECONFIG:?run through hack/demo.sh exec}" "${EMULATOR_URL:?run through hack/demo.sh exec}" "${MANAGER_PID:?needs a manager}"
mkdir -p "${OUT}/testdata"
NS=default
PROJECT=demo-project
COLUMNS_FILE="${OUT}/testdata/columns.txt"
ALL_FILE="${OUT}/testdata/all-states.txt"

say() { printf '==> %s\n' "$*"; }
die() { printf 'argocd-fixtures: %s\n' "$*" >&2; exit 1; }

# parent [PROJECT]: the parent of solves in PROJECT (default demo-project).
parent() { echo "projects/${1:-${PROJECT}}/locations/global"; }

# solve SECONDS [PROJECT]: starts an OptimizeToursLongRunning solve through the Google-facing API, prints its name.
solve() {
  curl -sSf -X POST "${EMULATOR_URL}/v1/$(parent "${2:-}"):optimizeToursLongRunning" \
    -H 'Content-Type: application/json' \
    -d "{\"timeout\":\"$1s\",\"model\":{\"shipments\":[{\"label\":\"parcel-1\",\"deliveries\":[{\"arrivalLocation\":{\"latitude\":48.8566,\"longitude\":2.3522}}]}],\"vehicles\":[{\"label\":\"van-1\",\"costPerKilometer\":1}]}}" |
    grep -o '"name": *"[^"]*"' | sed -n '1s/.*"\([^"]*\)"$/\1/p'
}

# admin PATH METHOD [JSON]: calls the emulator's admin API.
admin() {
  curl -sSf -X "$2" "${EMULATOR_URL}/emulator/v1/$1" -H 'Content-Type: application/json' ${3:+-d "$3"} >/dev/null
}

# Faults of one project each, kept until the end: entries of the "projects" object.
PROJECT_FAULTS=()
# faults [METHODS]: sets the emulator's faults: METHODS (JSON, default none) for every project,
# and the per-project faults of PROJECT_FAULTS.
faults() {
  local methods="${1:-}" IFS=,
  [[ -n "${methods}" ]] || methods='{}'
  admin faults PUT "{\"methods\":${methods},\"projects\":{${PROJECT_FAULTS[*]}}}"
}
# project_fault PROJECT METHOD FAULT: adds a fault of one project, e.g. down-project GetOperation '{"unavailable":1}'.
project_fault() {
  PROJECT_FAULTS+=("\"$1\":{\"$2\":$3}")
  faults
}

# create NAME SPEC_LINES: creates an OptimizationOperation (create, not apply, so the captured
# object carries no last-applied annotation).
create() {
  kubectl create -n "${NS}" -f - >/dev/null <<EOF
apiVersion: ops.routeopt.dev/v1alpha1
kind: OptimizationOperation
metadata:
  name: $1
spec:
$2
EOF
}

# track NAME OPERATION [SPEC LINES]: creates one that tracks OPERATION.
track() {
  local nl=$'\n'
  create "$1" "  operationName: $2${3:+${nl}$3}"
}

# inline_solve LABEL [PROJECT]: spec lines of an OptimizeToursLongRunning request with an inline model.
inline_solve() {
  cat <<EOF
  submit:
    parent: $(parent "${2:-}")
    optimizeToursLongRunning:
      inline:
        label: $1
        timeout: 600s
        model:
          shipments:
          - label: parcel-1
            deliveries:
            - arrivalLocation: {latitude: 48.8566, longitude: 2.3522}
          vehicles:
          - label: van-1
            costPerKilometer: 1
EOF
}

cancel() { kubectl patch -n "${NS}" optop "$1" --type merge -p '{"spec":{"cancel":true}}' >/dev/null; }

# jsonpath NAME PATH: a field of the object.
jsonpath() { kubectl get -n "${NS}" optop "$1" -o jsonpath="{$2}"; }

# await_field NAME PATH VALUE: waits until the field has VALUE.
await_field() {
  local deadline=$(($(date +%s) + 150))
  until [[ "$(jsonpath "$1" "$2")" == "$3" ]]; do
    (($(date +%s) < deadline)) || die "$1: $2 is '$(jsonpath "$1" "$2")' after 150s, want $3"
    sleep 0.2
  done
}

# await NAME TYPE REASON: waits until condition TYPE has REASON.
await() { await_field "$1" ".status.conditions[?(@.type==\"$2\")].reason" "$3"; }

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

TESTS=()
: >"${COLUMNS_FILE}.tmp"
# capture NAME FILE HEALTH [MESSAGE]: writes the object to testdata/FILE.yaml, its row of
# `kubectl get -o wide` to columns.txt, and records the expected health; the message defaults
# to the Ready condition's message. The row and the object are read until both come from the
# same resourceVersion; the times around the row's read date its AGE, START and COMPLETION.
capture() {
  local name="$1" file="$2" health="$3" msg="${4:-}"
  local rv before table after obj
  for _ in $(seq 20); do
    rv="$(jsonpath "${name}" .metadata.resourceVersion)"
    before="$(now)"
    table="$(kubectl get -n "${NS}" optop "${name}" -o wide)"
    after="$(now)"
    obj="$(kubectl get -n "${NS}" optop "${name}" -o yaml)"
    grep -qx "  resourceVersion: \"${rv}\"" <<<"${obj}" && break
    rv=""
  done
  [[ -n "${rv}" ]] || die "${name} kept changing while it was read"
  printf '%s\n' "${obj}" >"${OUT}/testdata/${file}.yaml"
  printf '# testdata/%s.yaml, read between %s and %s\n%s\n\n' "${file}" "${before}" "${after}" "${table}" >>"${COLUMNS_FILE}.tmp"
  if [[ -z "${msg}" ]]; then
    msg="$(jsonpath "${name}" '.status.conditions[?(@.type=="Ready")].message')"
  fi
  msg="${msg//\\/\\\\}"
  msg="${msg//\"/\\\"}"
  msg="${msg//$'\n'/\\n}"
  TESTS+=("- healthStatus:
    status: ${health}
    message: \"${msg}\"
  inputPath: testdata/${file}.yaml")
  say "captured ${file}.yaml (${health})"
}

# The emulator's cancel mode is the one hack/demo.sh started it with; this script needs supported.
admin config PUT '{"cancelMode":"supported","cancelDelay":"0s","requireToken":false}'
faults

track running "$(solve 600)"
await running Succeeded Running
capture running running Progressing

# A cancel that the server accepted but has not carried out yet.
admin config PUT '{"cancelDelay":"10m"}'
track cancelling "$(solve 600)"
await cancelling Succeeded Running
cancel cancelling
await cancelling Succeeded Cancelling
capture cancelling cancelling Progressing
admin config PUT '{"cancelDelay":"0s"}'

# A server that answers UNIMPLEMENTED to cancels.
admin config PUT '{"cancelMode":"unimplemented"}'
track cancel-unsupported "$(solve 600)"
await cancel-unsupported Succeeded Running
cancel cancel-unsupported
await cancel-unsupported Succeeded CancelUnsupported
capture cancel-unsupported cancel-unsupported Progressing
admin config PUT '{"cancelMode":"supported"}'

track succeeded "$(solve 2)"
await succeeded Succeeded Succeeded
capture succeeded succeeded Healthy

# The server accepts the cancel but the solve completes anyway.
admin config PUT '{"cancelMode":"ignored"}'
track despite "$(solve 5)"
await despite Succeeded Running
cancel despite
await despite Succeeded CompletedDespiteCancel
capture despite completed-despite-cancel Healthy
admin config PUT '{"cancelMode":"supported"}'

track cancelled "$(solve 600)"
await cancelled Succeeded Running
cancel cancelled
await cancelled Succeeded Cancelled
capture cancelled cancelled Healthy

# Cancelled by someone else, straight through the API.
op="$(solve 600)"
track cancelled-elsewhere "${op}"
await cancelled-elsewhere Succeeded Running
curl -sSf -X POST "${EMULATOR_URL}/v1/${op}:cancel" -H 'Content-Type: application/json' -d '{}' >/dev/null
await cancelled-elsewhere Succeeded Cancelled
capture cancelled-elsewhere cancelled-elsewhere Degraded

op="$(curl -sSf -X POST "${EMULATOR_URL}/emulator/v1/operations" -H 'Content-Type: application/json' \
  -d '{"duration":"2s","errorCode":3,"errorMessage":"model.shipments[0].deliveries[0]: arrival location is required"}' |
  grep -o '"name": *"[^"]*"' | sed -n '1s/.*"\([^"]*\)"$/\1/p')"
track failed "${op}"
await failed Succeeded Failed
capture failed failed Degraded

track not-found "$(parent)/operations/9999999999"
await not-found Succeeded NotFound
capture not-found not-found Degraded

# Credentials that cannot be loaded: the Secret does not exist.
track auth-failed-secret "$(solve 600)" "  credentialsSecretRef:
    name: missing-sa-key"
await auth-failed-secret Ready AuthFailed
capture auth-failed-secret auth-failed-secret Degraded

# A name the server refuses with INVALID_ARGUMENT (a segment longer than it accepts).
track request-rejected "operations/$(printf 'a%.0s' $(seq 300))"
await request-rejected Ready RequestRejected
capture request-rejected request-rejected Degraded

# The API refuses the caller in one project (a principal without the role there): read once,
# then every read of that project answers 403.
track auth-failed "$(solve 600 denied-project)"
await auth-failed Succeeded Running
project_fault denied-project GetOperation '{"permissionDenied":1}'
await auth-failed Ready AuthFailed
capture auth-failed auth-failed Degraded

# A long outage of one project: every read answers UNAVAILABLE (the manager runs with
# --remote-unavailable-after=5s).
track remote-unavailable "$(solve 600 down-project)"
await remote-unavailable Succeeded Running
project_fault down-project GetOperation '{"unavailable":1}'
await remote-unavailable Ready RemoteUnavailable
capture remote-unavailable remote-unavailable Degraded

# ---- spec.submit: the states before an operation name is known ----

# Started by the operator and running: status.submit records the attempt and the answer.
create submitted "$(inline_solve submitted)"
await submitted Succeeded Running
capture submitted submitted Progressing

# Cancelled before the request was sent: nothing is sent.
create not-submitted "$(inline_solve not-submitted)
  cancel: true"
await not-submitted Succeeded Cancelled
capture not-submitted not-submitted Healthy

# A model with an unknown field, found before anything is sent.
kubectl create -n "${NS}" configmap broken-model \
  --from-literal=request.json='{"lable": "typo", "model": {"vehicles": [{"label": "van-1"}]}}' >/dev/null
create invalid-request "  submit:
    parent: $(parent)
    optimizeToursLongRunning:
      configMapKeyRef:
        name: broken-model
        key: request.json"
await invalid-request Succeeded InvalidRequest
capture invalid-request invalid-request Degraded

# The emulator takes the request, starts the solve and never answers: the answer is lost when
# the manager's --request-timeout (15 s) passes.
faults '{"OptimizeToursLongRunning":{"hangNext":1}}'
create submit-uncertain "$(inline_solve submit-uncertain)"
await submit-uncertain Succeeded SubmitUncertain
capture submit-uncertain submit-uncertain Degraded
faults

# ---- The passing states, held for the picture of all states at once ----

track lagging "$(solve 600)"
await lagging Succeeded Running

# Refused with RESOURCE_EXHAUSTED, so nothing started: sent again after the back-off the
# answer asks for (10 minutes, so it still waits at the end).
project_fault quota-project OptimizeToursLongRunning '{"resourceExhausted":1,"retryDelay":"10m"}'
create submitting "$(inline_solve submitting quota-project)"
await_field submitting .status.submit.outcome NotStarted
await submitting Succeeded Submitting
capture submitting submitting Progressing

# Before the first successful read: reads of its project fail transiently. The manager is
# paused from here on, before the failures last --remote-unavailable-after.
project_fault pending-project GetOperation '{"unavailable":1}'
track pending "$(solve 600 pending-project)"
await pending Ready Pending
kill -STOP "${MANAGER_PID}"
trap 'kill -CONT "${MANAGER_PID}" 2>/dev/null || true' EXIT
capture pending pending Progressing

# The spec changed and the manager has not seen it yet.
cancel lagging
capture lagging generation-lagging Progressing "Waiting for the operator to observe generation 2 (status is for generation 1)"

# No status at all: created while the manager is paused.
track no-status "$(solve 600)"
capture no-status no-status Progressing "Waiting for the operator to report status"

# Its 300-character name would make the OPERATION column of the picture as wide; its own row
# is in columns.txt.
kubectl delete -n "${NS}" optop request-rejected >/dev/null
{
  echo '$ kubectl get optop'
  kubectl get -n "${NS}" optop
  echo '$ kubectl get optop -o wide'
  kubectl get -n "${NS}" optop -o wide
} >"${ALL_FILE}"
say "wrote ${ALL_FILE}"
kill -CONT "${MANAGER_PID}"

{
  echo "# kubectl get optop NAME -o wide of each fixture, read with it (the same resourceVersion)."
  echo "# internal/gitops checks every printer column of the CRD against the fixture and this row;"
  echo "# regenerate them all with hack/demo/argocd-fixtures.sh"
  echo
  cat "${COLUMNS_FILE}.tmp"
} >"${COLUMNS_FILE}"
rm -f "${COLUMNS_FILE}.tmp"
say "wrote ${COLUMNS_FILE}"

{
  echo "# Argo CD health tests of health.lua, in the layout of Argo CD's resource_customizations."
  echo "# Every input is a real object read with kubectl from the manager running against the emulator;"
  echo "# regenerate them all with hack/demo/argocd-fixtures.sh"
  echo "tests:"
  printf '%s\n' "${TESTS[@]}"
} >"${OUT}/health_test.yaml"
say "wrote ${OUT}/health_test.yaml (${#TESTS[@]} tests)"
