#!/usr/bin/env bash
# Measures what 5,000 ImageScans cost: etcd's database size and the manager's RSS, against a
# real kube-apiserver + etcd (envtest) and the real bin/manager (see hack/imagescan-scale/main.go).
# Builds bin/ first. Fails when etcd's database exceeds 200 MiB or the manager's peak RSS 300 MiB.
#
#   hack/imagescan-scale.sh [-n 5000] [-min 200] [-max 1500]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
export KUBEBUILDER_ASSETS
make --no-print-directory build >&2
BIN="$(mktemp -d)"
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/imagescan-scale" ./hack/imagescan-scale
"$BIN/imagescan-scale" -root "$ROOT" "$@"
