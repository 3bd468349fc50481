//go:build nodeguest

package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const (
	unit       = "cgroupcleand.service"
	configPath = "/etc/cgroupclean/config.toml"
	dropInDir  = "/etc/systemd/system/cgroupcleand.service.d"
	watchdog   = 20 * time.Second
)

// daemonConfig is what an operator of a containerd node writes: the
// containerd socket, and (for the test) short waits.
const daemonConfig = `# written by the node test (an edited config a reinstall must keep)
[runtime]
endpoint = "unix:///run/containerd/containerd.sock"
timeout = "10s"

[clean]
min_age = "0s"
confirm_passes = 2
unit_stop_timeout = "15s"

[daemon]
interval = "3s"
jitter = 0.0
`

// testPod is a pod made the way kubelet makes one with the systemd driver.
type testPod struct {
	qos, uid, slice, dir string
	sandbox, container   string
}

func (p testPod) cgroupPath() string { return strings.TrimPrefix(p.dir, cgroupRoot) }

// TestPackage installs the package as an operator would, enables it, and
// checks it on real pods under systemd (PID 1) on cgroup v2: what it keeps,
// what it removes, its journal, its status, reload, watchdog, sandbox score,
// and the package's remove, reinstall and purge.
func TestPackage(t *testing.T) {
	requireNode(t)
	sh := share(t)
	bus := systemBus(t)
	rt := dialCRI(t, containerdSocket)
	importPause(t, containerdSocket)

	// 1. Install; installing enables and starts nothing.
	mustRun(t, 120*time.Second, "dpkg", "-i", filepath.Join(sh, "cgroupclean.deb"))
	if st := unitProps(t, unit, "ActiveState", "UnitFileState"); st["ActiveState"] != "inactive" || st["UnitFileState"] != "disabled" {
		t.Fatalf("after dpkg -i: %v, want inactive and disabled", st)
	}

	// 2. Pods, before the daemon runs. QoS slices and pod slices first, as
	// kubelet makes them (StartTransientUnit over the system bus), then
	// the sandboxes in them.
	for _, q := range []string{"kubepods.slice", "kubepods-burstable.slice", "kubepods-besteffort.slice"} {
		kubeletSlice(t, bus, q)
	}
	newPod := func(qos, name string, tracked, withContainer bool) *testPod {
		p := &testPod{qos: qos, uid: testbed.RandomUID()}
		p.slice = sliceName(qos, p.uid)
		p.dir = slicePath(p.slice)
		if tracked {
			if err := os.MkdirAll(filepath.Join(kubeletPods, p.uid), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		kubeletSlice(t, bus, p.slice)
		p.sandbox = rt.runPod(t, p.slice, p.uid, name)
		if withContainer {
			p.container = rt.startContainer(t, p.sandbox, "c-"+name)
		}
		if !exists(filepath.Join(p.dir, "cri-containerd-"+p.sandbox+".scope")) {
			t.Fatalf("pod %s: no cri-containerd-%s.scope in %s: containerd is not using the systemd driver", name, p.sandbox, p.dir)
		}
		return p
	}
	t.Cleanup(func() { cleanupPods(t, rt) })

	var live []*testPod
	for _, q := range []string{"guaranteed", "burstable", "besteffort"} {
		live = append(live, newPod(q, "live-"+q, true, true))
	}
	// kubernetes#112151's form: a container scope left in a live pod.
	// systemd has no unit for it any more; the directory stays.
	leaked := filepath.Join(live[1].dir, "cri-containerd-"+randomHex(64)+".scope")
	if err := os.Mkdir(leaked, 0o755); err != nil {
		t.Fatal(err)
	}
	tracked := newPod("burstable", "tracked", true, true)
	rt.stopRemovePod(t, tracked.sandbox)
	orphan := newPod("besteffort", "orphan", false, true)
	rt.stopRemovePod(t, orphan.sandbox)
	if !exists(orphan.dir) {
		t.Fatalf("orphan pod slice %s went with its sandbox: no leak to test", orphan.dir)
	}
	if st := unitProps(t, orphan.slice, "ActiveState"); st["ActiveState"] != "active" {
		t.Fatalf("orphan slice %s: %v, want active (left behind)", orphan.slice, st)
	}
	// An orphan holding a process (a container process that never ended,
	// kubernetes#123766): sandbox gone, a scope with a live process left.
	held := newPod("besteffort", "held", false, false)
	rt.stopRemovePod(t, held.sandbox)
	sleeper := exec.Command("sleep", "3600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	heldScope := "cri-containerd-" + randomHex(64) + ".scope"
	startTransient(t, bus, heldScope, []sddbus.Property{
		sddbus.PropSlice(held.slice), sddbus.PropPids(uint32(sleeper.Process.Pid)),
	})

	// 3. Configure and enable, as an operator: the config, a drop-in with a
	// short watchdog, systemctl enable --now.
	if err := os.WriteFile(configPath, []byte(daemonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 30*time.Second, "cgroupcleand", "check-config", "--config", configPath)
	if err := os.MkdirAll(dropInDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropInDir, "node-test.conf"), fmt.Appendf(nil, "[Service]\nWatchdogSec=%ds\n", int(watchdog.Seconds())), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 30*time.Second, "systemctl", "daemon-reload")
	start := time.Now()
	mustRun(t, 120*time.Second, "systemctl", "enable", "--now", unit)
	t.Logf("systemctl enable --now: %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run(30*time.Second, "journalctl", "-b", "--no-pager", "-u", unit, "-n", "200")
			t.Logf("daemon journal:\n%s", out)
		}
	})

	// 4. The orphans go; wait for it, then two more passes.
	testbed.WaitFor(t, 180*time.Second, 250*time.Millisecond, "the orphan pod slice "+orphan.dir+" to go", func() bool { return !exists(orphan.dir) })
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "the leaked scope "+leaked+" to go", func() bool { return !exists(leaked) })
	t.Logf("orphans removed %s after enable", time.Since(start).Round(time.Second))
	passes := len(journal(t, "-u", unit, "MESSAGE_ID="+audit.IDPassSummary))
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "two more passes", func() bool {
		return len(journal(t, "-u", unit, "MESSAGE_ID="+audit.IDPassSummary)) >= passes+2
	})

	t.Run("live pods and scopes kept", func(t *testing.T) {
		for _, p := range live {
			for _, d := range []string{p.dir, filepath.Join(p.dir, "cri-containerd-"+p.sandbox+".scope"), filepath.Join(p.dir, "cri-containerd-"+p.container+".scope")} {
				if !exists(d) {
					t.Errorf("%s pod: %s is gone", p.qos, d)
				}
			}
			if st := unitProps(t, p.slice, "ActiveState"); st["ActiveState"] != "active" {
				t.Errorf("%s pod slice %s: %v, want active", p.qos, p.slice, st)
			}
		}
	})
	t.Run("kubelet-tracked pod kept", func(t *testing.T) {
		if !exists(tracked.dir) {
			t.Errorf("kubelet-tracked pod %s removed", tracked.dir)
		}
		wantKept(t, tracked.uid, tracked.dir, "kubelet-tracks-pod")
	})
	t.Run("orphan with a process kept", func(t *testing.T) {
		if !exists(filepath.Join(held.dir, heldScope)) {
			t.Errorf("orphan with a live process: %s removed", held.dir)
		}
		if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("the orphan's process %d is gone: %v", sleeper.Process.Pid, err)
		}
		wantKept(t, held.uid, held.dir, "has-processes")
	})
	t.Run("orphan slice stopped through systemd", func(t *testing.T) {
		st := unitProps(t, orphan.slice, "ActiveState", "LoadState")
		if st["ActiveState"] != "inactive" {
			t.Errorf("orphan slice %s after removal: %v, want inactive", orphan.slice, st)
		}
		stops := journal(t, "-u", unit, "MESSAGE_ID="+audit.IDUnitStopped, "UNIT="+orphan.slice)
		if len(stops) != 1 {
			t.Errorf("unit-stopped entries for %s: %d, want 1", orphan.slice, len(stops))
		}
	})
	t.Run("leaked scope removed, its pod kept", func(t *testing.T) {
		if exists(leaked) {
			t.Errorf("leaked scope %s still there", leaked)
		}
		if !exists(live[1].dir) {
			t.Errorf("the leaked scope's live pod %s went too", live[1].dir)
		}
	})
	t.Run("journal: removed entries are exactly the removed paths", func(t *testing.T) {
		got := map[string]map[string]string{}
		for _, e := range journal(t, "-u", unit, "MESSAGE_ID="+audit.IDOrphanRemoved) {
			if _, dup := got[e["CGROUP_PATH"]]; dup {
				t.Errorf("removed twice: %s", e["CGROUP_PATH"])
			}
			got[e["CGROUP_PATH"]] = e
		}
		want := map[string]string{orphan.cgroupPath(): orphan.slice, strings.TrimPrefix(leaked, cgroupRoot): filepath.Base(leaked)}
		var gotPaths []string
		for p := range got {
			gotPaths = append(gotPaths, p)
		}
		sort.Strings(gotPaths)
		if len(got) != len(want) {
			t.Errorf("removed entries for %v, want exactly %v", gotPaths, want)
		}
		for p, u := range want {
			e, ok := got[p]
			if !ok {
				t.Errorf("no removed entry for %s (got %v)", p, gotPaths)
				continue
			}
			if p == orphan.cgroupPath() && e["UNIT"] != u {
				t.Errorf("removed %s: UNIT=%q, want %q", p, e["UNIT"], u)
			}
			if e["DRY_RUN"] != "false" || e["ACTION"] != "remove" {
				t.Errorf("removed %s: DRY_RUN=%q ACTION=%q", p, e["DRY_RUN"], e["ACTION"])
			}
		}
	})
	t.Run("journalctl -x shows the catalog", func(t *testing.T) {
		out := mustRun(t, 60*time.Second, "journalctl", "-b", "--no-pager", "-x", "-u", unit, "MESSAGE_ID="+audit.IDOrphanRemoved)
		for _, want := range []string{"Subject: Orphaned cgroup " + orphan.cgroupPath() + " removed", "Defined-By: cgroupclean"} {
			if !strings.Contains(out, want) {
				t.Errorf("journalctl -x: no %q in\n%s", want, out)
			}
		}
	})
	t.Run("systemctl status shows Status:", func(t *testing.T) {
		out, _ := run(30*time.Second, "systemctl", "status", "--no-pager", unit)
		if !regexp.MustCompile(`Status: "pass \d+ at`).MatchString(out) {
			t.Errorf("systemctl status: no Status: line of a pass:\n%s", out)
		}
	})
	t.Run("reload with a bad config keeps running", func(t *testing.T) { checkBadReload(t) })
	t.Run("watchdog kills a stopped daemon and restarts it", func(t *testing.T) { checkWatchdog(t) })
	t.Run("systemd-analyze security <= 1.5", func(t *testing.T) {
		out := mustRun(t, 120*time.Second, "systemd-analyze", "security", "--no-pager", unit)
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security %s (online): %.1f", unit, score)
		if score > 1.5 {
			t.Errorf("exposure %.1f, want <= 1.5:\n%s", score, out)
		}
	})
	t.Run("remove, reinstall, purge", func(t *testing.T) { checkRemoveReinstallPurge(t, sh) })
}

