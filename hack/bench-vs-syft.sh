#!/usr/bin/env bash
# Times `embargo scan` against the syft CLI on the same synthetic image, in the same run:
#
#   hack/bench-vs-syft.sh [N]        (N runs of each, interleaved; default 5)
#
# Both pull the image from an in-process registry on 127.0.0.1 (hack/testregistry serving
# testimage.Synthetic: ~100 MB, 1,000 dpkg packages, one of them kesl) and write JSON. syft is
# built from the version go.mod pins, once, into a cache outside the repository. Prints each
# tool's median wall time and the ratio embargo/syft. Environment:
#   BENCH_PACKAGES, BENCH_BYTES   shape of the image (default 1000, 104857600)
#   EMBARGO_TOOLS_CACHE           where syft is cached (default $(go env GOPATH)/embargo-tools)
set -euo pipefail

N="${1:-5}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }
PACKAGES="${BENCH_PACKAGES:-1000}"
BYTES="${BENCH_BYTES:-104857600}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'bench-vs-syft: %s\n' "$*" >&2; }

SYFT_VERSION="$(go list -m -f '{{.Version}}' github.com/anchore/syft)"
SYFT="$(hack/syft-bin.sh)"

log "building bin/embargo and the test registry"
mkdir -p bin
go build -trimpath -ldflags '-s -w' -o bin/embargo ./cmd/embargo
WORK="$(mktemp -d)"
go build -o "$WORK/testregistry" ./hack/testregistry

REG_PID=""
cleanup() {
	if [[ -n "$REG_PID" ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

"$WORK/testregistry" -packages "$PACKAGES" -bytes "$BYTES" >"$WORK/ref" 2>"$WORK/registry.log" &
REG_PID=$!
for _ in $(seq 600); do
	[[ -s "$WORK/ref" ]] && break
	kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/registry.log" >&2; exit 1; }
	sleep 0.1
done
REF="$(head -n1 "$WORK/ref")"
[[ -n "$REF" ]] || { log "the test registry printed no reference"; exit 1; }
log "image $REF ($PACKAGES packages, $BYTES content bytes)"

export SYFT_REGISTRY_INSECURE_USE_HTTP=true SYFT_CHECK_FOR_APP_UPDATE=false
export TMPDIR="${TMPDIR:-/tmp}"

# run_embargo and run_syft print "wall_ms cpu_ms" (cpu: user+sys of the process and its
# children) of one run; on a shared machine CPU time is the steadier of the two.
TIMEFORMAT='%R %U %S'
timed() { awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' "$WORK/time"; }
run_embargo() {
	local rc=0
	{ time bin/embargo scan --insecure "$REF" -o json >"$WORK/embargo.json" 2>"$WORK/embargo.err" || rc=$?; } 2>"$WORK/time"
	# 1 is the expected answer (a Deny finding: kesl); only 2 is an error.
	if [[ $rc -ne 1 ]]; then
		log "embargo exited $rc, want 1 (a finding):"; cat "$WORK/embargo.err" >&2; exit 1
	fi
	timed
}
run_syft() {
	local rc=0
	{ time "$SYFT" scan "registry:$REF" -o json -q >"$WORK/syft.json" 2>"$WORK/syft.err" || rc=$?; } 2>"$WORK/time"
	if [[ $rc -ne 0 ]]; then
		log "syft exited $rc:"; cat "$WORK/syft.err" >&2; exit 1
	fi
	timed
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# One untimed run of each warms the page cache and checks both work.
run_embargo >/dev/null
run_syft >/dev/null
if command -v jq >/dev/null; then
	log "embargo: $(jq '[.results[].packageCount] | add' "$WORK/embargo.json") packages, $(jq '[.results[].findings | length] | add' "$WORK/embargo.json") findings; syft: $(jq '.artifacts | length' "$WORK/syft.json") packages"
fi

EW=() EC=() SW=() SC=()
for i in $(seq "$N"); do
	# Alternate the order so neither tool always runs on a cooler machine.
	if ((i % 2)); then
		read -r ew ec < <(run_embargo); read -r sw sc < <(run_syft)
	else
		read -r sw sc < <(run_syft); read -r ew ec < <(run_embargo)
	fi
	EW+=("$ew") EC+=("$ec") SW+=("$sw") SC+=("$sc")
	log "run $i/$N: embargo ${ew} ms wall ${ec} ms cpu; syft ${sw} ms wall ${sc} ms cpu"
done

m() { printf '%s\n' "$@" | median; }
ewm="$(m "${EW[@]}")" ecm="$(m "${EC[@]}")" swm="$(m "${SW[@]}")" scm="$(m "${SC[@]}")"
printf '%-8s %14s %13s  %s\n' tool median_wall_ms median_cpu_ms "wall_ms of each run"
printf '%-8s %14s %13s  %s\n' embargo "$ewm" "$ecm" "${EW[*]}"
printf '%-8s %14s %13s  %s\n' syft "$swm" "$scm" "${SW[*]}"
awk -v ew="$ewm" -v sw="$swm" -v ec="$ecm" -v sc="$scm" -v n="$N" -v v="$SYFT_VERSION" 'BEGIN {
	printf "ratio embargo/syft %s: wall %.2f, cpu %.2f (medians of %d runs each; target wall <= 0.50)\n", v, ew/sw, ec/sc, n }'
