package doctor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// Orphans nobody can remove, made for real on cgroupfs: a bind mount on a
// child directory, a task blocked in D state on a frozen file system, and
// a task held by the v1 freezer. rmdir fails with EBUSY on each; doctor
// names each cause with its evidence, and nothing on the plain orphan.
func TestBusyCausesOnRealCgroups(t *testing.T) {
	n := newNode(t)
	pids := hier(t, n.root, func(h hierarchy.Hierarchy) bool { return h.Version == 1 && h.Has("pids") }, "a v1 pids hierarchy")
	freezer := hier(t, n.root, func(h hierarchy.Hierarchy) bool { return h.Version == 1 && h.Has("freezer") }, "a v1 freezer hierarchy")
	orphan := func() string {
		rel := "kubepods/burstable/pod" + testbed.RandomUID()
		if err := n.root.Mkdir(rel + "/child"); err != nil {
			t.Fatal(err)
		}
		return rel
	}
	plain, mounted, stuck, frozen := orphan(), orphan(), orphan(), orphan()

	// A bind mount of the child on itself: the child is a mount point.
	mp := pids.Path(n.root.Rel(mounted + "/child"))
	if err := syscall.Mount(mp, mp, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", mp, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mp, 0); err != nil {
			t.Errorf("unmount %s: %v", mp, err)
		}
	})
	if err := syscall.Rmdir(mp); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rmdir of the mount point %s: %v, want EBUSY", mp, err)
	}

	writer, _ := testbed.StuckWriter(t, "", func(pid int) error { return n.root.AddProc(stuck+"/child", pid) })

	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(freezer.Path(n.root.Rel(frozen+"/child")), "freezer.state")
	t.Cleanup(func() {
		_ = os.WriteFile(state, []byte("THAWED"), 0o644)
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
	})
	if err := n.root.AddProc(frozen+"/child", sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("FROZEN"), 0o644); err != nil {
		t.Fatal(err)
	}
	testbed.WaitFor(t, 10*time.Second, 20*time.Millisecond, "the sleeper to freeze", func() bool {
		b, _ := os.ReadFile(state)
		return strings.TrimSpace(string(b)) == "FROZEN"
	})
	for _, rel := range []string{stuck, frozen} {
		if err := syscall.Rmdir(pids.Path(n.root.Rel(rel + "/child"))); !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("rmdir of %s/child: %v, want EBUSY", rel, err)
		}
	}

	rep := n.doctor(t, 200*time.Millisecond, 0)
	byPath := func(id, rel string) *Finding {
		for _, f := range rep.Find(id) {
			if f.Subject == n.root.Rel(rel) {
				return &f
			}
		}
		return nil
	}
	if f := byPath(IDBusyMount, mounted); f == nil {
		t.Errorf("no %s for %s", IDBusyMount, mounted)
	} else if !strings.Contains(f.Measured, mp) || f.Severity != Warn || !strings.Contains(f.Action, "umount "+mp) {
		t.Errorf("%s: %+v, want the mount point %s as evidence and its umount as the action", IDBusyMount, *f, mp)
	}
	if f := byPath(IDBusyDState, stuck); f == nil {
		t.Errorf("no %s for %s", IDBusyDState, stuck)
	} else if !strings.Contains(f.Measured, "percpu_rwsem_wait") || !strings.Contains(f.Measured, "pid "+strconv.Itoa(writer)) {
		t.Errorf("%s: %q, want pid %d with wchan percpu_rwsem_wait", IDBusyDState, f.Measured, writer)
	}
	if f := byPath(IDBusyFrozen, frozen); f == nil {
		t.Errorf("no %s for %s", IDBusyFrozen, frozen)
	} else if !strings.Contains(f.Measured, state[:len(state)-len("/freezer.state")]) || !strings.Contains(f.Measured, "pid "+strconv.Itoa(sleeper.Process.Pid)) {
		t.Errorf("%s: %q, want the frozen cgroup and its task %d", IDBusyFrozen, f.Measured, sleeper.Process.Pid)
	}
	// A frozen task is the freezer's, not a D-state finding of its own.
	if f := byPath(IDBusyDState, frozen); f != nil {
		t.Errorf("the frozen sleeper also reported as %s: %q", IDBusyDState, f.Measured)
	}
	for _, id := range []string{IDBusyMount, IDBusyDState, IDBusyFrozen} {
		if f := byPath(id, plain); f != nil {
			t.Errorf("the plain orphan %s reported as %s: %q", plain, id, f.Measured)
		}
	}
	if pid, _ := findProcess("/proc", "kubelet"); pid == 0 && len(rep.Find(IDKubeletRetry)) != 0 {
		t.Errorf("no kubelet runs here, yet %+v", rep.Find(IDKubeletRetry))
	}

	// The daemon's periodic checks count the same causes for the fleet
	// view (cgroupclean_doctor_findings), one orphan each.
	ctx := context.Background()
	in := Input{Config: n.cfg}
	in.Scan, in.ScanErr = (&engine.Engine{Config: n.cfg, Runtime: n.client}).Scan(ctx, nil)
	counts := CountPeriodic(RunPeriodic(ctx, in, nil, nil))
	for _, id := range []string{IDBusyMount, IDBusyDState, IDBusyFrozen} {
		if got := counts[PeriodicKey{id, MetricWarning}]; got != 1 {
			t.Errorf("periodic count of %s = %d, want 1 (counts %v)", id, got, counts)
		}
	}
}

