#!/usr/bin/env bash
# Captures the Argo CD health test fixtures (config/argocd/testdata/*.yaml) from real objects: the
# manager runs against the emulator and each resource is read with `kubectl get -o yaml` once it
# reached the state the fixture is named after. It also writes config/argocd/health_test.yaml,
# whose expected message is the Ready condition's message of each captured object.
#
#   make demo    # once, builds bin/ (or: make dev)
#   MANAGER_ARGS=--remote-unavailable-after=5s hack/demo.sh exec hack/demo/argocd-fixtures.sh
#
# Needs the environment of hack/demo.sh exec (KUBECONFIG, EMULATOR_URL, MANAGER_PID) and a manager
# started with --remote-unavailable-after=5s, as above. Takes about two and a half minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-${ROOT}/config/argocd}"
: "${KUBECONFIG:?run through hack/demo.sh exec}" "${EMULATOR_URL:?run through hack/demo.sh exec}" "${MANAGER_PID:?needs a manager}"
mkdir -p "${OUT}/testdata"
NS=default
PROJECT_PARENT="projects/demo-project/locations/global"

say() { printf '==> %s\n' "$*"; }
die() { printf 'argocd-fixtures: %s\n' "$*" >&2; exit 1; }

# solve SECONDS: starts an OptimizeToursLongRunning solve through the Google-facing API, prints its name.
solve() {
  curl -sSf -X POST "${EMULATOR_URL}/v1/${PROJECT_PARENT}:optimizeToursLongRunning" \
    -H 'Content-Type: application/json' \
    -d "{\"timeout\":\"$1s\",\"model\":{\"shipments\":[{\"label\":\"parcel-1\",\"deliveries\":[{\"arrivalLocation\":{\"latitude\":48.8566,\"longitude\":2.3522}}]}],\"vehicles\":[{\"label\":\"van-1\",\"costPerKilometer\":1}]}}" |
    grep -o '"name": *"[^"]*"' | sed -n '1s/.*"\([^"]*\)"$/\1/p'
}

# admin PATH METHOD [JSON]: calls the emulator's admin API.
admin() {
  curl -sSf -X "$2" "${EMULATOR_URL}/emulator/v1/$1" -H 'Content-Type: application/json' ${3:+-d "$3"} >/dev/null
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

# inline_solve LABEL: spec lines of an OptimizeToursLongRunning request with an inline model.
inline_solve() {
  cat <<EOF
  submit:
    parent: ${PROJECT_PARENT}
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

TESTS=()
# capture NAME FILE HEALTH [MESSAGE]: writes the object to testdata/FILE.yaml and records the
# expected health; the message defaults to the Ready condition's message.
capture() {
  local name="$1" file="$2" health="$3" msg="${4:-}"
  kubectl get -n "${NS}" optop "${name}" -o yaml >"${OUT}/testdata/${file}.yaml"
  if [[ -z "${msg}" ]]; then
    msg="$(kubectl get -n "${NS}" optop "${name}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
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

# Before the first successful read: the first GET fails transiently.
admin faults PUT '{"methods":{"GetOperation":{"unavailable":1}}}'
track pending "$(solve 600)"
await pending Succeeded Pending
capture pending pending Progressing
admin faults PUT '{}'

# No status at all: the manager is paused while the object is created.
kill -STOP "${MANAGER_PID}"
track no-status "$(solve 600)"
capture no-status no-status Progressing "Waiting for the operator to report status"
kill -CONT "${MANAGER_PID}"

track running "$(solve 600)"
await running Succeeded Running
capture running running Progressing

# The spec changed and the manager has not seen it yet (it is paused while cancel is set).
track lagging "$(solve 600)"
await lagging Succeeded Running
kill -STOP "${MANAGER_PID}"
cancel lagging
capture lagging generation-lagging Progressing "Waiting for the operator to observe generation 2 (status is for generation 1)"
kill -CONT "${MANAGER_PID}"

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

track not-found "${PROJECT_PARENT}/operations/9999999999"
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

# The API refuses the caller: every call now needs a bearer token, and the manager (talking to
# the emulator) sends none.
track auth-failed "$(solve 600)"
await auth-failed Succeeded Running
admin config PUT '{"requireToken":true}'
await auth-failed Ready AuthFailed
capture auth-failed auth-failed Degraded
admin config PUT '{"requireToken":false}'

# A long outage: every read fails with UNAVAILABLE (the manager runs with --remote-unavailable-after=5s).
track remote-unavailable "$(solve 600)"
await remote-unavailable Succeeded Running
admin faults PUT '{"methods":{"GetOperation":{"unavailable":1}}}'
await remote-unavailable Ready RemoteUnavailable
capture remote-unavailable remote-unavailable Degraded
admin faults PUT '{}'

# ---- spec.submit: the states before an operation name is known ----

# Started by the operator and running: status.submit records the attempt and the answer.
create submitted "$(inline_solve submitted)"
await submitted Succeeded Running
capture submitted submitted Progressing

# Refused with RESOURCE_EXHAUSTED, so nothing started: sent again after the back-off.
admin faults PUT '{"methods":{"OptimizeToursLongRunning":{"resourceExhausted":1,"retryDelay":"2s"}}}'
create submitting "$(inline_solve submitting)"
await_field submitting .status.submit.outcome NotStarted
await submitting Succeeded Submitting
capture submitting submitting Progressing
admin faults PUT '{}'

# Cancelled before the request was sent: nothing is sent.
create not-submitted "$(inline_solve not-submitted)
  cancel: true"
await not-submitted Succeeded Cancelled
capture not-submitted not-submitted Healthy

# A model with an unknown field, found before anything is sent.
kubectl create -n "${NS}" configmap broken-model \
  --from-literal=request.json='{"lable": "typo", "model": {"vehicles": [{"label": "van-1"}]}}' >/dev/null
create invalid-request "  submit:
    parent: ${PROJECT_PARENT}
    optimizeToursLongRunning:
      configMapKeyRef:
        name: broken-model
        key: request.json"
await invalid-request Succeeded InvalidRequest
capture invalid-request invalid-request Degraded

# The emulator takes the request, starts the solve and never answers: the answer is lost when
# the manager's --request-timeout (15 s) passes.
admin faults PUT '{"methods":{"OptimizeToursLongRunning":{"hangNext":1}}}'
create submit-uncertain "$(inline_solve submit-uncertain)"
await submit-uncertain Succeeded SubmitUncertain
capture submit-uncertain submit-uncertain Degraded
admin faults PUT '{}'

{
  echo "# Argo CD health tests of health.lua, in the layout of Argo CD's resource_customizations."
  echo "# Every input is a real object read with kubectl from the manager running against the emulator;"
  echo "# regenerate them all with hack/demo/argocd-fixtures.sh"
  echo "tests:"
  printf '%s\n' "${TESTS[@]}"
} >"${OUT}/health_test.yaml"
say "wrote ${OUT}/health_test.yaml (${#TESTS[@]} tests)"
