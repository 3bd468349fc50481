package testbed

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StartWorkload runs a container of PauseImage in the sandbox with args
// (see internal/testbed/pause: "spin", "files N DIR") and returns its ID;
// its cgroup is <cgroupParent>/<containerID>.
func (c *Containerd) StartWorkload(t testing.TB, sandboxID, name string, args ...string) string {
	t.Helper()
	c.mu.Lock()
	sbCfg := c.pods[sandboxID]
	c.mu.Unlock()
	if sbCfg == nil {
		t.Fatalf("StartWorkload: sandbox %s was not made by RunPod", sandboxID)
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: PauseImage},
		Command:  []string{"/pause"},
		Args:     args,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	ctx, cancel := criCtx()
	defer cancel()
	res, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v\n%s", name, err, c.logTail())
	}
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: res.GetContainerId()}); err != nil {
		t.Fatalf("StartContainer %s: %v\n%s", name, err, c.logTail())
	}
	return res.GetContainerId()
}
