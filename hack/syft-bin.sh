#!/usr/bin/env bash
# Prints the path of the syft CLI at the version go.mod pins, building it once (hack/go-tool-bin.sh).
# The bench scripts measure against it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SYFT_VERSION="$(go list -m -f '{{.Version}}' github.com/anchore/syft)"
exec hack/go-tool-bin.sh syft "$SYFT_VERSION" github.com/anchore/syft/cmd/syft "-X main.version=$SYFT_VERSION"
