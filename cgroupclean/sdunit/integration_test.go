package sdunit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// pod is a kubelet-like burstable pod (systemd driver) with one CRI-O
// container scope holding a process the test started.
type pod struct {
	slice, scope         string // unit names
	slicePath, scopePath string // unit paths below the manager's root
	sliceCg, scopeCg     string // cgroup paths from the hierarchy root
	proc                 *testbed.Process
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startPod puts a new process (argv, default sleep) in
// kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/crio-<64hex>.scope.
func startPod(t *testing.T, sd *testbed.UserSystemd, argv []string, props ...sddbus.Property) pod {
	t.Helper()
	uid := strings.ReplaceAll(fmt.Sprintf("%s-%s-4%s-8%s-%s", randHex(4), randHex(2), randHex(2)[1:], randHex(2)[1:], randHex(6)), "-", "_")
	var p pod
	p.slice = "kubepods-burstable-pod" + uid + ".slice"
	p.scope = "crio-" + randHex(32) + ".scope"
	p.slicePath = "kubepods.slice/kubepods-burstable.slice/" + p.slice
	p.scopePath = p.slicePath + "/" + p.scope
	if argv == nil {
		argv = []string{"sleep", "300"}
	}
	p.proc = testbed.StartProcess(t, argv...)
	if argv[0] == "sh" {
		waitIgnoresTerm(t, p.proc.PID)
	}
	p.scopeCg = sd.StartScope(t, p.scopePath, p.proc.PID, props...)
	p.sliceCg = sd.CgroupPath(p.slicePath)
	return p
}

// ignoreTerm runs a process that ignores SIGTERM (the disposition survives
// exec), like a container stuck in shutdown.
var ignoreTerm = []string{"sh", "-c", "trap '' TERM; exec sleep 300"}

// waitIgnoresTerm waits until the shell has set its trap and exec'ed, so a
// stop cannot race it.
func waitIgnoresTerm(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == "sleep" {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pid %d never exec'ed sleep", pid)
}

func timeoutStop(d time.Duration) sddbus.Property {
	return sddbus.Property{Name: "TimeoutStopUSec", Value: dbus.MakeVariant(uint64(d / time.Microsecond))}
}

// dirsIn returns the hierarchies in which cg exists.
func dirsIn(sd *testbed.UserSystemd, cg string) []string {
	var out []string
	for _, h := range sd.Root.Hierarchies {
		if _, err := os.Stat(filepath.Join(h.Mountpoint, cg)); err == nil {
			out = append(out, h.Name)
		}
	}
	return out
}

// requirePresent checks that systemd made cg in the hierarchies it always
// manages (it may also use v1 controllers such as memory and pids).
func requirePresent(t *testing.T, sd *testbed.UserSystemd, cg string) {
	t.Helper()
	in := dirsIn(sd, cg)
	for _, h := range []string{"name=systemd", "unified"} {
		if !slices.Contains(in, h) {
			t.Errorf("%s missing in %s (present in %v)", cg, h, in)
		}
	}
}

// requireGone checks that cg is gone from every hierarchy.
func requireGone(t *testing.T, sd *testbed.UserSystemd, cg string) {
	t.Helper()
	if in := dirsIn(sd, cg); len(in) > 0 {
		t.Errorf("%s still in %v", cg, in)
	}
}

// requireProcs checks that cg holds exactly pid in the hierarchies
// systemd manages.
func requireProcs(t *testing.T, sd *testbed.UserSystemd, cg string, pid int) {
	t.Helper()
	for _, h := range sd.Root.Hierarchies {
		if h.Name != "name=systemd" && h.Name != "unified" {
			continue
		}
		procs, err := os.ReadFile(filepath.Join(h.Mountpoint, cg, "cgroup.procs"))
		if err != nil || strings.TrimSpace(string(procs)) != strconv.Itoa(pid) {
			t.Errorf("%s in %s holds %q (%v), want pid %d", cg, h.Name, procs, err, pid)
		}
	}
}

// listed reports whether the manager still lists unit (any state).
func listed(t *testing.T, sd *testbed.UserSystemd, unit string) bool {
	t.Helper()
	st, err := sd.Conn(t).ListUnitsByPatternsContext(context.Background(), nil, []string{unit})
	if err != nil {
		t.Fatal(err)
	}
	return len(st) > 0
}

func TestLookupAndOwnership(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	m := sd.Manager(t)
	p := startPod(t, sd, nil)
	// A same-named pod dir elsewhere in the tree (another runtime's copy,
	// a restored backup...): systemd's unit must not claim it.
	elsewhere := "elsewhere/" + p.slicePath
	if err := sd.Root.Mkdir(elsewhere); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		unit      string
		loaded    bool
		active    string
		cgroup    string
		owns      []string // cgroup paths OwnsCgroup must accept
		disowns   []string // and refuse
		subStates []string
	}{
		{
			name: "container scope", unit: p.scope, loaded: true, active: "active",
			subStates: []string{"running"}, cgroup: p.scopeCg,
			owns:    []string{p.scopeCg, p.scopeCg + "/"},
			disowns: []string{sd.Root.Rel(elsewhere + "/" + p.scope), p.sliceCg, "/" + p.scopePath},
		},
		{
			name: "pod slice", unit: p.slice, loaded: true, active: "active",
			subStates: []string{"active"}, cgroup: p.sliceCg,
			owns:    []string{p.sliceCg},
			disowns: []string{sd.Root.Rel(elsewhere), p.scopeCg, "/" + p.slicePath},
		},
		{
			name: "unknown scope", unit: "crio-" + randHex(32) + ".scope", loaded: false, active: "inactive",
			subStates: []string{"dead"}, cgroup: "",
			disowns: []string{p.scopeCg, sd.Root.Rel(elsewhere + "/" + p.scope)},
		},
		{
			// systemd loads any slice name without a unit file: only the
			// missing ControlGroup tells it owns nothing.
			name: "unknown slice", unit: "kubepods-burstable-pod" + randHex(8) + ".slice", loaded: true, active: "inactive",
			subStates: []string{"dead"}, cgroup: "",
			disowns: []string{p.sliceCg, sd.Root.Rel(elsewhere)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := m.Lookup(ctx, tc.unit)
			if err != nil {
				t.Fatal(err)
			}
			if u.Loaded() != tc.loaded || u.ActiveState != tc.active || !slices.Contains(tc.subStates, u.SubState) {
				t.Errorf("Lookup(%s) = %+v, want loaded=%v active=%s sub in %v", tc.unit, u, tc.loaded, tc.active, tc.subStates)
			}
			if !tc.loaded && u.LoadState != sdunit.LoadStateNotFound {
				t.Errorf("LoadState %q, want %q", u.LoadState, sdunit.LoadStateNotFound)
			}
			if u.ControlGroup != tc.cgroup {
				t.Errorf("ControlGroup %q, want %q", u.ControlGroup, tc.cgroup)
			}
			for _, c := range tc.owns {
				if !sdunit.OwnsCgroup(u, c) {
					t.Errorf("OwnsCgroup(%s, %s) = false", tc.unit, c)
				}
			}
			for _, c := range tc.disowns {
				if sdunit.OwnsCgroup(u, c) {
					t.Errorf("OwnsCgroup(%s, %s) = true", tc.unit, c)
				}
			}
		})
	}
	// The same-named dir is real, and the owned one is where systemd put
	// the process.
	if in := dirsIn(sd, sd.Root.Rel(elsewhere)); len(in) != len(sd.Root.Hierarchies) {
		t.Errorf("same-named dir only in %v", in)
	}
	requireProcs(t, sd, p.scopeCg, p.proc.PID)
}

func TestStopOrphanLeavesLivePod(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	m := sd.Manager(t)
	live := startPod(t, sd, nil)
	const sigkillAfter = 300 * time.Millisecond

	for _, tc := range []struct {
		name       string
		ignoreTerm bool
		stopSlice  bool // stop the pod slice, else the container scope
		wantActive string
		wantReset  func(p pod) []string
		minTime    time.Duration
	}{
		{name: "orphan pod slice", stopSlice: true, wantActive: "inactive",
			wantReset: func(pod) []string { return nil }},
		{name: "orphan scope ignoring SIGTERM", ignoreTerm: true, wantActive: "failed",
			wantReset: func(p pod) []string { return []string{p.scope} }, minTime: sigkillAfter},
		{name: "orphan pod slice with scope ignoring SIGTERM", ignoreTerm: true, stopSlice: true, wantActive: "inactive",
			wantReset: func(p pod) []string { return []string{p.scope} }, minTime: sigkillAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var orphan pod
			if tc.ignoreTerm {
				orphan = startPod(t, sd, ignoreTerm, timeoutStop(sigkillAfter))
			} else {
				orphan = startPod(t, sd, nil)
			}
			unit, cg := orphan.scope, orphan.scopeCg
			if tc.stopSlice {
				unit, cg = orphan.slice, orphan.sliceCg
			}
			u, err := m.Lookup(context.Background(), unit)
			if err != nil || !sdunit.OwnsCgroup(u, cg) {
				t.Fatalf("before stop: Lookup(%s) = %+v, %v; want owner of %s", unit, u, err, cg)
			}
			requirePresent(t, sd, orphan.scopeCg)
			t.Logf("%s exists in %v", orphan.scopeCg, dirsIn(sd, orphan.scopeCg))

			r, err := m.Stop(context.Background(), unit, 10*time.Second)
			t.Logf("Stop(%s) = %+v, %v", unit, r, err)
			if err != nil {
				t.Fatal(err)
			}
			if r.ActiveBefore != "active" || r.Result != sdunit.JobDone || r.ActiveState != tc.wantActive || r.JobID == 0 {
				t.Errorf("before %q result %q state %q job %d, want active, done, %s", r.ActiveBefore, r.Result, r.ActiveState, r.JobID, tc.wantActive)
			}
			if want := tc.wantReset(orphan); !slices.Equal(r.ResetFailed, want) {
				t.Errorf("ResetFailed %v, want %v", r.ResetFailed, want)
			}
			if r.Duration < tc.minTime {
				t.Errorf("took %v, less than TimeoutStopSec %v: did SIGTERM work after all?", r.Duration, tc.minTime)
			}
			// Gone right when Stop returns, from every hierarchy.
			requireGone(t, sd, orphan.scopeCg)
			if tc.stopSlice {
				requireGone(t, sd, orphan.sliceCg)
			}
			if !orphan.proc.Wait(2 * time.Second) {
				t.Errorf("orphan's process %d still alive", orphan.proc.PID)
			}
			for _, gone := range append([]string{unit}, r.ResetFailed...) {
				if waitUnlisted(t, sd, gone) {
					t.Errorf("%s still listed after stop", gone)
				}
			}

			// The live pod next to it is untouched.
			lu, err := m.Lookup(context.Background(), live.scope)
			if err != nil || lu.ActiveState != "active" || !sdunit.OwnsCgroup(lu, live.scopeCg) {
				t.Errorf("live scope after stop: %+v, %v", lu, err)
			}
			requirePresent(t, sd, live.scopeCg)
			if !live.proc.Alive() {
				t.Fatalf("live pod's process %d died", live.proc.PID)
			}
			requireProcs(t, sd, live.scopeCg, live.proc.PID)
		})
	}
}

