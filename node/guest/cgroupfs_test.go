//go:build nodeguest

package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestCgroupfsDriver is the other kubelet driver on v2: pod cgroups
// kubepods/<qos>/pod<uid> made by hand as kubelet's cgroupfs manager makes
// them, sandboxes from a containerd with the cgroupfs driver, and the real
// binary's clean. Under the test's own cgroup root (the system containerd
// and its systemd slices are the package test's).
func TestCgroupfsDriver(t *testing.T) {
	requireNode(t)
	bin := filepath.Join(share(t), "bin", "cgroupcleand")
	root := testbed.NewCgroupRoot(t, "cgroupfs")
	ctrd := testbed.StartContainerd(t)
	kubelet := t.TempDir()
	if err := os.MkdirAll(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel := func(qos, uid string) string {
		if qos == "guaranteed" {
			return "kubepods/pod" + uid
		}
		return "kubepods/" + qos + "/pod" + uid
	}
	pod := func(qos string, tracked bool) (uid, sandbox string) {
		uid = testbed.RandomUID()
		if tracked {
			if err := os.MkdirAll(filepath.Join(kubelet, "pods", uid), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := root.Mkdir(rel(qos, uid)); err != nil {
			t.Fatal(err)
		}
		return uid, ctrd.RunPod(t, root.Rel(rel(qos, uid)), uid, "cgfs-"+uid[:8])
	}
	type kept struct{ what, rel string }
	var keep []kept
	for _, q := range []string{"guaranteed", "burstable", "besteffort"} {
		uid, sb := pod(q, true)
		c := ctrd.CreateStartContainer(t, sb, "c-"+uid[:8])
		for _, r := range []string{rel(q, uid), rel(q, uid) + "/" + sb, rel(q, uid) + "/" + c} {
			keep = append(keep, kept{"live " + q + " pod", r})
		}
	}
	liveUID := strings.TrimPrefix(filepath.Base(keep[3].rel), "pod")
	leaked := rel("burstable", liveUID) + "/" + randomHex(64)
	if err := root.Mkdir(leaked); err != nil {
		t.Fatal(err)
	}
	trackedUID, sb := pod("burstable", true)
	ctrd.StopRemovePod(t, sb)
	keep = append(keep, kept{"kubelet-tracked pod", rel("burstable", trackedUID)})
	orphanUID, sb := pod("besteffort", false)
	ctrd.StopRemovePod(t, sb)
	orphanGuaranteed, sb := pod("guaranteed", false)
	ctrd.StopRemovePod(t, sb)
	heldUID, sb := pod("burstable", false)
	ctrd.StopRemovePod(t, sb)
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	// In a container cgroup of its own: on v2 a pod cgroup with
	// controllers enabled for its children cannot hold a process itself.
	heldContainer := rel("burstable", heldUID) + "/" + randomHex(64)
	if err := root.Mkdir(heldContainer); err != nil {
		t.Fatal(err)
	}
	if err := root.AddProc(heldContainer, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, kept{"orphan with a process", rel("burstable", heldUID)})
	gone := []string{rel("besteffort", orphanUID), rel("guaranteed", orphanGuaranteed), leaked}
	for _, g := range gone {
		if root.Exists(g) == 0 {
			t.Fatalf("%s does not exist before clean", g)
		}
	}

	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[runtime]
endpoint = %q
[cgroup]
pod_root = %q
driver = "cgroupfs"
kubelet_root = %q
[clean]
min_age = "0s"
[memcg]
mode = "off"
`, ctrd.Endpoint(), root.Rel("kubepods"), kubelet), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, 120*time.Second, bin, "clean", "--dry-run", "--config", cfg)
	for _, g := range gone {
		if root.Exists(g) == 0 {
			t.Errorf("clean --dry-run removed %s:\n%s", g, out)
		}
	}
	out = mustRun(t, 120*time.Second, bin, "clean", "--config", cfg)
	t.Logf("cgroupcleand clean:\n%s", out)
	for _, g := range gone {
		if n := root.Exists(g); n != 0 {
			t.Errorf("orphan %s still there after clean", g)
		}
	}
	for _, k := range keep {
		if root.Exists(k.rel) == 0 {
			t.Errorf("%s: %s removed", k.what, k.rel)
		}
	}
	// scan names the reason of every pod it keeps.
	out = mustRun(t, 120*time.Second, bin, "scan", "--config", cfg)
	for uid, reason := range map[string]string{heldUID: "has-processes", trackedUID: "kubelet-tracks-pod"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			found = found || (strings.Contains(line, uid) && strings.Contains(line, reason))
		}
		if !found {
			t.Errorf("scan does not say pod %s is kept for %s:\n%s", uid, reason, out)
		}
	}
}
