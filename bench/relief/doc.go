// Package relief measures what removing leaked pod cgroups gives back: the
// CPU, memory and tracked cgroups of kubelet's stats engine (cAdvisor's
// manager, configured as kubelet embeds it), memory.stat latency over dying
// memory cgroups, and the removal rate of the peers' methods on the same
// trees. It is a module of its own so the product's go.mod does not carry
// cAdvisor, gonum plot or cri-tools. Everything runs in `go test` (root):
// see docs/benchmarks.md and `make relief`.
package relief
