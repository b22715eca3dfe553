# Version pins (KUBERNETES_VERSION, ETCD_VERSION, CONTROLLER_GEN_VERSION, GOLANGCI_LINT_VERSION).
include hack/versions.env

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

GO ?= go
KUBECTL ?= kubectl

## Location of locally built binaries (ignored by git).
LOCALBIN ?= $(CURDIR)/bin

## Tools, built from hack/tools/go.mod (the `tool` directives pin them) and keyed by version.
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

## kube-apiserver and etcd for tests, built by hack/envtest-assets.sh into bin/k8s/<version>-<os>-<arch>.
ENVTEST_ASSETS_DIR ?= $(shell hack/envtest-assets.sh --print-dir)

## Flags for `go test`, e.g. make test TEST_FLAGS='-run TestFoo -v'. The apiserver version the suites ran against is printed after them.
TEST_FLAGS ?= -race
## Arguments for `make run`, e.g. make run ARGS='--help'.
ARGS ?=

##@ General

.PHONY: all
all: build ## Default target: same as build.

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases) and the manager ClusterRole (config/rbac/role.yaml).
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/...;./internal/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods of the API types (api/.../zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (configuration in .golangci.yml).
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: $(GOLANGCI_LINT) ## Run golangci-lint and apply the fixes it can make.
	$(GOLANGCI_LINT) run --fix ./...

.PHONY: test
test: manifests generate fmt vet envtest-assets ## Run all tests against a real kube-apiserver and etcd (built on first use).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS_DIR)" $(GO) test $(TEST_FLAGS) ./... -coverprofile cover.out
	@# Show which apiserver the suites ran against: the version test again, with its log.
	@KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS_DIR)" $(GO) test -count=1 -v -run '^TestAPIServerVersion$$' ./internal/testenv/ | grep -E '/version|^(ok|FAIL|--- )'
# internal/gitops applies dist/install.yaml to the test control plane.
test: build-installer


## Fuzz budget per target for `make fuzz`.
FUZZTIME ?= 15s
FUZZ_TARGETS ?= FuzzParseRoute FuzzDecodeRequest FuzzServeHTTP

.PHONY: fuzz
fuzz: ## Run each emulator fuzz target for FUZZTIME (name parsing, request decoding, the whole handler).
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t for $(FUZZTIME)"; \
		$(GO) test ./internal/emulator/ -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) || exit 1; \
	done

## Benchmark time per benchmark for `make bench` (CI runs each once: BENCHTIME=1x).
BENCHTIME ?= 1s

.PHONY: bench
bench: envtest-assets ## Run the benchmarks: emulator GET throughput with 10,000 operations; cancel patch to Cancelled status.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS_DIR)" $(GO) test ./internal/emulator/ ./controllers/ -run='^$$' -bench=. -benchtime=$(BENCHTIME)

## Arguments for `make bench-scale`, e.g. BENCH_SCALE_ARGS='-n 10000 -manager-args=--api-qps=50' (-help lists them).
BENCH_SCALE_ARGS ?=

.PHONY: bench-scale
bench-scale: envtest-assets ## Scale benchmark (not part of test or CI): manager binary, real apiserver, emulator; N=1000 at the default budget takes about 5 min on 2 cores; BENCH_SCALE_ARGS=-storm runs the fault storm, about 11 min; -deadlines 1,000 submitted solves with request timeouts, about 25 min (docs/performance.md).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS_DIR)" $(GO) run ./hack/bench-scale $(BENCH_SCALE_ARGS)

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd for tests into bin/k8s/ (skipped when present) and print the directory.
	@hack/envtest-assets.sh

.PHONY: update-modules
update-modules: ## Rewrite the go.mod/go.sum of hack/tools and hack/controlplane from hack/versions.env (needs network).
	hack/update-modules.sh

##@ Local environment

