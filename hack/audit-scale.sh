#!/usr/bin/env bash
# Measures the audit at scale against a real kube-apiserver + etcd (envtest), the in-process
# registry and real syft: N bare pods over M distinct images (default 1,000 over 50; every fifth
# image carries Kaspersky's kesl, half the pods report status.imageID, half only a tag), then a
# VendorPolicy. Prints the scans done (manifest pulls, must equal M), the time until the policy
# status converged, and the peak memory of the test process (manager + test client; an upper
# bound for the manager alone).
#
#   hack/audit-scale.sh [pods] [images]      e.g. hack/audit-scale.sh 2000 100
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pods="${1:-${EMBARGO_SCALE_PODS:-1000}}"
images="${2:-${EMBARGO_SCALE_IMAGES:-50}}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

assets="$(hack/envtest-assets.sh)"
echo "audit scale: ${pods} pods over ${images} images (envtest $(basename "$assets"))" >&2
if ! KUBEBUILDER_ASSETS="$assets" EMBARGO_SCALE_PODS="$pods" EMBARGO_SCALE_IMAGES="$images" \
	go test ./test/integration/ -run '^TestAuditScale$' -count=1 -v -timeout 30m >"$out" 2>&1; then
	cat "$out" >&2
	exit 1
fi
line="$(sed -n 's/.*AUDIT-SCALE //p' "$out")"
[[ -n "$line" ]] || { cat "$out" >&2; echo "no AUDIT-SCALE line in the test output" >&2; exit 1; }
for kv in $line; do
	printf '  %-24s %s\n' "${kv%%=*}" "${kv#*=}"
done
