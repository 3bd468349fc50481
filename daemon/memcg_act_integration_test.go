package daemon_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// memcg.mode = "act" on the cgroupfs driver (no systemd link, so the
// engine has no rmdir hook of its own): the daemon removes the orphan,
// keeps the live pod and is still running after the removal. It used to
// call a nil hook at its first removal and die.
func TestDaemonMemcgActOnCgroupfsDriver(t *testing.T) {
	testbed.RequireRoot(t)
	root := testbed.NewCgroupRoot(t, "memcgact")
	ctrd := testbed.StartContainerd(t)
	bin := buildDaemon(t)
	dir := t.TempDir()
	kubelet := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	liveUID := testbed.RandomUID()
	liveRel := "kubepods/burstable/pod" + liveUID
	if err := root.Mkdir(liveRel); err != nil {
		t.Fatal(err)
	}
	ctrd.RunPod(t, root.Rel(liveRel), liveUID, "live")
	orphanRel := "kubepods/besteffort/pod" + testbed.RandomUID()
	if err := root.Mkdir(orphanRel + "/" + strings.Repeat("c", 64)); err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(dir, "config.toml")
	// Only the removal hook of the watchdog acts: no reclaim of the pod
	// root and no drop_caches on this machine.
	text := fmt.Sprintf(`[runtime]
endpoint = %q
timeout = "2s"

[cgroup]
pod_root = %q
driver = "cgroupfs"
kubelet_root = %q

[clean]
min_age = "0s"
confirm_passes = 1
max_removal_share = 1.0
use_systemd = "never"

[daemon]
interval = "1s"
jitter = 0.0
state_dir = %q

[log]
level = "error"
format = "text"

[metrics]
listen = "127.0.0.1:%d"

[memcg]
mode = "act"
prevent_on_remove = true
reclaim_pod_root = false
drop_caches = false
`, ctrd.Endpoint(), root.Rel("kubepods"), kubelet, filepath.Join(dir, "state"), freePort(t))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var logBuf testbed.SyncBuffer
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the daemon exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logBuf.String())
		}
	})
	orphanGone := func() bool {
		for _, h := range root.Hierarchies {
			if _, err := os.Stat(h.Path(root.Rel(orphanRel))); err == nil {
				return false
			}
		}
		return true
	}
	waitFor(t, 30*time.Second, "the orphan removed", func() bool {
		select {
		case <-exited:
			t.Fatalf("the daemon exited (%v) before removing the orphan", waitErr)
		default:
		}
		return orphanGone()
	})
	// Two more passes: still running, the live pod still there.
	time.Sleep(2500 * time.Millisecond)
	select {
	case <-exited:
		t.Fatalf("the daemon exited after its removal: %v", waitErr)
	default:
	}
	for _, h := range root.Hierarchies {
		if _, err := os.Stat(h.Path(root.Rel(liveRel))); err != nil {
			t.Errorf("live pod in %s: %v", h.Name, err)
		}
	}
	if !strings.Contains(logBuf.String(), "removing orphan pod") {
		t.Errorf("no intent record of the removal at log.level error:\n%s", logBuf.String())
	}
}
