# Embargo — see README.md. `make demo` and `make test` work on a fresh machine.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO            ?= go
BIN           := $(CURDIR)/bin
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X github.com/embargo-dev/embargo/internal/version.Version=$(VERSION)
# One way to build the binaries, for `make build` and every platform of `make image`: static, no
# paths or VCS stamps, so this machine's linux binaries in bin/ are the very files the image is
# made from (go build relinks nothing) and two builds of one commit are byte-identical.
GOBUILD        = CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'
HOST_OS       := $(shell $(GO) env GOOS)
HOST_ARCH     := $(shell $(GO) env GOARCH)
# make image: one OCI image index, written to bin/image and, with REGISTRY=host/path, pushed to
# $(REGISTRY)/embargo:$(IMAGE_TAG) (IMAGE_INSECURE=1 for a plain-HTTP registry). IMAGE_TAG drops
# VERSION's leading "v", as the chart's appVersion (the default tag it installs) does.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_TAG       ?= $(patsubst v%,%,$(VERSION))
REGISTRY        ?=
IMAGE_INSECURE  ?=
IMAGE_CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt
# Every timestamp in the image is the commit's, never the build's.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1)
REVISION        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
comma := ,
# Test binaries that link syft take minutes to compile cold; keep packages few.
TEST_TIMEOUT  ?= 40m

.PHONY: all build image test test-unit test-e2e fmt vet generate manifests verify demo bench envtest-assets chart-crds clean

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

build: ## bin/<os>_<arch>/{embargo,manager} for this machine, hard-linked as bin/embargo and bin/manager
	GOOS=$(HOST_OS) GOARCH=$(HOST_ARCH) $(GOBUILD) -o $(BIN)/$(HOST_OS)_$(HOST_ARCH)/ ./cmd/embargo ./cmd/manager
	ln -f $(BIN)/$(HOST_OS)_$(HOST_ARCH)/embargo $(BIN)/embargo
	ln -f $(BIN)/$(HOST_OS)_$(HOST_ARCH)/manager $(BIN)/manager

image: ## OCI image index for IMAGE_PLATFORMS in bin/image, no Docker; REGISTRY=host/path also pushes it
	@test -s $(IMAGE_CA_CERTS) || { echo "make image: no CA bundle at $(IMAGE_CA_CERTS): apt-get install ca-certificates, or set IMAGE_CA_CERTS=FILE" >&2; exit 1; }
	@for p in $(subst $(comma), ,$(IMAGE_PLATFORMS)); do \
		IFS=/ read -r os arch variant <<<"$$p"; \
		goarm=; if [ "$$arch" = arm ]; then goarm=$${variant#v}; fi; \
		echo "GOOS=$$os GOARCH=$$arch $${goarm:+GOARM=$$goarm }$(GOBUILD) -o $(BIN)/$${p//\//_}/ ./cmd/embargo ./cmd/manager"; \
		env GOOS=$$os GOARCH=$$arch $${goarm:+GOARM=$$goarm} $(GOBUILD) -o $(BIN)/$${p//\//_}/ ./cmd/embargo ./cmd/manager; \
	done
	$(GO) run ./hack/image -bin $(BIN) -out $(BIN)/image -platforms $(IMAGE_PLATFORMS) -ca-certs $(IMAGE_CA_CERTS) \
		-created $(SOURCE_DATE_EPOCH) -version $(VERSION) -revision $(REVISION) -tag $(IMAGE_TAG) \
		$(if $(REGISTRY),-push $(REGISTRY)/embargo:$(IMAGE_TAG)) $(if $(filter 1 true yes,$(IMAGE_INSECURE)),-insecure)

envtest-assets: ## kube-apiserver, etcd, kubectl, helm built from the Go module proxy into a versioned cache
	@hack/envtest-assets.sh >/dev/null

verify: generate manifests ## fails when generated files are stale or code is not gofmt-ed
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt-ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@big=$$(git ls-files -z | xargs -0 -r du -k 2>/dev/null | awk '$$1 > 1024 {print $$2}'); \
		test -z "$$big" || { echo "tracked files over 1 MiB (binaries? data a script can make?): $$big"; exit 1; }

# The tests scan the image `make image` builds (EMBARGO_IMAGE_LAYOUT). For CI time they build only
# this machine's platform of it: its binaries are the ones `make build` just made, while another
# architecture would be a second cold compile of everything (6-11 minutes on 2 cores). Run
# `make image` for the full index.
IMAGE_FOR_TESTS = $(MAKE) --no-print-directory image IMAGE_PLATFORMS=linux/$(HOST_ARCH) REGISTRY= VERSION=$(VERSION)

test: verify vet envtest-assets build ## everything CI runs
	$(IMAGE_FOR_TESTS)
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) EMBARGO_IMAGE_LAYOUT=$(BIN)/image \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...

bench: envtest-assets ## the engine and handler benchmarks; hack/bench-vs-syft.sh and hack/loadtest.sh for the CLI and the webhook
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 5x ./internal/scan/
	$(GO) test -run '^$$' -bench . -benchmem ./internal/attached/
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(GO) test -run '^$$' -bench HandleWarmCache -benchmem ./test/integration/

test-e2e: envtest-assets build ## the end-to-end tests alone: real apiserver, chart, kubectl, helm, bin/manager, bin/embargo, bin/image, the demo
	$(IMAGE_FOR_TESTS)
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) EMBARGO_IMAGE_LAYOUT=$(BIN)/image \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./test/e2e/

demo: envtest-assets build ## a single-node cluster built here with Embargo installed from its image, sample images, policies and workloads; Ctrl-C ends it
	$(IMAGE_FOR_TESTS)
	$(GO) build -o $(BIN)/demo ./hack/demo
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" EMBARGO_BIN=$(BIN) EMBARGO_IMAGE_LAYOUT=$(BIN)/image $(BIN)/demo

clean:
	rm -rf $(BIN)
