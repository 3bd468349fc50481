package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const unitName = "cgroupcleand-test.service"

// service is cgroupcleand running as a Type=notify unit with a watchdog
// under a real systemd --user manager, against a real containerd and a
// kubelet-like pod root inside the test's own cgroup root.
type service struct {
	sd      *testbed.UserSystemd
	conn    *sddbus.Conn
	root    *testbed.CgroupRoot
	ctrd    *testbed.Containerd
	cfgPath string
	logPath string
	kubelet string
	// endsPath collects "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" of every run.
	endsPath string
}

// buildDaemon compiles cmd/cgroupcleand into a temp dir.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cgroupcleand")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cgroupcleand")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// goodConfig runs a pass every second, removes an orphan at its second
// sighting, and keeps every call well inside WatchdogSec=2s.
func (s *service) goodConfig() string {
	return testbed.NodeConfig{
		Endpoint: s.ctrd.Endpoint(), Timeout: time.Second, PodRoot: s.root.Rel("kubepods"), KubeletRoot: s.kubelet,
		StateDir: filepath.Join(filepath.Dir(s.kubelet), "state"), Interval: time.Second,
		ConfirmPasses: 2, Clean: []string{"max_removal_share = 1.0"},
	}.TOML()
}

func (s *service) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(s.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *service) ends() []string {
	b, _ := os.ReadFile(s.endsPath)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (s *service) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *service) prop(t *testing.T, name string) any {
	t.Helper()
	p, err := s.conn.GetUnitTypePropertyContext(context.Background(), unitName, "Service", name)
	if err != nil {
		p, err = s.conn.GetUnitPropertyContext(context.Background(), unitName, name)
	}
	if err != nil {
		t.Fatalf("unit property %s: %v", name, err)
	}
	return p.Value.Value()
}

// waitFor polls cond every 20 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", limit, what)
	return 0
}

func (s *service) job(t *testing.T, verb string, f func(context.Context, string, string, chan<- string) (int, error)) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch := make(chan string, 1)
	start := time.Now()
	if _, err := f(ctx, unitName, "replace", ch); err != nil {
		t.Fatalf("%s %s: %v", verb, unitName, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			t.Fatalf("%s %s: job %s\n--- daemon log:\n%s", verb, unitName, r, s.log())
		}
	case <-ctx.Done():
		t.Fatalf("%s %s: %v", verb, unitName, ctx.Err())
	}
	return time.Since(start)
}

// systemctl runs `systemctl --user` against the test manager.
func (s *service) systemctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("systemctl", append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(s.sd.Dir, "xdg"), "DBUS_SESSION_BUS_ADDRESS="+s.sd.Bus, "SYSTEMD_COLORS=0")
	out, _ := cmd.CombinedOutput() // status exits 3 for inactive units
	return string(out)
}

// orphan runs a sandbox in a fresh pod cgroup, then stops and removes it:
// the pod<uid> cgroup stays behind, as when kubelet loses track of a pod.
func (s *service) orphan(t *testing.T) string {
	t.Helper()
	uid := testbed.RandomUID()
	rel := "kubepods/burstable/pod" + uid
	if err := s.root.Mkdir(rel); err != nil {
		t.Fatal(err)
	}
	sb := s.ctrd.RunPod(t, s.root.Rel(rel), uid, "orphan-"+uid[:8])
	s.ctrd.StopRemovePod(t, sb)
	return rel
}

