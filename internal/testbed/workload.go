package testbed

import "testing"

// StartWorkload runs a container of PauseImage in the sandbox with args
// (see internal/testbed/pause: "spin", "files N DIR") and returns its ID;
// its cgroup is <cgroupParent>/<containerID>.
func (c *Containerd) StartWorkload(t testing.TB, sandboxID, name string, args ...string) string {
	t.Helper()
	return c.startContainer(t, "StartWorkload", sandboxID, name, []string{"/pause"}, args)
}
