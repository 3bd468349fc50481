package daemon_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// cgroupfsNode is a real containerd with a live pod and an orphan pod
// (two directories) under a test cgroup root, cgroupfs driver layout, and
// the config text of a daemon or clean for it (confirm_passes 1, min_age 0,
// use_systemd never, log text at level error) with the given [memcg]
// lines (none: the watchdog off).
type cgroupfsNode struct {
	root               *testbed.CgroupRoot
	liveRel, orphanRel string
	config             string
}

func newCgroupfsNode(t *testing.T, memcg ...string) *cgroupfsNode {
	t.Helper()
	n := &cgroupfsNode{root: testbed.NewCgroupRoot(t, "cgfsnode")}
	ctrd := testbed.StartContainerd(t)
	dir := t.TempDir()
	kubelet := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	liveUID := testbed.RandomUID()
	n.liveRel = "kubepods/burstable/pod" + liveUID
	if err := n.root.Mkdir(n.liveRel); err != nil {
		t.Fatal(err)
	}
	ctrd.RunPod(t, n.root.Rel(n.liveRel), liveUID, "live")
	n.orphanRel = "kubepods/besteffort/pod" + testbed.RandomUID()
	if err := n.root.Mkdir(n.orphanRel + "/" + strings.Repeat("c", 64)); err != nil {
		t.Fatal(err)
	}
	cfg := testbed.NodeConfig{
		Endpoint: ctrd.Endpoint(), PodRoot: n.root.Rel("kubepods"), KubeletRoot: kubelet,
		StateDir: filepath.Join(dir, "state"), Interval: time.Second, MetricsPort: testbed.FreePort(t),
		Clean: []string{"max_removal_share = 1.0"}, LogLevel: "error", Memcg: memcg,
	}
	text := cfg.TOML()
	n.config = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(n.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// present counts the hierarchies that have rel.
func (n *cgroupfsNode) present(rel string) int {
	c := 0
	for _, h := range n.root.Hierarchies {
		if _, err := os.Stat(h.Path(n.root.Rel(rel))); err == nil {
			c++
		}
	}
	return c
}

// memcg.mode = "act" on the cgroupfs driver (no systemd link, so the
// engine has no rmdir hook of its own): the daemon removes the orphan,
// keeps the live pod and is still running after the removal. It used to
// call a nil hook at its first removal and die.
func TestDaemonMemcgActOnCgroupfsDriver(t *testing.T) {
	testbed.RequireRoot(t)
	bin := buildDaemon(t)
	// Only the removal hook of the watchdog acts: no reclaim of the pod
	// root and no drop_caches on this machine.
	n := newCgroupfsNode(t, `mode = "act"`, "prevent_on_remove = true", "reclaim_pod_root = false", "drop_caches = false")
	var logBuf testbed.SyncBuffer
	cmd := testbed.PrivateLockCommand(bin, "run", "--config", n.config)
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
	waitFor(t, 30*time.Second, "the orphan removed", func() bool {
		select {
		case <-exited:
			t.Fatalf("the daemon exited (%v) before removing the orphan", waitErr)
		default:
		}
		return n.present(n.orphanRel) == 0
	})
	// Two more passes: still running, the live pod still there.
	time.Sleep(2500 * time.Millisecond)
	select {
	case <-exited:
		t.Fatalf("the daemon exited after its removal: %v", waitErr)
	default:
	}
	if got := n.present(n.liveRel); got != len(n.root.Hierarchies) {
		t.Errorf("live pod in %d of %d hierarchies", got, len(n.root.Hierarchies))
	}
	if !strings.Contains(logBuf.String(), "removing orphan pod") {
		t.Errorf("no intent record of the removal at log.level error:\n%s", logBuf.String())
	}
}

// A one-shot clean whose log output (no journald: text on stderr) refuses
// writes (/dev/full) removes nothing: the intent record of the removal was
// not taken, so the orphan is kept as audit-unavailable. With a working
// stderr the next clean removes it, and the live pod stays.
func TestCleanWithoutLogOutputRemovesNothing(t *testing.T) {
	testbed.RequireRoot(t)
	bin := buildDaemon(t)
	n := newCgroupfsNode(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	testbed.Need(t, err == nil, "/dev/full")
	defer full.Close()
	var out bytes.Buffer
	cmd := testbed.PrivateLockCommand(bin, "clean", "--config", n.config)
	cmd.Stdout, cmd.Stderr = &out, full
	_ = cmd.Run() // the exit status of a pass with refusals is not what is tested
	if got := n.present(n.orphanRel); got != len(n.root.Hierarchies) {
		t.Fatalf("the orphan lost directories with the log output failing: in %d of %d hierarchies\n%s", got, len(n.root.Hierarchies), out.String())
	}
	if !strings.Contains(out.String(), "audit-unavailable") {
		t.Errorf("clean does not say audit-unavailable:\n%s", out.String())
	}
	var errs bytes.Buffer
	cmd = testbed.PrivateLockCommand(bin, "clean", "--config", n.config)
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("clean: %v\n%s\n%s", err, out.String(), errs.String())
	}
	if n.present(n.orphanRel) != 0 || n.present(n.liveRel) != len(n.root.Hierarchies) {
		t.Fatalf("with stderr working: orphan in %d, live pod in %d hierarchies\n%s", n.present(n.orphanRel), n.present(n.liveRel), errs.String())
	}
	if !strings.Contains(errs.String(), "removing orphan pod") {
		t.Errorf("no intent record on stderr:\n%s", errs.String())
	}
}