func TestParseMountPoints(t *testing.T) {
	data := []byte("25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
		"49 39 0:36 /p/child /sys/fs/cgroup/pids/p/child rw,relatime - cgroup cgroup rw,pids\n" +
		"50 1 0:40 / /mnt/with\\040space\\134x rw - tmpfs none rw\n")
	got, err := parseMountPoints(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/sys/fs/cgroup", "/sys/fs/cgroup/pids/p/child", `/mnt/with space\x`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := parseMountPoints([]byte("1 2 3\n")); err == nil {
		t.Fatal("a short line: no error")
	}
}

func TestParseStat(t *testing.T) {
	comm, st, ok := parseStat([]byte("42 (a (b) c) D 1 42 42 0 -1"))
	if !ok || comm != "a (b) c" || st != 'D' {
		t.Fatalf("got %q %c %v", comm, st, ok)
	}
	if _, _, ok := parseStat([]byte("42 (x")); ok {
		t.Fatal("a cut line parsed")
	}
}

func TestRetryFinding(t *testing.T) {
	log := []byte("E1206 10:00:00.1 1 pod_container_manager_linux.go:1] \"Failed to delete cgroup paths\" cgroupName=[kubepods]\nI1206 other\n\"Failed to delete cgroup paths\"\n")
	if n := countLines(log, KubeletRetryLine); n != 2 {
		t.Fatalf("countLines = %d, want 2", n)
	}
	quiet := (&retryCost{pid: 7, unit: "kubelet.service", cgroup: "/system.slice/kubelet.service", window: time.Second, cpuShare: 0.12}).finding()
	if quiet.Severity != OK || quiet.Action != "" || !strings.Contains(quiet.Measured, "12% of one CPU") {
		t.Errorf("no retries: %+v", quiet)
	}
	busy := (&retryCost{pid: 7, unit: "kubelet.service", cgroup: "/system.slice/kubelet.service", linesPerMin: 700, window: time.Second, cpuShare: 0.78}).finding()
	if busy.Severity != Warn || busy.Value != 700 || !strings.Contains(busy.Action, "leak.busy") {
		t.Errorf("700 retries a minute: %+v", busy)
	}
	unsampled := (&retryCost{pid: 7, unit: "kubelet.service", cgroup: "/system.slice/kubelet.service", linesPerMin: 3}).finding()
	if strings.Contains(unsampled.Measured, "CPU") || unsampled.Severity != Warn {
		t.Errorf("no CPU window: %+v", unsampled)
	}
	noUnit := (&retryCost{pid: 7, cgroup: "/user.slice", cpuErr: errors.New("x")}).finding()
	if !strings.Contains(noUnit.Measured, "not a systemd service") || !strings.Contains(noUnit.Measured, "could not be read") {
		t.Errorf("kubelet outside a unit: %q", noUnit.Measured)
	}
}