// wantKept checks the journal says the pod was kept for reason, and never
// removed.
func wantKept(t *testing.T, uid, dir, reason string) {
	t.Helper()
	// Kept orphans are summarised per pass and reason, with example paths.
	found := false
	for _, e := range journal(t, "-u", unit, "MESSAGE_ID="+audit.IDKeptSummary, "REASON="+reason) {
		for _, ex := range strings.Fields(e["EXAMPLES"]) {
			if strings.HasSuffix(dir, ex) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("pod %s: no kept summary with REASON=%s naming %s", uid, reason, dir)
	}
	if rm := journal(t, "-u", unit, "MESSAGE_ID="+audit.IDOrphanRemoved, "POD_UID="+uid); len(rm) != 0 {
		t.Errorf("pod %s: removed entries %v", uid, rm)
	}
}

func mainPID(t testing.TB) string { return unitProps(t, unit, "MainPID")["MainPID"] }

func checkBadReload(t *testing.T) {
	pid := mainPID(t)
	since := time.Now()
	bad := strings.Replace(daemonConfig, "confirm_passes = 2", "confirm_passes = 0", 1)
	if err := os.WriteFile(configPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.WriteFile(configPath, []byte(daemonConfig), 0o644); err != nil {
			t.Error(err)
		}
		mustRun(t, 60*time.Second, "systemctl", "reload", unit)
		testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "the good config to be applied again", func() bool {
			return len(journal(t, "-u", unit, "--since", "@"+strconv.FormatInt(since.Unix(), 10), "MESSAGE_ID="+audit.IDConfigReloaded, "REASON=applied")) > 0
		})
	}()
	mustRun(t, 60*time.Second, "systemctl", "reload", unit)
	var refused []map[string]string
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "the refused reload in the journal", func() bool {
		refused = journal(t, "-u", unit, "MESSAGE_ID="+audit.IDConfigReloaded, "REASON=invalid")
		return len(refused) > 0
	})
	if e := refused[len(refused)-1]; !strings.Contains(e["ERROR"], "clean.confirm_passes") {
		t.Errorf("refused reload: ERROR=%q does not name clean.confirm_passes", e["ERROR"])
	}
	if st := unitProps(t, unit, "ActiveState", "MainPID"); st["ActiveState"] != "active" || st["MainPID"] != pid {
		t.Errorf("after a bad reload: %v, want active with MainPID %s", st, pid)
	}
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "the status line to say the reload failed", func() bool {
		out, _ := run(30*time.Second, "systemctl", "status", "--no-pager", unit)
		return strings.Contains(out, "config reload failed")
	})
}

