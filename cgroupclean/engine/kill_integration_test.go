package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// killCfg is a systemd-driver config that kills orphan processes and
// removes at once.
func killCfg(t *testing.T, endpoint, podRoot string) config.Config {
	cfg := config.Default()
	cfg.Runtime.Endpoint = endpoint
	cfg.Cgroup.PodRoot, cfg.Cgroup.KubeletRoot = podRoot, testbed.KubeletRoot(t)
	cfg.Clean.MinAge, cfg.Clean.ConfirmPasses, cfg.Clean.MaxRemovalShare = config.Duration{}, 1, 1
	cfg.Clean.KillOrphanProcesses = true
	cfg.Clean.UseSystemd = "always"
	return cfg
}

// killPlanned scans and checks the plan kills and removes exactly the pod
// at path.
func killPlanned(t *testing.T, e *engine.Engine, path string) *engine.Scan {
	t.Helper()
	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rm := decide.Removals(s.Plan)
	if len(rm) != 1 || rm[0].Path != path || rm[0].Action != decide.KillRemove {
		t.Fatalf("removals %+v (kept %+v)", rm, s.Plan.Kept)
	}
	return s
}

// systemdPod is a burstable pod slice of a real systemd --user with a
// process in a container scope, a real containerd that has no sandbox of
// it, and a connection to that systemd.
type systemdPod struct {
	sd         *testbed.UserSystemd
	ctrd       *testbed.Containerd
	m          *sdunit.Manager
	uid, slice string
	chain      string // the slice's path below the systemd root
	proc       *testbed.Process
}

func newSystemdPod(t *testing.T, scopeID int) *systemdPod {
	t.Helper()
	p := &systemdPod{sd: testbed.StartUserSystemd(t), ctrd: testbed.StartContainerd(t), uid: testbed.RandomUID()}
	p.slice = names.SystemdPodSlice(names.Burstable, p.uid)
	p.chain = "kubepods.slice/kubepods-burstable.slice/" + p.slice
	p.proc = testbed.StartProcess(t, "sleep", "300")
	p.sd.StartScope(t, p.chain+"/crio-"+hexID(scopeID)+".scope", p.proc.PID)
	p.m = p.sd.Manager(t)
	waitActive(t, p.m, p.slice)
	return p
}

// engine is a kill-enabled engine for the pod root podRoot (below the
// systemd root) asking units, or the real systemd when units is nil.
func (p *systemdPod) engine(t *testing.T, podRoot string, units engine.Units) *engine.Engine {
	t.Helper()
	if units == nil {
		units = engine.SystemdUnits(p.m, 10*time.Second)
	}
	cfg := killCfg(t, p.ctrd.Endpoint(), p.sd.Root.Rel(podRoot))
	return &engine.Engine{Config: cfg, Runtime: dialCRI(t, cfg), Units: units}
}

// wantRefused checks the only result is a refusal for reason that killed
// nothing.
func wantRefused(t *testing.T, results []engine.Result, reason decide.Reason) {
	t.Helper()
	if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != reason || len(results[0].Killed) != 0 {
		t.Fatalf("results %+v", results)
	}
}

// wantActive checks systemd still has unit active after the pass.
func wantActive(t *testing.T, m *sdunit.Manager, unit string) {
	t.Helper()
	if u, err := m.Lookup(context.Background(), unit); err != nil || u.ActiveState != "active" {
		t.Fatalf("%s after the pass: %+v %v", unit, u, err)
	}
}

// With systemd unreachable the orphan is refused (systemd-unreachable)
// before its process is killed: the process lives.
func TestKillRefusedWhenSystemdUnreachable(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "killsd")
	ctrd := testbed.StartContainerd(t)
	uid := testbed.RandomUID()
	pod := "kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, uid)
	must(t, r.Mkdir(pod+"/crio-"+hexID(40)+".scope"))
	proc := testbed.StartProcess(t, "sleep", "300")
	must(t, r.AddProc(pod+"/crio-"+hexID(40)+".scope", proc.PID))
	cfg := killCfg(t, ctrd.Endpoint(), r.Rel("kubepods.slice"))
	e := &engine.Engine{Config: cfg, Runtime: dialCRI(t, cfg), UnitsErr: unreachableSystemd(t)}
	s := killPlanned(t, e, r.Rel(pod))
	wantRefused(t, e.Apply(context.Background(), s, false), decide.SystemdUnreachable)
	if proc.Wait(200 * time.Millisecond) {
		t.Fatal("the process of a refused removal was killed")
	}
}

