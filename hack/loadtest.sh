#!/usr/bin/env bash
# Load-tests the admission webhook against a no-op baseline in the same run (see
# hack/loadtest/main.go): envtest's kube-apiserver and etcd, the real manager, a warm cache.
#
#   hack/loadtest.sh [-concurrency 8] [-duration 10s] [-rounds 2] [-image kesl|clean|synthetic] [-http1]
#
# Prints a table (endpoint, requests, req/s, p50, p99, p99.9, max) and the ratios embargo/no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
export KUBEBUILDER_ASSETS
BIN="$(mktemp -d)"
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/loadtest" ./hack/loadtest
"$BIN/loadtest" -root "$ROOT" "$@"
