package engine_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// wouldRemove returns the paths of the would-remove records, sorted.
func wouldRemove(t *testing.T, entries []*logrus.Entry) []string {
	t.Helper()
	var out []string
	for _, en := range entries {
		if en.Data[audit.MessageID] != audit.IDWouldRemove {
			continue
		}
		if en.Data[audit.Dirs] == 0 || en.Data[audit.Hierarchies] == "" {
			t.Errorf("would-remove record without what act mode would rmdir: %v", en.Data)
		}
		out = append(out, en.Data[audit.CgroupPath].(string))
	}
	sort.Strings(out)
	return out
}

// Observe mode against a real containerd on real cgroupfs: the orphans
// made by CRI Stop+Remove and an unlisted container cgroup in a live pod
// pass every gate and final check and are recorded as would-remove, one
// record each, and every directory stays; an orphan with a process is
// kept as in act mode. Switched to act, the same engine removes exactly
// the orphans it recorded.
func TestObserveRemovesNothingThenActDrains(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	liveUID, _, _ := n.runPod(t, "burstable", true)
	stray := n.podPath("burstable", liveUID) + "/" + hexID(1)
	must(t, n.root.Mkdir(stray))
	var orphans []string
	for i := 0; i < 2; i++ {
		uid, sb, _ := n.runPod(t, "besteffort", false)
		n.ctrd.StopRemovePod(t, sb)
		orphans = append(orphans, n.podPath("besteffort", uid))
	}
	busyUID := testbed.RandomUID()
	busy := n.podPath("guaranteed", busyUID)
	must(t, n.root.Mkdir(busy))
	proc := testbed.StartProcess(t, "sleep", "300")
	must(t, n.root.AddProc(busy, proc.PID))

	want := []string{n.root.Rel(stray)}
	for _, o := range orphans {
		want = append(want, n.root.Rel(o))
	}
	sort.Strings(want)
	before := n.dirs(t, "kubepods")

	log, hook := test.NewNullLogger()
	n.cfg.Clean.Mode = config.ModeObserve
	e := n.engine(t)
	e.Log = log
	s, err := e.Scan(ctx, nil)
	must(t, err)
	results := e.Apply(ctx, s, false)
	var observed []string
	for _, r := range results {
		if r.Outcome != engine.Observed {
			t.Errorf("observe mode result %+v", r)
			continue
		}
		observed = append(observed, r.Item.Path)
	}
	sort.Strings(observed)
	if strings.Join(observed, " ") != strings.Join(want, " ") {
		t.Fatalf("observed %v, want %v", observed, want)
	}
	if got := wouldRemove(t, hook.AllEntries()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("would-remove records %v, want %v", got, want)
	}
	if after := n.dirs(t, "kubepods"); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("observe mode changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	if !proc.Alive() {
		t.Fatal("observe mode ended a process")
	}
	if line := engine.SummaryLine(s, results); !strings.Contains(line, "observe mode: would remove 3, removed 0") {
		t.Errorf("summary %q", line)
	}
	for _, en := range hook.AllEntries() {
		if id := en.Data[audit.MessageID]; id == audit.IDOrphanRemoved || id == audit.IDActionIntent {
			t.Errorf("observe mode wrote an action record: %v", en.Data)
		}
	}

	n.cfg.Clean.Mode = config.ModeAct
	e = n.engine(t)
	s, err = e.Scan(ctx, nil)
	must(t, err)
	var removed []string
	for _, r := range e.Apply(ctx, s, false) {
		if r.Outcome == engine.Removed {
			removed = append(removed, r.Item.Path)
		}
	}
	sort.Strings(removed)
	if strings.Join(removed, " ") != strings.Join(want, " ") {
		t.Fatalf("act mode removed %v, want %v", removed, want)
	}
	for _, rel := range append(orphans, stray) {
		if k := n.root.Exists(rel); k != 0 {
			t.Errorf("%s still in %d hierarchies after act", rel, k)
		}
	}
	if n.root.Exists(busy) != len(n.root.Hierarchies) || !proc.Alive() {
		t.Error("the orphan with a process was touched")
	}
}

// Observe mode refuses where act mode would: with the systemd driver and
// no systemd to ask, the orphan's slice is kept (systemd-unreachable) and
// gets no would-remove record.
func TestObserveRefusesWithoutSystemd(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "observe-sdgone")
	ctrd := testbed.StartContainerd(t)
	slice := "kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, testbed.RandomUID())
	must(t, r.Mkdir(slice))
	cfg := sliceConfig(t, ctrd, r.Rel("kubepods.slice"))
	cfg.Clean.Mode = config.ModeObserve
	log, hook := test.NewNullLogger()
	e := &engine.Engine{Config: cfg, Runtime: dialCRI(t, cfg), UnitsErr: unreachableSystemd(t), Log: log}
	s, err := e.Scan(context.Background(), nil)
	must(t, err)
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.SystemdUnreachable {
		t.Fatalf("results %+v", results)
	}
	if got := wouldRemove(t, hook.AllEntries()); len(got) != 0 {
		t.Fatalf("would-remove records for a refused orphan: %v", got)
	}
	if r.Exists(slice) != len(r.Hierarchies) {
		t.Fatal("observe mode removed a slice")
	}
}

// Observe mode with a real systemd: the orphan pod's slice is looked up
// (the record names the unit that owns it) and stays active; act mode
// then stops it.
func TestObserveLooksUpUnitWithoutStopping(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	ctrd := testbed.StartContainerd(t)
	ctx := context.Background()
	uid := testbed.RandomUID()
	unit := names.SystemdPodSlice(names.Burstable, uid)
	slice := "kubepods.slice/kubepods-burstable.slice/" + unit
	proc := testbed.StartProcess(t, "sleep", "300")
	sd.StartScope(t, slice+"/crio-"+hexID(21)+".scope", proc.PID)
	must(t, syscallKill(proc.PID))
	proc.Wait(5 * time.Second)
	m := sd.Manager(t)
	waitActive(t, m, unit)

	cfg := sliceConfig(t, ctrd, sd.Root.Rel("kubepods.slice"))
	cfg.Clean.UseSystemd, cfg.Clean.SystemdBus = "always", sd.Bus
	cfg.Clean.Mode = config.ModeObserve
	log, hook := test.NewNullLogger()
	e := &engine.Engine{Config: cfg, Runtime: dialCRI(t, cfg), Units: engine.SystemdUnits(m, 10*time.Second), Log: log}
	s, err := e.Scan(ctx, nil)
	must(t, err)
	results := e.Apply(ctx, s, false)
	if len(results) != 1 || results[0].Outcome != engine.Observed || results[0].Unit != unit {
		t.Fatalf("observe results %+v", results)
	}
	var recUnit any
	for _, en := range hook.AllEntries() {
		if en.Data[audit.MessageID] == audit.IDWouldRemove {
			recUnit = en.Data[audit.Unit]
		}
	}
	if recUnit != unit {
		t.Fatalf("would-remove record names unit %v, want %s", recUnit, unit)
	}
	if u, err := m.Lookup(ctx, unit); err != nil || u.ActiveState != "active" {
		t.Fatalf("observe mode touched the slice: %+v %v", u, err)
	}

	e.Config.Clean.Mode = config.ModeAct
	s, err = e.Scan(ctx, nil)
	must(t, err)
	results = e.Apply(ctx, s, false)
	if len(results) != 1 || results[0].Outcome != engine.Removed || !strings.HasPrefix(results[0].UnitStopped, unit) {
		t.Fatalf("act results %+v", results)
	}
}