func checkWatchdog(t *testing.T) {
	st := unitProps(t, unit, "NRestarts", "MainPID")
	restarts, _ := strconv.Atoi(st["NRestarts"])
	pid, _ := strconv.Atoi(st["MainPID"])
	if pid <= 1 {
		t.Fatalf("no main PID: %v", st)
	}
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT) // a no-op once it is dead
	sawWatchdog := false
	testbed.WaitFor(t, watchdog*4+60*time.Second, 250*time.Millisecond, "a restart after the watchdog", func() bool {
		s := unitProps(t, unit, "NRestarts", "MainPID", "Result", "ActiveState")
		if s["Result"] == "watchdog" {
			sawWatchdog = true
		}
		n, _ := strconv.Atoi(s["NRestarts"])
		return n > restarts && s["ActiveState"] == "active" && s["MainPID"] != strconv.Itoa(pid)
	})
	t.Logf("stopped daemon replaced after %s", time.Since(stopped).Round(time.Second))
	results := journal(t, "-u", unit, "UNIT_RESULT=watchdog")
	if !sawWatchdog && len(results) == 0 {
		t.Errorf("restarted, but neither Result=watchdog nor a journal entry UNIT_RESULT=watchdog was seen")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the stopped daemon %d is still alive", pid)
	}
}

