package testbed

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerdCgroupLayout records where containerd (cgroupfs driver)
// puts a pod's cgroups, what survives kill -9 of containerd, and what Stop
// and Remove leave behind.
func TestContainerdCgroupLayout(t *testing.T) {
	r := NewCgroupRoot(t, "ctrd")
	c := StartContainerd(t)
	all := len(r.Hierarchies)

	uid := RandomUID()
	pod := "kubepods/burstable/pod" + uid
	if err := r.Mkdir(pod); err != nil { // kubelet makes it before RunPodSandbox
		t.Fatal(err)
	}
	sb := c.RunPod(t, r.Rel(pod), uid, "layout")
	ctr := c.CreateStartContainer(t, sb, "app")

	check := func(stage string, want map[string]int) {
		t.Helper()
		for rel, n := range want {
			if got := r.Exists(rel); got != n {
				t.Errorf("%s: %s exists in %d of %d hierarchies, want %d", stage, rel, got, all, n)
			}
		}
	}
	procs := func(rel string) []string {
		t.Helper()
		var out []string
		for _, h := range r.Hierarchies {
			b, _ := os.ReadFile(filepath.Join(h.Path(r.Name), rel, "cgroup.procs"))
			if len(strings.Fields(string(b))) != 1 {
				t.Errorf("%s in %s: procs %q, want the one pause process", rel, h.Name, b)
			}
			out = append(out, strings.TrimSpace(string(b)))
		}
		return out
	}

	check("running", map[string]int{pod: all, pod + "/" + sb: all, pod + "/" + ctr: all})
	sbProcs := procs(pod + "/" + sb)
	procs(pod + "/" + ctr)
	t.Logf("sandbox %s and container %s: <parent>/<id> in all %d hierarchies", sb, ctr, all)

	c.Kill9(t)
	if err := syscall.Kill(atoi(t, sbProcs[0]), 0); err != nil {
		t.Errorf("pause process gone after kill -9 of containerd: %v", err)
	}
	check("containerd killed", map[string]int{pod + "/" + sb: all, pod + "/" + ctr: all})
	c.Restart(t)
	ctx, cancel := criCtx()
	defer cancel()
	st, err := c.Runtime().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox after restart: %v, %v", st.GetStatus().GetState(), err)
	}

	c.StopPod(t, sb)
	check("stopped", map[string]int{pod: all, pod + "/" + sb: 0, pod + "/" + ctr: 0})
	c.StopRemovePod(t, sb)
	check("removed", map[string]int{pod: all, pod + "/" + sb: 0, pod + "/" + ctr: 0})
}

// TestContainerdCleanupAfterKill9 leaves containerd dead with a running
// sandbox and checks that the cleanup still removes everything.
func TestContainerdCleanupAfterKill9(t *testing.T) {
	var c *Containerd
	var pause int
	t.Run("inner", func(t *testing.T) {
		r := NewCgroupRoot(t, "ctrdclean")
		c = StartContainerd(t)
		uid := RandomUID()
		pod := r.Rel("kubepods/besteffort/pod" + uid)
		sb := c.RunPod(t, pod, uid, "left")
		c.CreateStartContainer(t, sb, "app")
		b, err := os.ReadFile(filepath.Join(r.Hierarchies[0].Mountpoint, pod, sb, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		pause = atoi(t, strings.TrimSpace(string(b)))
		c.Kill9(t)
	})
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", c.Dir, err)
	}
	if m, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(c.Dir)); len(m) != 0 {
		t.Errorf("%d mounts left under %s", len(m), c.Dir)
	}
	for what, pid := range map[string]int{"containerd": c.PID(), "pause": pause} {
		if isLive(pid) {
			t.Errorf("%s pid %d still running", what, pid)
		}
	}
}

// isLive is false for a gone or zombie process (exited shims and pause
// processes linger as zombies until reaped).
func isLive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
