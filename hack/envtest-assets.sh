#!/usr/bin/env bash
# Builds the real Kubernetes binaries the tests run, from the Go module proxy
# only (no setup-envtest, no release downloads), into a versioned cache outside
# the repository:
#
#   ${EMBARGO_TOOLS_CACHE:-$(go env GOPATH)/embargo-tools}/k8s-<v>-etcd-<v>-helm-<v>-containerd-<v>/
#
# - the control plane the envtest-based tests run: kube-apiserver, etcd,
#   kubectl, helm;
# - the node the end-to-end tests run Pods on (internal/test/devcluster): kubelet,
#   kube-proxy, kube-scheduler and kube-controller-manager of the same
#   k8s.io/kubernetes version, containerd 2.x with its runc shim, and runc
#   (cgo, with seccomp: Debian's runc 1.1 cannot start containerd 2.4's
#   sandboxes, "can't get final child's PID from pipe"). The CNI plugins,
#   iptables and libseccomp's headers are Debian's packages: the script
#   apt-get installs them when they are missing and it runs as root.
#
# Prints ONLY that directory on stdout (progress goes to stderr), so e.g.
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
#
# kube-apiserver, kubectl and etcd come from the tools module in hack/tools
# (go.mod/go.sum pin k8s.io/kubernetes and etcd); helm is built on its own with
# `go install` because it would bump the tools module's apiserver deps.
#
# Warm runs only check a stamp file and return at once. A cold build takes
# ~15 min and ~2.5 GB RAM on 2 cores; it is built in a temporary directory and
# renamed into place, so an interrupted build never leaves a half cache.
# Concurrent invocations serialise on a lock file.
set -euo pipefail

K8S_VERSION=v1.37.2   # must match k8s.io/kubernetes in hack/tools/go.mod
ETCD_VERSION=v3.7.0   # must match go.etcd.io/etcd/server/v3 in hack/tools/go.mod
HELM_VERSION=v3.22.0
CONTAINERD_VERSION=v2.4.2 # 2.x: kubelet 1.36+ refuses containerd 1.x; 2.4 still runs on cgroup v1
RUNC_VERSION=v1.5.3
NODE_PACKAGES=(containernetworking-plugins iptables conntrack libseccomp-dev pkg-config)

log() { printf 'envtest-assets: %s\n' "$*" >&2; }

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$ROOT_DIR/hack/tools"

if [[ -n "${EMBARGO_TOOLS_CACHE:-}" ]]; then
	CACHE_ROOT="$EMBARGO_TOOLS_CACHE"
else
	CACHE_ROOT="$(go env GOPATH | cut -d: -f1)/embargo-tools"
fi
DEST="$CACHE_ROOT/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}-containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}"
STAMP_NAME=".envtest-assets.stamp"
BINARIES=(kube-apiserver etcd kubectl helm
	kubelet kube-proxy kube-scheduler kube-controller-manager
	containerd containerd-shim-runc-v2 ctr runc)

# Debian's CNI plugins, iptables and libseccomp headers for the node. Missing ones are
# installed when we are root; otherwise the node tests say what is missing.
ensure_node_packages() {
	local missing=() p
	for p in "${NODE_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		log "not installing ${missing[*]} (needs root and apt-get): the node tests will fail until they are installed"
		return 0
	fi
	log "apt-get install ${missing[*]}"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 ||
		log "apt-get install ${missing[*]} failed: the node tests will fail until they are installed"
}
ensure_node_packages

# The stamp records the versions plus a hash of the tools module, so editing
# hack/tools/go.mod or go.sum (without a version bump) still forces a rebuild.
stamp() {
	printf 'k8s=%s etcd=%s helm=%s containerd=%s runc=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "$HELM_VERSION" "$CONTAINERD_VERSION" "$RUNC_VERSION"
	cat "$TOOLS_DIR/go.mod" "$TOOLS_DIR/go.sum" | sha256sum | cut -d' ' -f1
}
WANT_STAMP="$(stamp)"

is_complete() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "$DEST/$b" ]] || return 1
	done
	[[ -f "$DEST/$STAMP_NAME" && "$(cat "$DEST/$STAMP_NAME")" == "$WANT_STAMP" ]]
}

if is_complete; then
	echo "$DEST"
	exit 0
fi

mkdir -p "$CACHE_ROOT"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE_ROOT/.lock"
	if ! flock -n 9; then
		log "another build holds $CACHE_ROOT/.lock; waiting"
		flock 9
	fi
	if is_complete; then # built by whoever held the lock
		echo "$DEST"
		exit 0
	fi
fi

TMP="$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

export GOWORK=off CGO_ENABLED=0
# Keep the build reproducible from the committed go.sum whatever the caller's
# GOFLAGS say (-mod=mod would let it drift).
export GOFLAGS="-mod=readonly -buildvcs=false"

K8S_MINOR="${K8S_VERSION#v1.}"
K8S_MINOR="${K8S_MINOR%%.*}"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
	K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done

start=$SECONDS
log "building kube-apiserver, kubectl, kubelet, kube-proxy, kube-scheduler, kube-controller-manager ($K8S_VERSION) and etcd ($ETCD_VERSION) into $TMP (cold: ~20 min)"
(
	cd "$TOOLS_DIR"
	go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$TMP/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kubectl \
		k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kube-proxy \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		./etcd
)

# Without these helm's Capabilities.KubeVersion (helm template, helm lint)
# defaults to Kubernetes 1.20.
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
	HELM_LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
log "building helm $HELM_VERSION"
(
	cd "$TMP" # outside any module: go install pkg@version uses helm's own go.mod
	GOFLAGS=-buildvcs=false GOBIN="$TMP" go install -trimpath -ldflags "$HELM_LDFLAGS" \
		"helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
)

# containerd's own go.mod, like helm's. No btrfs/devmapper/zfs snapshotters:
# they need cgo headers, and the node uses overlayfs.
log "building containerd $CONTAINERD_VERSION"
(
	cd "$TMP"
	GOFLAGS=-buildvcs=false GOBIN="$TMP" go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
		-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
)

log "building runc $RUNC_VERSION (cgo, seccomp)"
(
	cd "$TMP"
	CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOBIN="$TMP" go install -trimpath -tags seccomp \
		-ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
)

for b in "${BINARIES[@]}"; do
	[[ -x "$TMP/$b" ]] || { log "missing $b after build"; exit 1; }
done
printf '%s\n' "$WANT_STAMP" >"$TMP/$STAMP_NAME"
chmod 755 "$TMP"

# Swap into place; a stale or partial DEST is moved aside and removed.
if [[ -e "$DEST" ]]; then
	OLD="$(mktemp -d "$CACHE_ROOT/.old.XXXXXX")"
	mv "$DEST" "$OLD/"
	rm -rf "$OLD"
fi
mv "$TMP" "$DEST"
trap - EXIT
log "done in $((SECONDS - start))s: $DEST"
echo "$DEST"