// waitUnlisted waits briefly for systemd to garbage-collect unit and
// reports whether it is still listed.
func waitUnlisted(t *testing.T, sd *testbed.UserSystemd, unit string) bool {
	t.Helper()
	for i := 0; i < 50; i++ {
		if !listed(t, sd, unit) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func TestStopUnknownUnit(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	m := sd.Manager(t)
	for _, tc := range []struct {
		name    string
		unit    string
		wantErr error
		want    sdunit.StopResult // Unit, JobID>0 and Duration not compared
	}{
		// systemd refuses to stop a scope it does not know.
		{"scope", "crio-" + randHex(32) + ".scope", sdunit.ErrNoSuchUnit,
			sdunit.StopResult{ActiveBefore: "inactive"}},
		// Any slice name is loadable: the stop is a no-op that says so.
		{"slice", "kubepods-burstable-pod" + randHex(8) + ".slice", nil,
			sdunit.StopResult{ActiveBefore: "inactive", Result: sdunit.JobDone, ActiveState: "inactive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Stop(context.Background(), tc.unit, 5*time.Second)
			t.Logf("Stop(%s) = %+v, %v", tc.unit, r, err)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "stop unit "+tc.unit) {
				t.Errorf("error %q does not name the unit", err)
			}
			if r.ActiveBefore != tc.want.ActiveBefore || r.Result != tc.want.Result ||
				r.ActiveState != tc.want.ActiveState || len(r.ResetFailed) != 0 || (r.JobID != 0) != (tc.want.Result != "") {
				t.Errorf("result %+v, want %+v", r, tc.want)
			}
		})
	}
}

// A stop that takes longer than the caller waits ends the wait in time
// with an error, whether the timeout or the context ends it.
func TestStopWaitEnds(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	m := sd.Manager(t)
	const stuck = 30 * time.Second // TimeoutStopSec: the stop outlasts every wait

	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    error
		within  time.Duration
	}{
		{"timeout", 200 * time.Millisecond,
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			sdunit.ErrJobTimeout, 200 * time.Millisecond},
		{"ctx canceled", 10 * time.Second,
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(150*time.Millisecond, cancel)
				return ctx, cancel
			},
			context.Canceled, 150 * time.Millisecond},
		{"ctx deadline", 10 * time.Second,
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 150*time.Millisecond)
			},
			context.DeadlineExceeded, 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPod(t, sd, ignoreTerm, timeoutStop(stuck))
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			r, err := m.Stop(ctx, p.scope, tc.timeout)
			took := time.Since(start)
			t.Logf("Stop = %+v, %v after %v", r, err, took)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if took < tc.within || took > tc.within+time.Second {
				t.Errorf("returned after %v, want about %v", took, tc.within)
			}
			if r.Result != "" || r.JobID == 0 {
				t.Errorf("result %+v: want a queued job and no result", r)
			}
			// systemd is still stopping it (SIGTERM sent, waiting for
			// TimeoutStopSec): the caller's wait ended, the job did not.
			u, err := m.Lookup(context.Background(), p.scope)
			if err != nil || u.ActiveState != "deactivating" || !p.proc.Alive() {
				t.Errorf("after the wait: %+v, %v, alive=%v; want deactivating", u, err, p.proc.Alive())
			}
		})
	}
}

