#!/usr/bin/env bash
# go-tool-bin.sh NAME VERSION PACKAGE [LDFLAGS]: prints the path of the Go command PACKAGE@VERSION,
# building it once from the Go module proxy into a versioned cache outside the repository
# (EMBARGO_TOOLS_CACHE, default $(go env GOPATH)/embargo-tools) as NAME-VERSION. It is built outside
# any module, so the tool's own go.mod decides its dependencies; extra environment (GOEXPERIMENT,
# say) passes through. hack/syft-bin.sh and hack/trivy-bin.sh are its callers.
set -euo pipefail
name="$1" version="$2" pkg="$3" ldflags="${4:-}"
CACHE_ROOT="${EMBARGO_TOOLS_CACHE:-$(go env GOPATH | cut -d: -f1)/embargo-tools}"
bin="$CACHE_ROOT/$name-$version"
if [[ ! -x "$bin" ]]; then
	printf 'building %s %s into %s (cold: several minutes)\n' "$name" "$version" "$bin" >&2
	mkdir -p "$CACHE_ROOT"
	tmp="$(mktemp -d "$CACHE_ROOT/.$name.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version")
	mv "$tmp/$(basename "$pkg")" "$bin"
fi
echo "$bin"
