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

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// matrixCase is one configuration of the daemon.
type matrixCase struct {
	level, memcg, driver, useSystemd string
	kill                             bool
}

func (c matrixCase) String() string {
	return fmt.Sprintf("driver=%s/memcg=%s/use_systemd=%s/kill=%v/level=%s", c.driver, c.memcg, c.useSystemd, c.kill, c.level)
}

// matrixCases cover every pair of values of the five keys that change the
// daemon's code path (driver, memcg.mode, use_systemd,
// kill_orphan_processes, log.level) in 12 runs instead of the 96 of every
// combination: each level with each memcg mode once, and for each such row
// one of the four (driver, use_systemd, kill) triples of even parity, which
// between them hold every pair of those three. TestMatrixCoversEveryPair
// checks it.
func matrixCases() []matrixCase {
	levels := []string{"debug", "info", "warning", "error"}
	modes := []string{"off", "observe", "act"}
	// Triples as bits (systemd driver, use_systemd never, kill), by level
	// and mode: a Latin-square of the even-parity triples.
	triples := [4][3]int{{0b000, 0b011, 0b101}, {0b110, 0b101, 0b011}, {0b011, 0b110, 0b000}, {0b101, 0b000, 0b110}}
	var out []matrixCase
	for li, level := range levels {
		for mi, mode := range modes {
			b := triples[li][mi]
			c := matrixCase{level: level, memcg: mode, driver: "cgroupfs", useSystemd: "auto", kill: b&1 != 0}
			if b&0b100 != 0 {
				c.driver = "systemd"
			}
			if b&0b010 != 0 {
				c.useSystemd = "never"
			}
			out = append(out, c)
		}
	}
	return out
}

// The 12 cases hold every pair of values of every two keys, the known
// crash among them (memcg act with the cgroupfs driver or use_systemd
// never).
func TestMatrixCoversEveryPair(t *testing.T) {
	values := func(c matrixCase) []string {
		return []string{c.level, c.memcg, c.driver, c.useSystemd, fmt.Sprint(c.kill)}
	}
	domains := [][]string{{"debug", "info", "warning", "error"}, {"off", "observe", "act"}, {"cgroupfs", "systemd"}, {"auto", "never"}, {"false", "true"}}
	seen := map[string]bool{}
	for _, c := range matrixCases() {
		v := values(c)
		for i := range v {
			for j := i + 1; j < len(v); j++ {
				seen[fmt.Sprint(i, v[i], j, v[j])] = true
			}
		}
	}
	for i := range domains {
		for j := i + 1; j < len(domains); j++ {
			for _, a := range domains[i] {
				for _, b := range domains[j] {
					if !seen[fmt.Sprint(i, a, j, b)] {
						t.Errorf("no case has %s and %s", a, b)
					}
				}
			}
		}
	}
	crash := 0
	for _, c := range matrixCases() {
		if c.memcg == "act" && (c.driver == "cgroupfs" || c.useSystemd == "never") {
			crash++
		}
	}
	if crash == 0 {
		t.Error("no case with memcg act on the cgroupfs driver or use_systemd never")
	}
}

// matrixRun is one case's daemon and what it must remove and keep.
type matrixRun struct {
	c                  matrixCase
	root               *testbed.CgroupRoot
	orphanRel, liveRel string // relative to root
	orphanPath         string // the cgroup path the journal names
	cmd                *exec.Cmd
	exited             chan struct{}
	started            time.Time
	log                string
	orphanProc         *testbed.Process
}

