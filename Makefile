# Embargo — see README.md. `make demo` and `make test` work on a fresh machine.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO            ?= go
BIN           := $(CURDIR)/bin
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X github.com/embargo-dev/embargo/internal/version.Version=$(VERSION)
# Test binaries that link syft take minutes to compile cold; keep packages few.
TEST_TIMEOUT  ?= 40m

.PHONY: all build test test-unit test-e2e fmt vet generate manifests verify demo bench envtest-assets chart-crds clean

all: build

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/cg-tmp $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/cg-tmp/controller-gen $@ && rmdir $(BIN)/cg-tmp

generate: $(CONTROLLER_GEN) ## deepcopy code
	$(CONTROLLER_GEN) object paths=./api/...

manifests: $(CONTROLLER_GEN) ## CRDs, RBAC and webhook configuration under config/, then the chart's copies
	$(CONTROLLER_GEN) crd rbac:roleName=manager webhook paths=./api/... paths=./controllers/... paths=./webhook/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	$(MAKE) --no-print-directory chart-crds

chart-crds: ## copy generated CRDs/RBAC rules into the Helm chart
	@if [ -x hack/sync-chart.sh ]; then hack/sync-chart.sh; fi

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/embargo ./cmd/embargo
	@if [ -d cmd/manager ] && ls cmd/manager/*.go >/dev/null 2>&1; then $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/manager ./cmd/manager; fi

envtest-assets: ## kube-apiserver, etcd, kubectl, helm built from the Go module proxy into a versioned cache
	@hack/envtest-assets.sh >/dev/null

verify: generate manifests ## fails when generated files are stale or code is not gofmt-ed
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt-ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@big=$$(git ls-files -z | xargs -0 -r du -k 2>/dev/null | awk '$$1 > 1024 {print $$2}'); \
		test -z "$$big" || { echo "tracked files over 1 MiB (binaries? data a script can make?): $$big"; exit 1; }

test: verify vet envtest-assets build ## everything CI runs
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...

bench: envtest-assets ## the engine and handler benchmarks; hack/bench-vs-syft.sh and hack/loadtest.sh for the CLI and the webhook
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 5x ./internal/scan/
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(GO) test -run '^$$' -bench HandleWarmCache -benchmem ./test/integration/

test-e2e: envtest-assets build ## the end-to-end tests alone: real apiserver, chart, kubectl, helm, bin/manager, bin/embargo, the demo
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./test/e2e/

demo: envtest-assets build ## a local cluster with Embargo, sample images, policies and workloads; Ctrl-C ends it
	$(GO) build -o $(BIN)/demo ./hack/demo
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) $(BIN)/demo

clean:
	rm -rf $(BIN)
