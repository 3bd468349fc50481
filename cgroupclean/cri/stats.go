package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerInfo is one container as `doctor` reports it: its names and the
// runtime's own figures for its writable layer.
type ContainerInfo struct {
	ID        string
	SandboxID string
	Name      string
	// LayerBytes and LayerInodes are the writable layer's use from
	// ListContainerStats; HasLayer is false when the runtime gave none.
	LayerBytes, LayerInodes uint64
	HasLayer                bool
}

// Containers lists every container with its name (ListContainers) and its
// writable layer's use (ListContainerStats). The runtime computes those
// figures itself (containerd's snapshotter, CRI-O's storage), so nothing is
// walked again here. Read-only; for `doctor`.
func (c *Client) Containers(ctx context.Context) ([]ContainerInfo, error) {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	list, err := c.rt.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cri %s: list containers: %w", c.endpoint, err)
	}
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	stats, err := c.rt.ListContainerStats(sctx, &runtimeapi.ListContainerStatsRequest{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cri %s: list container stats: %w", c.endpoint, err)
	}
	byID := map[string]*runtimeapi.ContainerStats{}
	for _, s := range stats.GetStats() {
		byID[s.GetAttributes().GetId()] = s
	}
	out := make([]ContainerInfo, 0, len(list.GetContainers()))
	for _, ct := range list.GetContainers() {
		ci := ContainerInfo{ID: ct.GetId(), SandboxID: ct.GetPodSandboxId(), Name: ct.GetMetadata().GetName()}
		if wl := byID[ct.GetId()].GetWritableLayer(); wl != nil {
			ci.HasLayer = true
			ci.LayerBytes = wl.GetUsedBytes().GetValue()
			ci.LayerInodes = wl.GetInodesUsed().GetValue()
		}
		out = append(out, ci)
	}
	return out, nil
}
