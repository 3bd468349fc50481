//go:build tools

// Package kubelet pins the kubelet the node test runs: node/run.sh builds
// k8s.io/kubernetes/cmd/kubelet from this module (its own go.mod, so the
// product's module never depends on Kubernetes) and caches the binary.
package kubelet

import _ "k8s.io/kubernetes/cmd/kubelet"
