//go:build tools

// Package tools records the commands built by hack/envtest-assets.sh so that
// `go mod tidy` keeps their dependencies in go.mod/go.sum: the control plane
// the envtest-based tests run, and the node (kubelet, kube-proxy, scheduler,
// controller manager) the end-to-end tests run Pods on.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