func checkRemoveReinstallPurge(t *testing.T, sh string) {
	mustRun(t, 180*time.Second, "apt-get", "remove", "-y", "cgroupclean")
	st := unitProps(t, unit, "ActiveState", "LoadState")
	if st["ActiveState"] == "active" || st["LoadState"] == "loaded" {
		t.Errorf("after apt-get remove: %v, want stopped and the unit gone", st)
	}
	if links, _ := filepath.Glob("/etc/systemd/system/*.wants/" + unit); len(links) != 0 {
		t.Errorf("after apt-get remove: still enabled: %v", links)
	}
	if data, err := os.ReadFile(configPath); err != nil || string(data) != daemonConfig {
		t.Errorf("after apt-get remove: the config is not kept as it was (%v)", err)
	}

	mustRun(t, 120*time.Second, "dpkg", "-i", filepath.Join(sh, "cgroupclean.deb"))
	if data, err := os.ReadFile(configPath); err != nil || string(data) != daemonConfig {
		t.Errorf("after reinstall: the edited config was not kept (%v):\n%s", err, data)
	}
	if st := unitProps(t, unit, "ActiveState", "UnitFileState"); st["ActiveState"] != "inactive" || st["UnitFileState"] != "disabled" {
		t.Errorf("after reinstall: %v, want inactive and disabled", st)
	}

	// The drop-in is the operator's own file: the package leaves it, so
	// the operator removes it.
	if err := os.RemoveAll(dropInDir); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 180*time.Second, "apt-get", "purge", "-y", "cgroupclean")
	if out, err := run(30*time.Second, "dpkg-query", "-W", "-f=${Status}", "cgroupclean"); err == nil && !strings.Contains(out, "not-installed") {
		t.Errorf("after purge, dpkg knows the package: %q", out)
	}
	out, _ := run(60*time.Second, "find", "/etc", "/usr", "/var/lib/dpkg/info", "/var/lib/systemd", "-name", "*cgroupclean*")
	if strings.TrimSpace(out) != "" {
		t.Errorf("after purge, left behind:\n%s", out)
	}
}

// cleanupPods removes the test's sandboxes (containerd stops their scopes).
func cleanupPods(t *testing.T, rt *cri) {
	for id := range rt.pods {
		ctx, cancel := criCtx()
		_, _ = rt.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		_, _ = rt.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		cancel()
	}
}