// Every way to name the bus reaches the same manager (the system bus path
// is the one the daemon uses on a node).
func TestConnectForms(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	p := startPod(t, sd, nil)
	for _, tc := range []struct {
		name, bus, env string
	}{
		{"address", sd.Bus, ""},
		{"user", "user", "DBUS_SESSION_BUS_ADDRESS"},
		{"system", "system", "DBUS_SYSTEM_BUS_ADDRESS"},
		{"default is system", "", "DBUS_SYSTEM_BUS_ADDRESS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, sd.Bus)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m, err := sdunit.Connect(ctx, tc.bus)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			u, err := m.Lookup(ctx, p.scope)
			if err != nil || !sdunit.OwnsCgroup(u, p.scopeCg) {
				t.Errorf("Lookup over %q: %+v, %v", tc.bus, u, err)
			}
		})
	}
}

// A start job queued in a pod slice (kubelet recreating a pod with the same
// UID) is never cancelled by a stop: StopUnit in mode "fail" is refused
// with ErrJobConflict, for the unit with the job and for the slice that
// holds it, and nothing is stopped.
func TestStopRefusesWhileStartQueued(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	m := sd.Manager(t)
	p := startPod(t, sd, nil)
	// A oneshot service's start job runs until ExecStart exits.
	svc := "pod-start-" + randHex(4) + ".service"
	ch := make(chan string, 1)
	_, err := sd.Conn(t).StartTransientUnitContext(context.Background(), svc, "fail", []sddbus.Property{
		sddbus.PropSlice(p.slice),
		sddbus.PropExecStart([]string{"/bin/sleep", "30"}, false),
		{Name: "Type", Value: dbus.MakeVariant("oneshot")},
	}, ch)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, svc, "activating")

	for _, unit := range []string{svc, p.slice} {
		r, err := m.Stop(context.Background(), unit, 5*time.Second)
		t.Logf("Stop(%s) = %+v, %v", unit, r, err)
		if !errors.Is(err, sdunit.ErrJobConflict) {
			t.Fatalf("Stop(%s): error %v, want ErrJobConflict", unit, err)
		}
		if r.JobID != 0 || r.Result != "" {
			t.Errorf("Stop(%s) queued job %d (result %q)", unit, r.JobID, r.Result)
		}
	}
	// Nothing was stopped, and the start job still runs.
	waitState(t, m, svc, "activating")
	if u, err := m.Lookup(context.Background(), p.slice); err != nil || u.ActiveState != "active" {
		t.Errorf("pod slice after refused stops: %+v, %v", u, err)
	}
	requirePresent(t, sd, p.scopeCg)
	if !p.proc.Alive() {
		t.Errorf("the pod's process %d died", p.proc.PID)
	}
	select {
	case r := <-ch:
		t.Errorf("the start job ended (%s): a stop cancelled it", r)
	default:
	}
}

func waitState(t *testing.T, m *sdunit.Manager, unit, state string) {
	t.Helper()
	var u sdunit.Unit
	var err error
	for i := 0; i < 250; i++ {
		if u, err = m.Lookup(context.Background(), unit); err == nil && u.ActiveState == state {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %+v, %v; want %s", unit, u, err, state)
}