// TestConfigMatrix runs `cgroupcleand run` (the built binary, interval 1s,
// its own state dir and its own /run/cgroupclean) in every case of
// matrixCases against one real containerd, one real `systemd --user` and
// one real journald, on a real orphan (left by CRI Stop+Remove; holding a
// process when kill_orphan_processes is on, so the kill path runs) beside a
// live pod: the orphan goes from every hierarchy, the live pod keeps every
// directory, the daemon is still running (and exits 0 on SIGTERM), and
// the journal has the removal's intent and outcome records, whatever the
// log level. The cgroupfs cases have a cgroup root each and run at once;
// the systemd cases share the manager's one kubepods.slice and run one
// after the other.
func TestConfigMatrix(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		start := time.Now()
		bin := buildDaemon(t)
		ctrd := testbed.StartContainerd(t)
		sd := testbed.StartUserSystemd(t)
		kubelet := testbed.KubeletRoot(t)
		var runs []*matrixRun
		for _, c := range matrixCases() {
			if c.driver == "cgroupfs" {
				r := setupCgroupfsCase(t, c, ctrd)
				startMatrixDaemon(t, r, bin, ctrd.Endpoint(), kubelet, sd.Bus)
				runs = append(runs, r)
			}
		}
		for _, c := range matrixCases() {
			if c.driver == "systemd" {
				t.Run(c.String(), func(t *testing.T) {
					setupAt := time.Now()
					r := setupSystemdCase(t, c, ctrd, sd)
					t.Logf("set up in %v", time.Since(setupAt).Round(time.Millisecond))
					startMatrixDaemon(t, r, bin, ctrd.Endpoint(), kubelet, sd.Bus)
					// Its live pod stays listed, so the later cases keep it.
					checkMatrixRun(t, j, r)
				})
			}
		}
		for _, r := range runs {
			t.Run(r.c.String(), func(t *testing.T) { checkMatrixRun(t, j, r) })
		}
		t.Logf("%d cases in %v", len(matrixCases()), time.Since(start).Round(time.Second))
	})
}

// setupCgroupfsCase makes a live pod and a real orphan (its sandbox
// stopped and removed through CRI) under a cgroup root of the case's own.
func setupCgroupfsCase(t *testing.T, c matrixCase, ctrd *testbed.Containerd) *matrixRun {
	r := &matrixRun{c: c, root: testbed.NewCgroupRoot(t, "matrix")}
	liveUID, orphanUID := testbed.RandomUID(), testbed.RandomUID()
	r.liveRel, r.orphanRel = "kubepods/burstable/pod"+liveUID, "kubepods/besteffort/pod"+orphanUID
	for _, rel := range []string{r.liveRel, r.orphanRel} {
		if err := r.root.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
	}
	ctrd.RunPod(t, r.root.Rel(r.liveRel), liveUID, "matrix-live")
	ctrd.StopRemovePod(t, ctrd.RunPod(t, r.root.Rel(r.orphanRel), orphanUID, "matrix-orphan"))
	if c.kill {
		r.orphanProc = testbed.StartProcess(t, "sleep", "600")
		if err := r.root.AddProc(r.orphanRel, r.orphanProc.PID); err != nil {
			t.Fatal(err)
		}
	}
	r.orphanPath = r.root.Rel(r.orphanRel)
	return r
}

