package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestSystemdDriverStopsOrphanSliceOnly runs the systemd-driver path
// against a real systemd manager on D-Bus and a real containerd: the
// orphan pod's slice is stopped with StopUnit (systemd removes its cgroup),
// the leftovers in the other hierarchies go with rmdir, and the live pod's
// slice and scope are untouched.
func TestSystemdDriverStopsOrphanSliceOnly(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	ctrd := testbed.StartContainerd(t)
	ctx := context.Background()

	slicePath := func(uid string) string {
		return "kubepods.slice/kubepods-burstable.slice/" + names.SystemdPodSlice(names.Burstable, uid)
	}
	// The live pod: a container scope with a process, and a real sandbox
	// of that pod UID in the runtime. (containerd's CRI turns a ".slice"
	// parent into systemd's slice:prefix:name form, which this cgroupfs
	// containerd cannot place, so its sandbox cgroup goes elsewhere under
	// the root: liveness is decided by pod UID.)
	liveUID := testbed.RandomUID()
	liveProc := testbed.StartProcess(t, "sleep", "300")
	sd.StartScope(t, slicePath(liveUID)+"/crio-"+hexID(10)+".scope", liveProc.PID)
	ctrd.RunPod(t, sd.CgroupPath("sandboxes/pod"+liveUID), liveUID, "live")

	// The orphan pod: its scope's process ended, its slice stays active
	// (systemd keeps slices until stopped) and the runtime has no sandbox.
	orphanUID := testbed.RandomUID()
	orphanProc := testbed.StartProcess(t, "sleep", "300")
	sd.StartScope(t, slicePath(orphanUID)+"/crio-"+hexID(11)+".scope", orphanProc.PID)
	if err := syscallKill(orphanProc.PID); err != nil {
		t.Fatal(err)
	}
	orphanProc.Wait(5 * time.Second)
	// A leftover dir in a hierarchy systemd does not manage, as runc leaves.
	must(t, sd.Root.Mkdir(slicePath(orphanUID)+"/crio-"+hexID(12)+".scope"))

	m := sd.Manager(t)
	waitActive(t, m, names.SystemdPodSlice(names.Burstable, orphanUID))

	cfg := sliceConfig(t, ctrd, sd.Root.Rel("kubepods.slice"))
	cfg.Clean.UseSystemd, cfg.Clean.SystemdBus = "always", sd.Bus
	c := dialCRI(t, cfg)
	e := &engine.Engine{Config: cfg, Runtime: c, Units: engine.SystemdUnits(m, 10*time.Second)}

	liveDirs := sd.Root.Exists(slicePath(liveUID) + "/crio-" + hexID(10) + ".scope")
	// Every hierarchy systemd manages: name=systemd and the unified one on
	// a hybrid node, the one v2 hierarchy on a v2 node.
	if liveDirs < min(2, len(sd.Root.Hierarchies)) {
		t.Fatalf("live scope in only %d hierarchies", liveDirs)
	}
	s, err := e.Scan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver != names.Systemd {
		t.Fatalf("driver %s", s.Driver)
	}
	rm := decide.Removals(s.Plan)
	if len(rm) != 1 || rm[0].PodUID != orphanUID || rm[0].Unit != names.SystemdPodSlice(names.Burstable, orphanUID) {
		t.Fatalf("removals %+v (kept %v)", rm, s.Plan.Kept)
	}
	results := e.Apply(ctx, s, false)
	if len(results) != 1 || results[0].Outcome != engine.Removed {
		t.Fatalf("results %+v", results)
	}
	if !strings.HasPrefix(results[0].UnitStopped, rm[0].Unit) {
		t.Fatalf("the orphan slice was not stopped through systemd: %+v", results[0])
	}
	if n := sd.Root.Exists(slicePath(orphanUID)); n != 0 {
		t.Fatalf("orphan pod slice still in %d hierarchies", n)
	}
	u, err := m.Lookup(ctx, names.SystemdPodSlice(names.Burstable, orphanUID))
	if err != nil || u.ActiveState != "inactive" {
		t.Fatalf("orphan slice after stop: %+v %v", u, err)
	}
	// The live pod: scope active, process alive, dirs everywhere they were.
	lu, err := m.Lookup(ctx, "crio-"+hexID(10)+".scope")
	if err != nil || lu.ActiveState != "active" || !liveProc.Alive() {
		t.Fatalf("live scope: %+v %v alive=%v", lu, err, liveProc.Alive())
	}
	if n := sd.Root.Exists(slicePath(liveUID) + "/crio-" + hexID(10) + ".scope"); n != liveDirs {
		t.Fatalf("live scope in %d hierarchies after the pass, %d before", n, liveDirs)
	}
}

// TestSystemdUnreachableKeepsUnits: with the systemd driver and no
// systemd to ask, a pod slice is kept, never rmdir'ed behind its back.
func TestSystemdUnreachableKeepsUnits(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "sdgone")
	ctrd := testbed.StartContainerd(t)
	uid := testbed.RandomUID()
	must(t, r.Mkdir("kubepods.slice/kubepods-besteffort.slice/"+names.SystemdPodSlice(names.BestEffort, uid)))
	cfg := sliceConfig(t, ctrd, r.Rel("kubepods.slice"))
	c := dialCRI(t, cfg)
	e := &engine.Engine{Config: cfg, Runtime: c, UnitsErr: unreachableSystemd(t)}
	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.SystemdUnreachable {
		t.Fatalf("results %+v", results)
	}
	if r.Exists("kubepods.slice/kubepods-besteffort.slice/"+names.SystemdPodSlice(names.BestEffort, uid)) != len(r.Hierarchies) {
		t.Fatal("a slice was removed behind systemd's back while systemd could not be asked")
	}
}

// sliceConfig is the configuration of a systemd-driver pod root under
// the test's root, with a kubelet dir of its own, removing an orphan at
// its first sighting.
func sliceConfig(t *testing.T, ctrd *testbed.Containerd, podRoot string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Runtime.Endpoint = ctrd.Endpoint()
	cfg.Cgroup.PodRoot, cfg.Cgroup.KubeletRoot = podRoot, t.TempDir()
	must(t, os.Mkdir(filepath.Join(cfg.Cgroup.KubeletRoot, "pods"), 0o755))
	cfg.Clean.MinAge, cfg.Clean.ConfirmPasses, cfg.Clean.MaxRemovalShare = config.Duration{}, 1, 1
	return cfg
}

func waitActive(t *testing.T, m *sdunit.Manager, unit string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := m.Lookup(context.Background(), unit)
		if err == nil && u.ActiveState == "active" && u.ControlGroup != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not active: %+v %v", unit, u, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unreachableSystemd is the error of connecting to a bus that does not
// exist, as the engine gets it when systemd cannot be asked.
func unreachableSystemd(t *testing.T) error {
	t.Helper()
	_, err := sdunit.Connect(context.Background(), "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	if err == nil {
		t.Fatal("connected to a bus that does not exist")
	}
	return err
}
