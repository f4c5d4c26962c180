#!/usr/bin/env bash
# Measures the audit at scale against a real kube-apiserver + etcd (envtest), the in-process
# registry and real syft: N bare pods over M distinct images (default 1,000 over 50; every fifth
# image carries Kaspersky's kesl, half the pods report status.imageID, half only a tag), then a
# VendorPolicy. Prints the scans done (manifest pulls, must equal M), the time until the policy
# status converged, and the peak memory of the test process (manager + test client; an upper
# bound for the manager alone).
#
#   hack/audit-scale.sh [pods] [images]      e.g. hack/audit-scale.sh 2000 100
#   hack/audit-scale.sh --shared-base 2000 200
#
# --shared-base: every image stacks the same three base layers (a 400-package dpkg database,
# 20 jars, 50 python + 50 npm packages) under a small layer of its own (every fifth rewrites the
# dpkg database to install kesl). Also prints the unique layers, the layers analysed (fetched),
# the time a fresh engine takes to scan every unique layer once (one image of them all), and
# the ratio of the convergence time to it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

shared=0
if [[ "${1:-}" == --shared-base ]]; then
	shared=1
	shift
fi

pods="${1:-${EMBARGO_SCALE_PODS:-1000}}"
images="${2:-${EMBARGO_SCALE_IMAGES:-50}}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

assets="$(hack/envtest-assets.sh)"
echo "audit scale: ${pods} pods over ${images} images$([[ $shared == 1 ]] && echo ' on 3 shared base layers') (envtest $(basename "$assets"))" >&2
if ! KUBEBUILDER_ASSETS="$assets" EMBARGO_SCALE_PODS="$pods" EMBARGO_SCALE_IMAGES="$images" EMBARGO_SCALE_SHARED_BASE="$shared" \
	go test ./test/integration/ -run '^TestAuditScale$' -count=1 -v -timeout 30m >"$out" 2>&1; then
	cat "$out" >&2
	exit 1
fi
line="$(sed -n 's/.*AUDIT-SCALE //p' "$out")"
[[ -n "$line" ]] || { cat "$out" >&2; echo "no AUDIT-SCALE line in the test output" >&2; exit 1; }
for kv in $line; do
	printf '  %-24s %s\n' "${kv%%=*}" "${kv#*=}"
done