// A pod dir named like a pod slice systemd owns elsewhere: the ownership
// check refuses it (unit-cgroup-mismatch) before anything is killed, and
// both the process in it and the one in systemd's scope live.
func TestKillRefusedOnUnitMismatch(t *testing.T) {
	p := newSystemdPod(t, 41)
	owned := p.proc
	// The same names under another pod root, with a process of its own.
	other := "elsewhere/" + p.chain + "/crio-" + hexID(42) + ".scope"
	must(t, p.sd.Root.Mkdir(other))
	proc := testbed.StartProcess(t, "sleep", "300")
	must(t, p.sd.Root.AddProc(other, proc.PID))

	e := p.engine(t, "elsewhere/kubepods.slice", nil)
	s := killPlanned(t, e, p.sd.Root.Rel("elsewhere/"+p.chain))
	wantRefused(t, e.Apply(context.Background(), s, false), decide.UnitNotOwned)
	if proc.Wait(200*time.Millisecond) || !owned.Alive() {
		t.Fatalf("a process was killed by a refused removal: elsewhere alive=%v, systemd's alive=%v", proc.Alive(), owned.Alive())
	}
	wantActive(t, p.m, p.slice)
}

// recreatingUnits is the real systemd client; the first Lookup also has
// the real runtime start a sandbox of the pod, as kubelet does when a pod
// with the same UID comes back between the final checks and the kill.
type recreatingUnits struct {
	engine.Units
	once     sync.Once
	recreate func()
}

func (u *recreatingUnits) Lookup(ctx context.Context, unit string) (bool, string, error) {
	u.once.Do(u.recreate)
	return u.Units.Lookup(ctx, unit)
}

// The runtime is asked again after the systemd lookup, right before the
// kill: a pod that came back meanwhile is refused (runtime-lists-now) and
// its processes live.
func TestKillRefusedWhenPodComesBackBeforeKill(t *testing.T) {
	p := newSystemdPod(t, 43)
	units := &recreatingUnits{Units: engine.SystemdUnits(p.m, 10*time.Second), recreate: func() {
		p.ctrd.RunPod(t, p.sd.CgroupPath("sandboxes/pod"+p.uid), p.uid, "back")
	}}
	e := p.engine(t, "kubepods.slice", units)
	s := killPlanned(t, e, p.sd.Root.Rel(p.chain))
	wantRefused(t, e.Apply(context.Background(), s, false), decide.RuntimeListsNow)
	if p.proc.Wait(200 * time.Millisecond) {
		t.Fatal("the process of a pod that came back was killed")
	}
	wantActive(t, p.m, p.slice)
}

// An orphan pod slice for which systemd has a start job queued (kubelet
// recreating the pod) is kept with its own reason, unit-job-pending: the
// stop in mode "fail" is refused, the slice stays active, the job and the
// processes in it are untouched.
func TestStopRefusedWhileStartQueued(t *testing.T) {
	p := newSystemdPod(t, 44)
	ctx := context.Background()
	e := p.engine(t, "kubepods.slice", nil)
	s := killPlanned(t, e, p.sd.Root.Rel(p.chain))
	ch := p.queueStart(t)
	wantRefused(t, e.Apply(ctx, s, false), decide.UnitJobPending)
	if p.proc.Wait(200 * time.Millisecond) {
		t.Fatal("the process of a refused removal was killed")
	}
	wantActive(t, p.m, p.slice)
	select {
	case r := <-ch:
		t.Fatalf("the start job ended (%s)", r)
	default:
	}
}

