#!/usr/bin/env bash
# Times `embargo scan` against the syft CLI (and Trivy, when TRIVY points at a binary) on images
# cut from this machine's own filesystem, in the same run, from one disk-backed registry on
# 127.0.0.1 (hack/fsbench: base = dpkg database + /usr/lib/x86_64-linux-gnu + /usr/share; then
# + JVM, + Go toolchain, + Go + a ~185 KB layer installing kesl):
#
#   hack/bench-fs-layers.sh
#
# For each image: embargo cold (--no-cache), syft, and their ratio; then the four images in order
# through one layer cache directory (each a fresh process: only new layers are analysed), and a
# rescan of the last from a fresh process on that cache. Wall time and peak RSS from
# /usr/bin/time. Environment:
#   FSBENCH_DIR          where layers and blobs are kept (default /var/tmp/embargo-fsbench)
#   SYFT                 syft binary (default: built like hack/bench-vs-syft.sh does)
#   TRIVY                trivy binary (optional)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'bench-fs-layers: %s\n' "$*" >&2; }
DIR="${FSBENCH_DIR:-/var/tmp/embargo-fsbench}"

SYFT_VERSION="$(go list -m -f '{{.Version}}' github.com/anchore/syft)"
SYFT="${SYFT:-$(hack/syft-bin.sh)}"

WORK="$(mktemp -d)"
REG_PID=""
cleanup() {
	if [[ -n "$REG_PID" ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

log "building bin/embargo and hack/fsbench"
mkdir -p bin
go build -trimpath -ldflags '-s -w' -o bin/embargo ./cmd/embargo
go build -o "$WORK/fsbench" ./hack/fsbench
log "layers from this filesystem into $DIR (first run: a minute or more)"
"$WORK/fsbench" -dir "$DIR" >"$WORK/refs" 2>"$WORK/fsbench.log" &
REG_PID=$!
for _ in $(seq 6000); do
	grep -q '^ready$' "$WORK/refs" 2>/dev/null && break
	kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/fsbench.log" >&2; exit 1; }
	sleep 0.1
done
mapfile -t NAMES < <(grep -v '^ready$' "$WORK/refs" | cut -d' ' -f1)
mapfile -t REFS < <(grep -v '^ready$' "$WORK/refs" | cut -d' ' -f2)

export SYFT_REGISTRY_INSECURE_USE_HTTP=true SYFT_CHECK_FOR_APP_UPDATE=false
# run CMD...: prints "wall_s rss_mib" of one run; exit 0 and 1 (a finding) are both answers
run() {
	local rc=0
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	if [[ $rc -gt 1 ]]; then log "$* exited $rc:"; tail -5 "$WORK/err" >&2; exit 1; fi
	awk '{printf "%.2f %d\n", $1, $2/1024}' "$WORK/time"
}
embargo() { run bin/embargo scan --insecure -o json "$@"; }
syft() { run "$SYFT" scan "registry:$1" -o json -q; }
trivy() { run "$TRIVY" image --format cyclonedx --skip-db-update --offline-scan --skip-files '**/*.jar' --insecure --cache-dir "$1" "$2"; }

printf '%-14s %10s %10s %8s %12s %12s %9s\n' image embargo_s syft_s ratio embargo_MiB syft_MiB rss_ratio
for i in "${!REFS[@]}"; do
	read -r es em < <(embargo --no-cache "${REFS[$i]}")
	read -r ss sm < <(syft "${REFS[$i]}")
	awk -v n="${NAMES[$i]}" -v es="$es" -v ss="$ss" -v em="$em" -v sm="$sm" 'BEGIN {
		printf "%-14s %10.2f %10.2f %8.2f %12d %12d %9.2f\n", n, es, ss, es/ss, em, sm, em/sm }'
	COLD[$i]="$es"
done

CACHE="$WORK/cache"
printf '\nsame images in order, one --cache-dir (a fresh process each):\n'
printf '%-14s %10s %10s %14s\n' image warm_s cold_s warm/cold
for i in "${!REFS[@]}"; do
	read -r ws wm < <(embargo --cache-dir "$CACHE" "${REFS[$i]}")
	awk -v n="${NAMES[$i]}" -v w="$ws" -v c="${COLD[$i]}" 'BEGIN { printf "%-14s %10.2f %10.2f %14.2f\n", n, w, c, w/c }'
done
last=$((${#REFS[@]} - 1))
read -r rs rm < <(embargo --cache-dir "$CACHE" "${REFS[$last]}")
awk -v n="${NAMES[$last]}" -v w="$rs" -v c="${COLD[$last]}" 'BEGIN { printf "rescan %-7s %10.2f %10.2f %14.2f\n", n, w, c, w/c }'

if [[ -n "${TRIVY:-}" ]]; then
	printf '\ntrivy (one cache dir, in order):\n'
	for i in "${!REFS[@]}"; do
		read -r ts tm < <(trivy "$WORK/trivy" "${REFS[$i]}")
		printf '%-14s %10.2f s %8d MiB\n' "${NAMES[$i]}" "$ts" "$tm"
	done
fi
log "embargo $(git rev-parse --short HEAD), syft $SYFT_VERSION, $(nproc) CPUs"
