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

	dto "github.com/prometheus/client_model/go"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// daemonNode is one real cgroupcleand against a real containerd, with its
// own pod root, kubelet dir, state dir and metrics port.
type daemonNode struct {
	root    *testbed.CgroupRoot
	ctrd    *testbed.Containerd
	dir     string
	cfgPath string
	url     string
	cmd     *exec.Cmd
	log     *testbed.SyncBuffer
}

func newDaemonNode(t *testing.T, name string) *daemonNode {
	t.Helper()
	testbed.RequireRoot(t)
	n := &daemonNode{root: testbed.NewCgroupRoot(t, name), ctrd: testbed.StartContainerd(t), dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(n.dir, "kubelet", "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.cfgPath = filepath.Join(n.dir, "config.toml")
	return n
}

// config is a 1-second pass that removes an orphan at its first sighting,
// with extra TOML lines appended to the [clean] section and a [doctor]
// section.
func (n *daemonNode) config(port int, clean, doctor string) string {
	return fmt.Sprintf(`[runtime]
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
%s

[daemon]
interval = "1s"
jitter = 0.0
state_dir = %q

[log]
level = "info"
format = "text"

[memcg]
mode = "off"

[metrics]
listen = "127.0.0.1:%d"

[doctor]
%s
`, n.ctrd.Endpoint(), n.root.Rel("kubepods"), filepath.Join(n.dir, "kubelet"), clean, filepath.Join(n.dir, "state"), port, doctor)
}

func (n *daemonNode) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(n.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs bin with the node's config, stopped by SIGTERM (by its PID)
// when the test ends; the log is printed when the test failed.
func (n *daemonNode) start(t *testing.T, bin string, port int) {
	t.Helper()
	n.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	n.cmd, n.log = startDaemon(t, bin, n.cfgPath)
}

func startDaemon(t *testing.T, bin, cfgPath string) (*exec.Cmd, *testbed.SyncBuffer) {
	t.Helper()
	logBuf := &testbed.SyncBuffer{}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
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
	return cmd, logBuf
}

// orphan makes a pod cgroup whose sandbox was stopped and removed.
func (n *daemonNode) orphan(t *testing.T, name string) string {
	t.Helper()
	uid := testbed.RandomUID()
	rel := "kubepods/besteffort/pod" + uid
	if err := n.root.Mkdir(rel); err != nil {
		t.Fatal(err)
	}
	n.ctrd.StopRemovePod(t, n.ctrd.RunPod(t, n.root.Rel(rel), uid, name))
	return rel
}

func (n *daemonNode) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	fams, _ := scrape(t, n.url)
	return fams
}

// The real daemon in observe mode keeps the orphans it would remove, says
// so in cgroupclean_clean_mode, would_remove_total and its log, and after
// a config change and SIGHUP (same PID, no restart) removes them.
func TestDaemonObserveThenActOnReload(t *testing.T) {
	n := newDaemonNode(t, "observe")
	bin := buildDaemon(t)
	orphans := []string{n.orphan(t, "gone-0"), n.orphan(t, "gone-1")}
	port := freePort(t)
	n.writeConfig(t, n.config(port, `mode = "observe"`, "every_passes = 0"))
	n.start(t, bin, port)

	var fams map[string]*dto.MetricFamily
	waitFor(t, 30*time.Second, "observe mode to count both orphans three times", func() bool {
		fams = n.metrics(t)
		return fams != nil && value(fams, "cgroupclean_would_remove_total", "kind", "pod") >= 3*float64(len(orphans))
	})
	if v := value(fams, "cgroupclean_clean_mode", "mode", "observe"); v != 1 {
		t.Errorf("clean_mode{observe} = %v", v)
	}
	if v := value(fams, "cgroupclean_clean_mode", "mode", "act"); v != 0 {
		t.Errorf("clean_mode{act} = %v", v)
	}
	if v := value(fams, "cgroupclean_removals_total", "kind", "pod", "driver", "cgroupfs"); v != 0 {
		t.Errorf("removals_total = %v in observe mode", v)
	}
	for _, rel := range orphans {
		if k := n.root.Exists(rel); k != len(n.root.Hierarchies) {
			t.Fatalf("observe mode: %s left in %d of %d hierarchies", rel, k, len(n.root.Hierarchies))
		}
		if !strings.Contains(n.log.String(), "observe mode: would remove orphan pod "+n.root.Rel(rel)) {
			t.Errorf("no would-remove line for %s", rel)
		}
	}
	if !strings.Contains(n.log.String(), "observe mode: would remove 2, removed 0") {
		t.Error("no pass summary saying what observe mode would remove")
	}

	pid := n.cmd.Process.Pid
	n.writeConfig(t, n.config(port, `mode = "act"`, "every_passes = 0"))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "act mode to remove both orphans", func() bool {
		fams = n.metrics(t)
		return fams != nil && value(fams, "cgroupclean_removals_total", "kind", "pod", "driver", "cgroupfs") >= float64(len(orphans))
	})
	if v := value(fams, "cgroupclean_clean_mode", "mode", "act"); v != 1 {
		t.Errorf("clean_mode{act} = %v after the reload", v)
	}
	for _, rel := range orphans {
		if k := n.root.Exists(rel); k != 0 {
			t.Errorf("act mode: %s still in %d hierarchies", rel, k)
		}
	}
	if n.cmd.ProcessState != nil || n.cmd.Process.Pid != pid {
		t.Fatal("the daemon restarted instead of reloading")
	}
	if !strings.Contains(n.log.String(), "clean.mode changed from observe to act") {
		t.Error("the mode change was not logged")
	}
}

// The daemon's periodic doctor checks, against a real container held to
// 5 ms of CPU per 100 ms period: cgroupclean_doctor_findings counts it as
// one throttled cgroup (a warning), and an idle container is not counted.
func TestDaemonDoctorFindsThrottledContainer(t *testing.T) {
	n := newDaemonNode(t, "doctor")
	var cpu hierarchy.Hierarchy
	for _, h := range n.root.Hierarchies {
		if h.Version == 1 && h.Has("cpu") {
			cpu = h
		}
	}
	testbed.Need(t, cpu.Name != "", "a v1 cpu hierarchy")
	bin := buildDaemon(t)
	run := func(name string) (string, string) {
		uid := testbed.RandomUID()
		rel := "kubepods/burstable/pod" + uid
		if err := n.root.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
		return rel, n.ctrd.RunPod(t, n.root.Rel(rel), uid, name)
	}
	busyRel, busySB := run("busy")
	spin := n.ctrd.StartWorkload(t, busySB, "spinner", "spin")
	if err := os.WriteFile(filepath.Join(cpu.Path(n.root.Rel(busyRel)), spin, "cpu.cfs_quota_us"), []byte("5000"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, idleSB := run("idle")
	n.ctrd.CreateStartContainer(t, idleSB, "sleeper")

	port := freePort(t)
	n.writeConfig(t, n.config(port, "", "every_passes = 1"))
	n.start(t, bin, port)
	var fams map[string]*dto.MetricFamily
	waitFor(t, 40*time.Second, "doctor_findings{cpu.throttled,warning} = 1", func() bool {
		fams = n.metrics(t)
		return fams != nil && value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning") == 1
	})
	if v := value(fams, "cgroupclean_doctor_last_run_timestamp_seconds"); v < float64(time.Now().Add(-10*time.Second).Unix()) {
		t.Errorf("doctor_last_run_timestamp_seconds = %v", v)
	}
	for _, f := range []string{"leak.dying", "leak.memcg-ids", "layer.inodes-high", "cpu.throttled"} {
		if v := value(fams, "cgroupclean_doctor_findings", "finding", f, "severity", "info"); v != 0 {
			t.Errorf("doctor_findings{%s,info} = %v", f, v)
		}
	}
	// It stays at one (the idle pod never joins) over the next passes.
	for i := 0; i < 3; i++ {
		time.Sleep(1100 * time.Millisecond)
		if fams = n.metrics(t); value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning") != 1 {
			t.Fatalf("throttled count moved: %v", value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning"))
		}
	}
}
