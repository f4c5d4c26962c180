#!/usr/bin/env bash
# Prints the path of the Trivy CLI the benchmarks use as a second anchor (TRIVY_VERSION, default
# v0.74.0), building it once from the Go module proxy into the same versioned tool cache as
# hack/syft-bin.sh (EMBARGO_TOOLS_CACHE, default $(go env GOPATH)/embargo-tools). Trivy v0.74
# needs encoding/json/v2, hence GOEXPERIMENT=jsonv2. Offline it runs with --skip-db-update
# --offline-scan and without its Java DB (hack/bench-fs-layers.sh passes --skip-files '**/*.jar').
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TRIVY_VERSION="${TRIVY_VERSION:-v0.74.0}"
CACHE_ROOT="${EMBARGO_TOOLS_CACHE:-$(go env GOPATH | cut -d: -f1)/embargo-tools}"
TRIVY="$CACHE_ROOT/trivy-$TRIVY_VERSION"
if [[ ! -x "$TRIVY" ]]; then
	printf 'building trivy %s into %s (cold: ten minutes or more)\n' "$TRIVY_VERSION" "$TRIVY" >&2
	mkdir -p "$CACHE_ROOT"
	tmp="$(mktemp -d "$CACHE_ROOT/.trivy.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	# Outside any module, so Trivy's own go.mod decides its dependencies.
	(cd "$tmp" && GOEXPERIMENT=jsonv2 GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath \
		-ldflags "-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}" \
		"github.com/aquasecurity/trivy/cmd/trivy@$TRIVY_VERSION")
	mv "$tmp/trivy" "$TRIVY"
fi
echo "$TRIVY"
