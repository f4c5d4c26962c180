#!/usr/bin/env bash
# Times `embargo scan` against the syft CLI and Trivy on images cut from this machine's own
# filesystem, in the same run, from one disk-backed registry on 127.0.0.1 (hack/fsbench: base =
# dpkg database + /usr/lib/x86_64-linux-gnu + /usr/share; then + JVM, + Go toolchain, + Go + a
# ~185 KB layer installing kesl):
#
#   nice -n 10 hack/bench-fs-layers.sh
#
# 1. Cold, per image, interleaved: embargo --no-cache, syft, and Trivy with a fresh cache dir;
#    ratios of embargo's wall time and peak RSS to each.
# 2. Warm: the four images in order, a fresh process each, embargo on one --cache-dir and Trivy
#    on one --cache-dir (only new layers are analysed); each ×its own cold time. Then a rescan of
#    the last image from a fresh process on that cache. The floor beside it: GNU gzip inflating
#    the image's new layers (`gzip -dc FILE >/dev/null`, same run), the least any tool must do to
#    read them; floor/cold is the best ×own-cold ratio inflating alone allows.
# Wall time and peak RSS from /usr/bin/time. Trivy runs offline as its SBOM generator:
#   trivy image --format cyclonedx --skip-db-update --offline-scan --cache-dir DIR
#     --skip-files '**/*.jar' --image-src remote --insecure REF
# (its Java DB cannot be fetched here, so jars are skipped; --image-src remote keeps it from
# probing local container daemons first). The kesl column says whether the output names kesl.
# Environment:
#   FSBENCH_DIR          where layers and blobs are kept (default /var/tmp/embargo-fsbench)
#   SYFT                 syft binary (default: hack/syft-bin.sh)
#   TRIVY                trivy binary (default: hack/trivy-bin.sh; TRIVY=none leaves it out)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'bench-fs-layers: %s\n' "$*" >&2; }
DIR="${FSBENCH_DIR:-/var/tmp/embargo-fsbench}"

SYFT_VERSION="$(go list -m -f '{{.Version}}' github.com/anchore/syft)"
SYFT="${SYFT:-$(hack/syft-bin.sh)}"
TRIVY="${TRIVY:-$(hack/trivy-bin.sh)}"
[[ "$TRIVY" == none ]] && TRIVY=""

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
mapfile -t NEW < <(grep -v '^ready$' "$WORK/refs" | cut -d' ' -f3)

export SYFT_REGISTRY_INSECURE_USE_HTTP=true SYFT_CHECK_FOR_APP_UPDATE=false
# run CMD...: prints "wall_s rss_mib kesl" of one run (kesl: yes when the output names kesl);
# exit 0 and 1 (a finding) are both answers
run() {
	local rc=0
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	if [[ $rc -gt 1 ]]; then log "$* exited $rc:"; tail -5 "$WORK/err" >&2; exit 1; fi
	local kesl=no
	grep -q '"kesl"' "$WORK/out" && kesl=yes
	# the last line: time(1) first writes "Command exited with non-zero status 1" after a finding
	tail -n 1 "$WORK/time" | awk -v k="$kesl" '{printf "%.2f %d %s\n", $1, $2/1024, k}'
}
embargo() { run bin/embargo scan --insecure -o json "$@"; }
syft() { run "$SYFT" scan "registry:$1" -o json -q; }
trivy() {
	run "$TRIVY" image --format cyclonedx --skip-db-update --offline-scan --skip-files '**/*.jar' \
		--image-src remote --insecure --quiet --cache-dir "$1" "$2"
}
# gunzip FILE,...: seconds GNU gzip takes to inflate the files, one after another
gunzip_s() {
	local IFS=, f
	/usr/bin/time -f '%e' -o "$WORK/gz-time" bash -c 'for f in "$@"; do gzip -dc "$f" >/dev/null; done' _ $1
	tail -n 1 "$WORK/gz-time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else printf "-" }'; }

log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'cold (embargo --no-cache, syft, trivy with a fresh cache dir):\n'
printf '%-14s %9s %8s %8s %7s %7s %9s %8s %9s %8s %8s %5s\n' image embargo_s syft_s trivy_s e/syft e/trivy embargo_MB syft_MB trivy_MB rss/syft rss/triv kesl
for i in "${!REFS[@]}"; do
	read -r es em ek < <(embargo --no-cache "${REFS[$i]}")
	read -r ss sm sk < <(syft "${REFS[$i]}")
	ts=0 tm=0 tk=-
	if [[ -n "$TRIVY" ]]; then read -r ts tm tk < <(trivy "$WORK/trivy-cold-$i" "${REFS[$i]}"); fi
	printf '%-14s %9.2f %8.2f %8.2f %7s %7s %9d %8d %9d %8s %8s %5s\n' "${NAMES[$i]}" "$es" "$ss" "$ts" \
		"$(ratio "$es" "$ss")" "$(ratio "$es" "$ts")" "$em" "$sm" "$tm" "$(ratio "$em" "$sm")" "$(ratio "$em" "$tm")" "$ek/$sk/$tk"
	COLD[$i]="$es"
	TCOLD[$i]="$ts"
done

printf '\nwarm: same images in order, one cache dir each (a fresh process each):\n'
printf '%-14s %9s %10s %8s %10s %9s %9s %9s %10s %5s\n' image embargo_s x_own_cold trivy_s x_own_cold e/trivy gunzip_s e/gunzip floor/cold kesl
for i in "${!REFS[@]}"; do
	read -r ws wm wk < <(embargo --cache-dir "$WORK/cache" "${REFS[$i]}")
	tw=0 tk=-
	if [[ -n "$TRIVY" ]]; then read -r tw _ tk < <(trivy "$WORK/trivy-warm" "${REFS[$i]}"); fi
	gz="$(gunzip_s "${NEW[$i]}")"
	printf '%-14s %9.2f %10s %8.2f %10s %9s %9.2f %9s %10s %5s\n' "${NAMES[$i]}" "$ws" "$(ratio "$ws" "${COLD[$i]}")" "$tw" \
		"$(ratio "$tw" "${TCOLD[$i]}")" "$(ratio "$ws" "$tw")" "$gz" "$(ratio "$ws" "$gz")" "$(ratio "$gz" "${COLD[$i]}")" "$wk/$tk"
done
last=$((${#REFS[@]} - 1))
read -r rs rm rk < <(embargo --cache-dir "$WORK/cache" "${REFS[$last]}")
tr=0
if [[ -n "$TRIVY" ]]; then read -r tr _ _ < <(trivy "$WORK/trivy-warm" "${REFS[$last]}"); fi
printf 'rescan %-7s %9.2f %10s %8.2f %10s %9s %5s   (embargo peak RSS %d MiB)\n' "${NAMES[$last]}" "$rs" \
	"$(ratio "$rs" "${COLD[$last]}")" "$tr" "$(ratio "$tr" "${TCOLD[$last]}")" "$(ratio "$rs" "$tr")" "$rk" "$rm"
log "embargo $(git rev-parse --short HEAD), syft $SYFT_VERSION, trivy ${TRIVY:+$("$TRIVY" --version 2>/dev/null | head -1)}, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