// queueStart queues a start job in the pod's slice (a oneshot service
// that stays activating), as kubelet recreating the pod would; the
// channel gets the job's result.
func (p *systemdPod) queueStart(t *testing.T) chan string {
	t.Helper()
	ch := make(chan string, 1)
	if _, err := p.sd.Conn(t).StartTransientUnitContext(context.Background(), "pod-start-"+p.uid[:8]+".service", "fail", []sddbus.Property{
		sddbus.PropSlice(p.slice), sddbus.PropExecStart([]string{"/bin/sleep", "30"}, false),
		{Name: "Type", Value: dbus.MakeVariant("oneshot")},
	}, ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

// With every check passed, an orphan slice with a process is stopped
// through systemd (which ends the process) and removed everywhere.
func TestKillWithSystemdStopsAndRemoves(t *testing.T) {
	p := newSystemdPod(t, 45)
	sd, chain := p.sd, p.chain
	// A leftover in a hierarchy systemd does not manage, with a process
	// of its own: killed by the engine after the stop.
	left := testbed.StartProcess(t, "sleep", "300")
	var blkio []int
	for _, h := range sd.Root.Hierarchies {
		if h.Has("blkio") {
			must(t, sd.Root.MkdirIn(h, chain+"/crio-"+hexID(46)+".scope"))
			must(t, writePid(h.Path(sd.Root.Rel(chain+"/crio-"+hexID(46)+".scope")), left.PID))
			blkio = append(blkio, left.PID)
		}
	}
	e := p.engine(t, "kubepods.slice", nil)
	s := killPlanned(t, e, sd.Root.Rel(chain))
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Removed || results[0].UnitStopped == "" {
		t.Fatalf("results %+v", results)
	}
	if fmt.Sprint(results[0].Killed) != fmt.Sprint(blkio) {
		t.Errorf("killed %v, want the leftover %v", results[0].Killed, blkio)
	}
	if !p.proc.Wait(5 * time.Second) {
		t.Fatal("the orphan's process still runs")
	}
	// On a v2 only node there is no blkio hierarchy: the leftover was
	// never in the orphan, and must still run.
	if len(blkio) > 0 && !left.Wait(5*time.Second) {
		t.Fatal("the leftover's process still runs")
	}
	if len(blkio) == 0 && left.Wait(100*time.Millisecond) {
		t.Fatal("a process outside the orphan was killed")
	}
	if n := sd.Root.Exists(chain); n != 0 {
		t.Fatalf("orphan still in %d hierarchies", n)
	}
}

func writePid(dir string, pid int) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// At log.level = "error", a stop refused as unit-job-pending (a real
// systemd --user with a start job queued) still writes the outcome of
// the stop's intent: one refused record with its ACTION_ID and ACTION.
func TestStopRefusedOutcomeAtErrorLevel(t *testing.T) {
	p := newSystemdPod(t, 45)
	ctx := context.Background()
	e := p.engine(t, "kubepods.slice", nil)
	var out testbed.SyncBuffer
	log, err := logging.New(logging.FormatJSON, "error", &out)
	if err != nil {
		t.Fatal(err)
	}
	e.Log, e.Intents = log, logging.Intents(log)
	e.OnResult = func(r engine.Result) { engine.LogResults(log, []engine.Result{r}, 1, false) }
	s := killPlanned(t, e, p.sd.Root.Rel(p.chain))
	p.queueStart(t)
	wantRefused(t, e.Apply(ctx, s, false), decide.UnitJobPending)
	var intents, outcomes []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch rec[audit.MessageID] {
		case audit.IDActionIntent:
			intents = append(intents, rec)
		case audit.IDActionRefused:
			outcomes = append(outcomes, rec)
		}
	}
	if len(intents) != 1 || len(outcomes) != 1 || intents[0][audit.ActionID] != outcomes[0][audit.ActionID] ||
		outcomes[0][audit.Action] != audit.ActionStop || outcomes[0][audit.Reason] != string(decide.UnitJobPending) {
		t.Fatalf("want one stop-unit intent and its refused outcome, got:\n%s", out.String())
	}
}
