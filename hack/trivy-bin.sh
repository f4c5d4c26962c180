#!/usr/bin/env bash
# Prints the path of the Trivy CLI the benchmarks use as a second anchor (TRIVY_VERSION, default
# v0.74.0), building it once (hack/go-tool-bin.sh). Trivy v0.74 needs encoding/json/v2, hence
# GOEXPERIMENT=jsonv2. Offline it runs with --skip-db-update --offline-scan and without its Java DB
# (hack/bench-fs-layers.sh passes --skip-files '**/*.jar').
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TRIVY_VERSION="${TRIVY_VERSION:-v0.74.0}"
GOEXPERIMENT=jsonv2 exec hack/go-tool-bin.sh trivy "$TRIVY_VERSION" github.com/aquasecurity/trivy/cmd/trivy \
	"-X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}"