.PHONY: demo
demo: envtest-assets demo-binaries ## Walk through the operator on a local control plane with the emulator and kubectl (under a minute once built), a cancel answered UNIMPLEMENTED and one accepted.
	hack/demo.sh demo

## How the emulator of `make dev` answers CancelOperation: unimplemented (what Google's API answers today), supported, ignored or notfound.
EMULATOR_CANCEL_MODE ?= unimplemented

.PHONY: dev
dev: envtest-assets demo-binaries ## Start the local control plane, the emulator (cancel mode EMULATOR_CANCEL_MODE) and the manager; keep them running until Ctrl-C.
	EMULATOR_CANCEL_MODE=$(EMULATOR_CANCEL_MODE) hack/demo.sh dev

.PHONY: demo-binaries
demo-binaries: | $(LOCALBIN) ## Build bin/manager, bin/routeopt-emulator and bin/demo-env for make demo and make dev.
	$(GO) build -o $(LOCALBIN)/manager ./cmd
	$(GO) build -o $(LOCALBIN)/routeopt-emulator ./cmd/routeopt-emulator
	$(GO) build -o $(LOCALBIN)/demo-env ./hack/demo

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager (bin/manager) and the API emulator (bin/routeopt-emulator).
	$(GO) build -o $(LOCALBIN)/manager ./cmd
	$(GO) build -o $(LOCALBIN)/routeopt-emulator ./cmd/routeopt-emulator

.PHONY: run
run: manifests generate fmt vet ## Run the manager from your host against the cluster of your current kubeconfig ($KUBECONFIG, else ~/.kube/config).
	$(GO) run ./cmd $(ARGS)

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests ## Install the CRDs into the cluster of your current kubeconfig ($KUBECONFIG, else ~/.kube/config).
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: manifests ## Uninstall the CRDs from the cluster of your current kubeconfig. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

## Image of the manager written into dist/install.yaml.
IMG ?= routeopt-operator:latest

## Container tool for docker-build and docker-push.
CONTAINER_TOOL ?= docker

.PHONY: docker-build
docker-build: ## Build the manager image IMG with the Dockerfile.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: deploy
deploy: build-installer ## Apply dist/install.yaml (CRD, RBAC, manager with image IMG) to the cluster of your current kubeconfig ($KUBECONFIG, else ~/.kube/config).
	$(KUBECTL) apply --server-side -f dist/install.yaml

.PHONY: undeploy
undeploy: ## Delete what deploy applied. Call with ignore-not-found=true to ignore missing resources.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml (CRD, RBAC, manager) from config/default, e.g. make build-installer IMG=registry.example.com/routeopt-operator:v0.1.0.
	mkdir -p dist
	$(KUBECTL) kustomize config/default | sed 's|image: routeopt-operator:latest$$|image: $(IMG)|' > dist/install.yaml.tmp
	mv dist/install.yaml.tmp dist/install.yaml

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

# The binary's name carries the version of hack/versions.env; refuse to build it from a
# hack/tools/go.mod that pins another one (run make update-modules after changing a pin).
define check-tool-pin
	@got="$$(cd hack/tools && $(GO) list -m -f '{{.Version}}' $(1))"; \
	if [[ "$$got" != "$(2)" ]]; then \
		echo "hack/tools/go.mod pins $(1) $$got, hack/versions.env says $(2): run make update-modules" >&2; exit 1; \
	fi
endef

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum | $(LOCALBIN)
	$(call check-tool-pin,sigs.k8s.io/controller-tools,$(CONTROLLER_GEN_VERSION))
	cd hack/tools && $(GO) build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOLANGCI_LINT): hack/tools/go.mod hack/tools/go.sum | $(LOCALBIN)
	$(call check-tool-pin,github.com/golangci/golangci-lint/v2,$(GOLANGCI_LINT_VERSION))
	cd hack/tools && $(GO) build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: tools
tools: $(CONTROLLER_GEN) $(GOLANGCI_LINT) ## Build controller-gen and golangci-lint into bin/ from hack/tools/go.mod.