// stallingSocket accepts connections and never answers: a CRI call on it
// hangs until its own deadline.
func stallingSocket(t *testing.T) (path string, closeIt func()) {
	t.Helper()
	dir, err := os.MkdirTemp("/run", "cgstall-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path = filepath.Join(dir, "stall.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	closed := false
	closeIt = func() {
		if closed {
			return
		}
		closed = true
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	}
	t.Cleanup(closeIt)
	return path, closeIt
}

// TestDaemonUnderSystemd runs the daemon as a Type=notify service with
// WatchdogSec=2s under a real systemd --user manager and walks through
// its life: start, removal after confirm_passes, STATUS, a broken reload,
// a stalled runtime ending in a watchdog restart, a clean stop.
func TestDaemonUnderSystemd(t *testing.T) {
	bin := buildDaemon(t)
	sd := testbed.StartUserSystemd(t)
	root := testbed.NewCgroupRoot(t, "daemon")
	ctrd := testbed.StartContainerd(t)
	dir := t.TempDir()
	s := &service{sd: sd, conn: sd.Conn(t), root: root, ctrd: ctrd,
		cfgPath: filepath.Join(dir, "config.toml"), logPath: filepath.Join(dir, "daemon.log"), kubelet: filepath.Join(dir, "kubelet"), endsPath: filepath.Join(dir, "ends")}
	if err := os.MkdirAll(filepath.Join(s.kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("--- daemon log:\n%s", s.log())
		}
	}()

	// A live pod (sandbox with a container) and an orphan pod cgroup.
	liveUID := testbed.RandomUID()
	liveRel := "kubepods/burstable/pod" + liveUID
	if err := root.Mkdir(liveRel); err != nil {
		t.Fatal(err)
	}
	liveSB := ctrd.RunPod(t, root.Rel(liveRel), liveUID, "live")
	ctrd.CreateStartContainer(t, liveSB, "live-c")
	liveDirs := dirCount(root, liveRel)
	orphan1 := s.orphan(t)
	all := len(root.Hierarchies)
	if root.Exists(orphan1) != all {
		t.Fatalf("orphan cgroup not in every hierarchy")
	}
	s.writeConfig(t, s.goodConfig())

	unit := fmt.Sprintf(`[Unit]
Description=cgroupcleand under test

[Service]
Type=notify
ExecStart=%s run --config %s
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=2s
Restart=on-failure
RestartSec=3s
TimeoutStartSec=30s
TimeoutStopSec=30s
StandardOutput=append:%s
StandardError=append:%s
# How each run ended, as systemd saw it (the unit is unloaded once inactive).
ExecStopPost=/bin/sh -c 'echo "$${SERVICE_RESULT} $${EXIT_CODE} $${EXIT_STATUS}" >> %s'
`, bin, s.cfgPath, s.logPath, s.logPath, s.endsPath)
	unitPath := filepath.Join(sd.Dir, "config", "systemd", "user", unitName)
	if err := os.WriteFile(unitPath, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.ReloadContext(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Start: the job ends when the daemon says READY=1, after its first pass.
	took := s.job(t, "start", s.conn.StartUnitContext)
	if st := s.prop(t, "ActiveState"); st != "active" {
		t.Fatalf("ActiveState %v after start", st)
	}
	t.Logf("start job done (READY=1 after the first pass) in %v", took.Round(time.Millisecond))
	mainPID := s.prop(t, "MainPID").(uint32)
	if wd := s.prop(t, "WatchdogUSec").(uint64); wd != 2_000_000 {
		t.Fatalf("WatchdogUSec %d", wd)
	}

	// The orphan goes at its second sighting; the live pod never.
	gone := waitFor(t, 15*time.Second, "orphan "+orphan1+" not removed", func() bool { return root.Exists(orphan1) == 0 })
	t.Logf("orphan removed %v after READY", gone.Round(time.Millisecond))
	path1 := root.Rel(orphan1)
	// Kept orphans are summarised per reason, the path among the EXAMPLES.
	kept := logLine(t, s.log(), "EXAMPLES="+path1, "REASON=awaiting-confirmation")
	removed := logLine(t, s.log(), "CGROUP_PATH="+path1, "removed orphan pod")
	if !strings.Contains(kept, "PASS=1 ") || !strings.Contains(removed, "PASS=2 ") {
		t.Fatalf("want kept at pass 1 (awaiting-confirmation) and removed at pass 2:\n%s\n%s", kept, removed)
	}

	// STATUS= is the last pass's summary, in the unit and in systemctl status.
	var status string
	waitFor(t, 5*time.Second, "no STATUS with the removal", func() bool {
		status = s.prop(t, "StatusText").(string)
		return strings.Contains(status, "2 pod cgroups") || strings.Contains(status, "1 pod cgroup: 1 live, 0 orphaned")
	})
	out := s.systemctl(t, "status", unitName)
	if !strings.Contains(out, "Status: \"pass ") || !strings.Contains(out, "pod cgroup") || !strings.Contains(out, "active (running)") {
		t.Fatalf("systemctl status does not show the STATUS line:\n%s", out)
	}
	t.Logf("systemctl status shows: %s", lineWith(out, "Status:"))

	// SIGHUP (systemctl reload) with a broken file: logged, old config kept.
	s.writeConfig(t, strings.Replace(s.goodConfig(), `interval = "1s"`, `interval = "soon"`, 1))
	s.job(t, "reload", s.conn.ReloadUnitContext)
	waitFor(t, 5*time.Second, "broken config not reported", func() bool {
		return strings.Contains(s.log(), "config reload failed") && strings.Contains(s.prop(t, "StatusText").(string), "config reload failed")
	})
	bad := logLine(t, s.log(), "config reload failed")
	if !strings.Contains(bad, "daemon.interval (line ") || !strings.Contains(bad, "REASON=invalid") || !strings.Contains(bad, "MESSAGE_ID=5c7e9a1b3d5f4e8a9b2d4f6a8c0e2d31") {
		t.Fatalf("reload error does not name key, line, reason, message id:\n%s", bad)
	}
	// Still the same process, still active, and passes still remove orphans.
	orphan2 := s.orphan(t)
	gone2 := waitFor(t, 15*time.Second, "orphan made after the broken reload not removed", func() bool { return root.Exists(orphan2) == 0 })
	if st, pid := s.prop(t, "ActiveState"), s.prop(t, "MainPID").(uint32); st != "active" || pid != mainPID {
		t.Fatalf("after the broken reload: %v, pid %d (was %d)", st, pid, mainPID)
	}
	t.Logf("broken reload: old config kept, next orphan removed after %v", gone2.Round(time.Millisecond))

	// A runtime that accepts and never answers, with runtime.timeout (60s)
	// beyond WatchdogSec: the hung pass must end in a watchdog restart.
	stall, closeStall := stallingSocket(t)
	stallCfg := strings.Replace(s.goodConfig(), s.ctrd.Endpoint(), "unix://"+stall, 1)
	stallCfg = strings.Replace(stallCfg, `timeout = "1s"`, `timeout = "60s"`, 1)
	s.writeConfig(t, stallCfg)
	restartsBefore := s.prop(t, "NRestarts").(uint32)
	s.job(t, "reload", s.conn.ReloadUnitContext)
	var sub string
	killedAfter := waitFor(t, 20*time.Second, "hung pass did not end the service", func() bool {
		sub = s.prop(t, "SubState").(string)
		return sub != "running" && sub != "reload"
	})
	// Back to a working runtime before systemd restarts it (RestartSec=3s);
	// closing the stalling socket makes sure the new process is not stuck.
	s.writeConfig(t, s.goodConfig())
	closeStall()
	// systemd enters stop-watchdog only on a watchdog timeout, and keeps
	// Result=watchdog until the restart.
	result := ""
	waitFor(t, 5*time.Second, "no watchdog result (sub-state "+sub+")", func() bool {
		result = s.prop(t, "Result").(string)
		return result == "watchdog" || s.prop(t, "ActiveState") == "active"
	})
	if sub != "stop-watchdog" && result != "watchdog" {
		t.Fatalf("service ended in sub-state %s, result %s: not the watchdog", sub, result)
	}
	t.Logf("watchdog ended the service %v after the reload to the stalling runtime (sub-state %s, result %s)", killedAfter.Round(time.Millisecond), sub, result)
	back := waitFor(t, 30*time.Second, "service not restarted", func() bool {
		return s.prop(t, "ActiveState") == "active" && s.prop(t, "MainPID").(uint32) != mainPID && s.prop(t, "SubState") == "running"
	})
	if got := s.ends(); len(got) != 1 || !strings.HasPrefix(got[0], "watchdog ") {
		t.Fatalf("first run ended %q, want a watchdog result", got)
	}
	t.Logf("restarted and READY again %v later", back.Round(time.Millisecond))
	if n := s.prop(t, "NRestarts").(uint32); n != restartsBefore+1 {
		t.Fatalf("NRestarts %d, want %d", n, restartsBefore+1)
	}
	stalled := logLine(t, s.log(), "withholding the watchdog ping")
	if !strings.Contains(stalled, "STAGE=cri") {
		t.Fatalf("stall log does not name the CRI stage: %s", stalled)
	}
	if !strings.Contains(s.log(), "SIGABRT") {
		t.Fatalf("no SIGABRT stack dump in the daemon log")
	}

	// The restarted daemon works: a new orphan goes after two passes.
	orphan3 := s.orphan(t)
	waitFor(t, 15*time.Second, "orphan not removed after the restart", func() bool { return root.Exists(orphan3) == 0 })

	// Clean stop: exit 0, inactive, result success.
	took = s.job(t, "stop", s.conn.StopUnitContext)
	if st := s.prop(t, "ActiveState"); st != "inactive" {
		t.Fatalf("after stop: %v", st)
	}
	// The Go runtime turns the watchdog's SIGABRT into a stack dump and exit 2.
	if got, want := s.ends(), []string{"watchdog exited 2", "success exited 0"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("runs ended %q, want %q", got, want)
	}
	t.Logf("stop job done in %v", took.Round(time.Millisecond))
	if !strings.Contains(s.log(), "cgroupcleand stopping") {
		t.Fatal("no stopping entry in the log")
	}

	// The live pod lost nothing through all of it.
	if got := dirCount(root, liveRel); got != liveDirs || root.Exists(liveRel) != all {
		t.Fatalf("live pod cgroup dirs: %d, had %d", got, liveDirs)
	}
	if l := logLineOrEmpty(s.log(), "CGROUP_PATH="+root.Rel(liveRel)+" ", "removed orphan"); l != "" {
		t.Fatalf("the live pod appears in a removal entry: %s", l)
	}
}

// dirCount counts the directories at and under rel in every hierarchy.
func dirCount(r *testbed.CgroupRoot, rel string) int {
	n := 0
	for _, h := range r.Hierarchies {
		_ = filepath.WalkDir(filepath.Join(h.Path(r.Name), rel), func(_ string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// logLine returns the first log line containing every part.
func logLine(t *testing.T, log string, parts ...string) string {
	t.Helper()
	if l := logLineOrEmpty(log, parts...); l != "" {
		return l
	}
	t.Fatalf("no log line with %q", parts)
	return ""
}

func logLineOrEmpty(log string, parts ...string) string {
next:
	for _, l := range strings.Split(log, "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return l
	}
	return ""
}

func lineWith(out, part string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, part) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
