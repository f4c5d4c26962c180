#!/usr/bin/env bash
# Prints the path of the syft CLI at the version go.mod pins, building it once into a cache
# outside the repository (EMBARGO_TOOLS_CACHE, default $(go env GOPATH)/embargo-tools). The
# bench scripts measure against it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SYFT_VERSION="$(go list -m -f '{{.Version}}' github.com/anchore/syft)"
CACHE_ROOT="${EMBARGO_TOOLS_CACHE:-$(go env GOPATH | cut -d: -f1)/embargo-tools}"
SYFT="$CACHE_ROOT/syft-$SYFT_VERSION"
if [[ ! -x "$SYFT" ]]; then
	printf 'building syft %s into %s (cold: several minutes)\n' "$SYFT_VERSION" "$SYFT" >&2
	mkdir -p "$CACHE_ROOT"
	tmp="$(mktemp -d "$CACHE_ROOT/.syft.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	# Outside any module, so syft's own go.mod decides its dependencies.
	(cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath \
		-ldflags "-s -w -X main.version=$SYFT_VERSION" "github.com/anchore/syft/cmd/syft@$SYFT_VERSION")
	mv "$tmp/syft" "$SYFT"
fi
echo "$SYFT"