// setupSystemdCase makes, in the manager's kubepods.slice, a live pod (a
// scope named after its sandbox, with a process) and a real orphan: a pod
// slice whose sandbox was removed through CRI and whose container scope
// ended, or, when kill_orphan_processes is on, still holds a process.
func setupSystemdCase(t *testing.T, c matrixCase, ctrd *testbed.Containerd, sd *testbed.UserSystemd) *matrixRun {
	r := &matrixRun{c: c, root: sd.Root}
	liveUID, orphanUID := testbed.RandomUID(), testbed.RandomUID()
	slice := func(uid string) string {
		return "kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, uid)
	}
	r.liveRel, r.orphanRel = slice(liveUID), slice(orphanUID)
	// This containerd cannot place a sandbox in a slice: its cgroup is
	// outside the pod root, and the pod is live by its UID.
	for _, uid := range []string{liveUID, orphanUID} {
		if err := sd.Root.Mkdir("sandboxes/pod" + uid); err != nil {
			t.Fatal(err)
		}
	}
	sb := ctrd.RunPod(t, sd.CgroupPath("sandboxes/pod"+liveUID), liveUID, "matrix-sd-live")
	sd.StartScope(t, r.liveRel+"/crio-"+sb+".scope", testbed.StartProcess(t, "sleep", "600").PID)
	ctrd.StopRemovePod(t, ctrd.RunPod(t, sd.CgroupPath("sandboxes/pod"+orphanUID), orphanUID, "matrix-sd-orphan"))
	r.orphanProc = testbed.StartProcess(t, "sleep", "600")
	sd.StartScope(t, r.orphanRel+"/crio-"+strings.Repeat(orphanUID[:8], 8)+".scope", r.orphanProc.PID)
	if !c.kill {
		// The scope ends with its process; the pod slice stays: the leak.
		_ = syscall.Kill(r.orphanProc.PID, syscall.SIGKILL)
		if !r.orphanProc.Wait(10 * time.Second) {
			t.Fatal("orphan scope's process did not exit")
		}
		deadline := time.Now().Add(10 * time.Second)
		for sd.Root.Exists(r.orphanRel+"/crio-"+strings.Repeat(orphanUID[:8], 8)+".scope") > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	r.orphanPath = sd.CgroupPath(r.orphanRel)
	return r
}

func startMatrixDaemon(t *testing.T, r *matrixRun, bin, endpoint, kubelet, bus string) {
	dir := t.TempDir()
	podRoot := r.root.Rel("kubepods")
	if r.c.driver == "systemd" {
		podRoot = r.root.Rel("kubepods.slice")
	}
	cfg := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf(`[runtime]
endpoint = %q
timeout = "5s"
[cgroup]
pod_root = %q
driver = %q
kubelet_root = %q
[clean]
min_age = "0s"
confirm_passes = 1
max_removal_share = 1.0
use_systemd = %q
systemd_bus = %q
kill_orphan_processes = %v
unit_stop_timeout = "10s"
[daemon]
interval = "1s"
jitter = 0.0
state_dir = %q
[memcg]
mode = %q
[log]
level = %q
format = "journal"
[metrics]
listen = ""
`, endpoint, podRoot, r.c.driver, kubelet, r.c.useSystemd, bus, r.c.kill, filepath.Join(dir, "state"), r.c.memcg, r.c.level)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r.log = filepath.Join(dir, "daemon.log")
	logf, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = testbed.PrivateLockCommand(bin, "run", "--config", cfg)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.started = time.Now()
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
}

func checkMatrixRun(t *testing.T, j *testbed.Journal, r *matrixRun) {
	t.Helper()
	fail := func(format string, args ...any) {
		b, _ := os.ReadFile(r.log)
		t.Fatalf(format+"\n--- daemon stderr:\n%s\n--- journal:\n%s", append(args, b, j.Text(t, "SYSLOG_IDENTIFIER=cgroupcleand"))...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.root.Exists(r.orphanRel) > 0 {
		select {
		case <-r.exited:
			fail("the daemon exited (%v) before the orphan went", r.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			fail("orphan %s still in %d hierarchies after 30 s", r.orphanPath, r.root.Exists(r.orphanRel))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("orphan seen gone %v after the daemon started", time.Since(r.started).Round(time.Millisecond))
	if r.orphanProc != nil && !r.orphanProc.Wait(10*time.Second) {
		fail("the orphan's process %d is still running", r.orphanProc.PID)
	}
	// A pass or two more: the daemon keeps running, the live pod stays.
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-r.exited:
		fail("the daemon exited (%v) after the removal", r.cmd.ProcessState)
	default:
	}
	if n := r.root.Exists(r.liveRel); n == 0 || (r.c.driver == "cgroupfs" && n != len(r.root.Hierarchies)) {
		fail("live pod %s left in %d of %d hierarchies", r.liveRel, n, len(r.root.Hierarchies))
	}
	j.Sync(t)
	records := j.Query(t, audit.CgroupPath+"="+r.orphanPath)
	outcomes := map[string]string{}
	var intents []map[string]string
	removed := false
	for _, e := range records {
		switch id := e[audit.MessageID]; {
		case id == audit.IDActionIntent:
			intents = append(intents, e)
		case audit.IsActionRecord(id):
			outcomes[e[audit.ActionID]] = id
			removed = removed || id == audit.IDOrphanRemoved
		}
	}
	if len(intents) == 0 || !removed {
		fail("journal for %s: %d intents, removed record %v", r.orphanPath, len(intents), removed)
	}
	for _, in := range intents {
		if outcomes[in[audit.ActionID]] == "" {
			fail("intent %s (%s) of %s has no outcome record", in[audit.ActionID], in[audit.Action], r.orphanPath)
		}
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if code := r.cmd.ProcessState.ExitCode(); code != 0 {
			fail("daemon exited %d on SIGTERM", code)
		}
	case <-time.After(15 * time.Second):
		fail("daemon still running 15 s after SIGTERM")
	}
}
