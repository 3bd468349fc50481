package daemon_test

import (
	"fmt"
	"os"
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
	daemon  *testbed.Daemon
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

// config is a pass every interval that removes an orphan at its first
// sighting, with extra [clean] lines and the doctor's cadence.
func (n *daemonNode) config(port int, interval time.Duration, doctorEvery int, clean ...string) string {
	return testbed.NodeConfig{
		Endpoint: n.ctrd.Endpoint(), PodRoot: n.root.Rel("kubepods"), KubeletRoot: filepath.Join(n.dir, "kubelet"),
		StateDir: filepath.Join(n.dir, "state"), Interval: interval, MetricsPort: port,
		Clean: append([]string{"max_removal_share = 1.0"}, clean...), DoctorEvery: doctorEvery,
	}.TOML()
}

func (n *daemonNode) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(n.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs bin with the node's config.
func (n *daemonNode) start(t *testing.T, bin string, port int) {
	t.Helper()
	n.url = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	n.daemon = testbed.StartDaemon(t, testbed.PrivateLockArgv(bin, "run", "--config", n.cfgPath)...)
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
	port := testbed.FreePort(t)
	n.writeConfig(t, n.config(port, time.Second, 0, `mode = "observe"`))
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
		if !strings.Contains(n.daemon.Log.String(), "observe mode: would remove orphan pod "+n.root.Rel(rel)) {
			t.Errorf("no would-remove line for %s", rel)
		}
	}
	if !strings.Contains(n.daemon.Log.String(), "observe mode: would remove 2, removed 0") {
		t.Error("no pass summary saying what observe mode would remove")
	}

	pid := n.daemon.PID()
	n.writeConfig(t, n.config(port, time.Second, 0, `mode = "act"`))
	if err := n.daemon.Signal(syscall.SIGHUP); err != nil {
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
	if !n.daemon.Running() || n.daemon.PID() != pid {
		t.Fatal("the daemon restarted instead of reloading")
	}
	if !strings.Contains(n.daemon.Log.String(), "clean.mode changed from observe to act") {
		t.Error("the mode change was not logged")
	}
}

// The daemon's periodic doctor checks, against a real container held to
// 5 ms of CPU per 100 ms period: cgroupclean_doctor_findings counts it as
// one throttled cgroup (a warning), and an idle container is not counted.
// Passes 2 s apart: the share needs 10 CFS periods (1 s) between reads.
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

	port := testbed.FreePort(t)
	n.writeConfig(t, n.config(port, 2*time.Second, 1))
	n.start(t, bin, port)
	var fams map[string]*dto.MetricFamily
	waitFor(t, 40*time.Second, "doctor_findings{cpu.throttled,warning} = 1", func() bool {
		fams = n.metrics(t)
		return fams != nil && value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning") == 1
	})
	if v := value(fams, "cgroupclean_doctor_last_run_timestamp_seconds"); v < float64(time.Now().Add(-10*time.Second).Unix()) {
		t.Errorf("doctor_last_run_timestamp_seconds = %v", v)
	}
	for _, f := range []string{"memcg.dying", "leak.memcg-ids", "layer.inodes-high", "cpu.throttled"} {
		if v := value(fams, "cgroupclean_doctor_findings", "finding", f, "severity", "info"); v != 0 {
			t.Errorf("doctor_findings{%s,info} = %v", f, v)
		}
	}
	// It stays at one (the idle pod never joins) over the next passes.
	for i := 0; i < 3; i++ {
		time.Sleep(2100 * time.Millisecond)
		if fams = n.metrics(t); value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning") != 1 {
			t.Fatalf("throttled count moved: %v", value(fams, "cgroupclean_doctor_findings", "finding", "cpu.throttled", "severity", "warning"))
		}
	}
}
