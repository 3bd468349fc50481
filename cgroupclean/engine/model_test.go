package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/sirupsen/logrus"
	"pgregory.net/rapid"
)

// The removal-path model: Engine.Apply runs against fakes of the runtime,
// kubelet, systemd, the audit sink and the cgroup/process view, whose
// state changes at every call boundary (before and after each call) as a
// generated schedule says. After every pass the invariants of
// docs/safety.md are checked on what the fakes saw.

// modelOnly limits the invariants checked, to count how many schedules
// it takes to find one kind of defect.
var modelOnly = flag.String("model.only", "", "check only this invariant: optin, signal, stop, rmdir, pairs, accepted")

// event is what may happen to the node between two calls of the engine.
type event struct {
	kind string
	pod  int
	d    time.Duration
}

// schedule chooses the events: generated (rapid) or scripted (regressions).
type schedule interface {
	// at returns the events at a boundary, named "<before|after> <call>".
	at(boundary string) []event
}

// world is the node the fakes show: pods, their processes and units, the
// runtime and the journal, and a record of every call.
type world struct {
	mu      sync.Mutex
	sched   schedule
	now     time.Time
	pods    []*modelPod
	byPath  map[string]*modelPod
	byUnit  map[string]*modelPod
	rtFails bool
	kFails  bool // kubelet's pod dirs cannot be read
	jDown   bool // the audit sink refuses records
	nextPid int
	seq     int
	issued  time.Time
	calls   []modelCall
	intents []modelIntent
}

type modelPod struct {
	idx        int
	uid, path  string
	unit       string // "" with the cgroupfs driver
	listed     bool   // the runtime lists a sandbox of it
	tracked    bool   // kubelet has its pod dir
	dir        bool
	unitLoaded bool
	jobQueued  bool
	pids       []int
	kill       bool // the plan's action is KillRemove
}

// modelCall is one call of the engine into a fake. Asks (runtime,
// kubelet) learn the state; actions (stop, signal, rmdir) change it;
// every other call is "other".
type modelCall struct {
	seq int
	at  time.Time // when the fake acted or answered
	// issued is when the engine made the call: time that passes at the
	// boundary right before an action is no engine's to see.
	issued time.Time
	kind   string // runtime, kubelet, stop, signal, rmdir, other
	pod    int    // -1: not about one pod
	listed map[int]bool
	// liveAt says, for an "other" call or an action, which pods were
	// listed or tracked when it ran.
	liveAt map[int]bool
	failed bool
}

type modelIntent struct {
	seq      int
	pod      int
	action   string
	actionID string
	accepted bool
}

func (w *world) boundary(name string) {
	for _, ev := range w.sched.at(name) {
		w.apply(ev)
	}
}

func (w *world) apply(ev event) {
	if len(w.pods) == 0 {
		return
	}
	p := w.pods[ev.pod%len(w.pods)]
	switch ev.kind {
	case "pod-back": // kubelet recreates the pod with the same UID
		p.listed, p.tracked, p.dir = true, true, true
		if p.unit != "" {
			p.unitLoaded = true
		}
	case "runtime-lists":
		p.listed = true
	case "kubelet-tracks":
		p.tracked, p.dir = true, true
	case "pod-gone":
		p.listed, p.tracked = false, false
	case "proc-enter":
		w.nextPid++
		p.dir = true
		p.pids = append(p.pids, w.nextPid)
	case "proc-leave":
		if len(p.pids) > 0 {
			p.pids = p.pids[1:]
		}
	case "job-queued":
		p.jobQueued = true
	case "job-done":
		p.jobQueued = false
	case "runtime-fails":
		w.rtFails = true
	case "runtime-ok":
		w.rtFails = false
	case "kubelet-fails":
		w.kFails = true
	case "kubelet-ok":
		w.kFails = false
	case "journal-down":
		w.jDown = true
	case "journal-up":
		w.jDown = false
	case "advance":
		w.now = w.now.Add(ev.d)
	}
}

func (w *world) liveNow() map[int]bool {
	m := map[int]bool{}
	for _, p := range w.pods {
		if p.listed || p.tracked {
			m[p.idx] = true
		}
	}
	return m
}

func (w *world) record(kind string, pod int) *modelCall {
	w.seq++
	w.calls = append(w.calls, modelCall{seq: w.seq, at: w.now, issued: w.issued, kind: kind, pod: pod, liveAt: w.liveNow()})
	return &w.calls[len(w.calls)-1]
}

// call runs fn as one call: the events before it, fn, the events after.
func (w *world) call(name string, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.issued = w.now
	w.boundary("before " + name)
	fn()
	w.boundary("after " + name)
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

// The fakes.

type modelRuntime struct{ w *world }

func (r modelRuntime) Snapshot(ctx context.Context) (snap live.Snapshot, err error) {
	r.w.call("runtime", func() {
		c := r.w.record("runtime", -1)
		if r.w.rtFails {
			c.failed = true
			err = errors.New("runtime stalled: deadline exceeded")
			return
		}
		c.listed = map[int]bool{}
		for _, p := range r.w.pods {
			if p.listed {
				c.listed[p.idx] = true
				snap.Sandboxes = append(snap.Sandboxes, live.Sandbox{ID: fmt.Sprintf("%064d", p.idx), PodUID: p.uid})
			}
		}
		snap.TakenAt = r.w.now
	})
	return snap, err
}

type modelKubelet struct{ w *world }

func (k modelKubelet) Tracks(uid string) (tracked bool, err error) {
	k.w.call("kubelet", func() {
		for _, p := range k.w.pods {
			if p.uid == uid {
				c := k.w.record("kubelet", p.idx)
				if k.w.kFails {
					c.failed = true
					err = errors.New("read kubelet pod dirs: input/output error")
					return
				}
				c.listed = map[int]bool{p.idx: p.tracked}
				tracked = p.tracked
			}
		}
	})
	return tracked, err
}

type modelUnits struct{ w *world }

func (u modelUnits) Lookup(ctx context.Context, unit string) (loaded bool, cg string, err error) {
	u.w.call("lookup", func() {
		u.w.record("other", -1)
		if p := u.w.byUnit[unit]; p != nil && p.unitLoaded {
			loaded, cg = true, p.path
		}
	})
	return loaded, cg, nil
}

func (u modelUnits) Stop(ctx context.Context, unit string) (detail string, err error) {
	u.w.call("stop", func() {
		p := u.w.byUnit[unit]
		u.w.record("stop", p.idx)
		if p.jobQueued {
			err = fmt.Errorf("stop %s: %w", unit, sdunit.ErrJobConflict)
			return
		}
		// systemd ends the unit's processes and removes its directory.
		p.unitLoaded, p.pids, p.dir = false, nil, false
		detail = "job done"
	})
	return detail, err
}

type modelCgroups struct{ w *world }

func (m modelCgroups) ReadTrees(hs []hierarchy.Hierarchy, path string, known []string) (t apply.Trees, err error) {
	m.w.call("procs", func() {
		m.w.record("other", -1)
		p := m.w.byPath[path]
		ht := apply.HierarchyTree{Hierarchy: hs[0]}
		if p.dir {
			ht.Dirs = []string{path}
		}
		t = apply.Trees{ByHierarchy: []apply.HierarchyTree{ht}, Pids: append([]int(nil), p.pids...)}
	})
	return t, nil
}

func (m modelCgroups) KillAll(ctx context.Context, hs []hierarchy.Hierarchy, path string, confirm func() error) (res apply.KillResult, err error) {
	p := m.w.byPath[path]
	m.w.call("freeze", func() { m.w.record("other", -1) })
	if confirm != nil {
		if err = confirm(); err != nil {
			return res, err
		}
	}
	m.w.call("kill", func() {
		if len(p.pids) == 0 {
			return
		}
		m.w.record("signal", p.idx)
		res.Pids, p.pids = p.pids, nil
	})
	return res, nil
}

func (m modelCgroups) Remove(t apply.Trees, before apply.BeforeRemove) (out []apply.HierarchyResult, err error) {
	if t.Absent() {
		return []apply.HierarchyResult{{Hierarchy: t.ByHierarchy[0].Hierarchy.Name, Absent: true}}, nil
	}
	m.w.call("rmdir", func() {
		p := m.w.byPath[t.ByHierarchy[0].Dirs[0]]
		c := m.w.record("rmdir", p.idx)
		res := apply.HierarchyResult{Hierarchy: t.ByHierarchy[0].Hierarchy.Name}
		switch {
		case len(p.pids) > 0: // the kernel's guard
			c.failed = true
			res.Err = fmt.Errorf("rmdir %s: %w", p.path, apply.ErrBusy)
			err = res.Err
		case p.dir:
			p.dir, res.Removed = false, 1
		}
		out = []apply.HierarchyResult{res}
	})
	return out, err
}

// modelIntents is the audit sink: it takes intent records unless the
// schedule says the journal is down, and a write may take time.
type modelIntents struct {
	w   *world
	log logrus.FieldLogger
}

func (s modelIntents) WriteIntent(f logrus.Fields, msg string) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.boundary("before intent")
	w.seq++
	p := w.byPath[fmt.Sprint(f[audit.CgroupPath])]
	in := modelIntent{seq: w.seq, pod: p.idx, action: fmt.Sprint(f[audit.Action]), actionID: fmt.Sprint(f[audit.ActionID]), accepted: !w.jDown}
	w.intents = append(w.intents, in)
	if !in.accepted {
		return errors.New("journald did not take the record")
	}
	s.log.WithFields(f).Info(msg)
	return nil
}

// newWorld builds n orphan pods, the plan that removes them and an
// engine on the fakes.
func newWorld(sched schedule, n int, systemd, kill []bool, level string) (*world, *Engine, *Scan, *bytes.Buffer, error) {
	w := &world{sched: sched, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), byPath: map[string]*modelPod{}, byUnit: map[string]*modelPod{}, nextPid: 1000}
	var items []decide.Item
	for i := range n {
		p := &modelPod{idx: i, uid: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), dir: true}
		p.path = "/kubepods/besteffort/pod" + p.uid
		if systemd[i] {
			p.unit = fmt.Sprintf("kubepods-besteffort-pod%d.slice", i)
			p.unitLoaded = true
			w.byUnit[p.unit] = p
		}
		it := decide.Item{Kind: decide.PodKind, State: decide.Orphan, Action: decide.Remove, PodUID: p.uid, Path: p.path, Unit: p.unit}
		if kill[i] {
			p.kill, it.Action = true, decide.KillRemove
			w.nextPid++
			p.pids = []int{w.nextPid}
		}
		w.pods = append(w.pods, p)
		w.byPath[p.path] = p
		items = append(items, it)
	}
	var buf bytes.Buffer
	log, err := logging.New(logging.FormatJSON, level, &buf)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cfg := config.Default()
	cfg.Clean.KillOrphanProcesses = true
	e := &Engine{Config: cfg, Runtime: modelRuntime{w}, Kubelet: modelKubelet{w}, Units: modelUnits{w}, Cgroups: modelCgroups{w},
		Clock: w.clock, Log: log, Intents: modelIntents{w: w, log: log}, sequentialChecks: true}
	e.OnResult = func(r Result) { LogResults(log, []Result{r}, 1, false) }
	s := &Scan{Hierarchies: []hierarchy.Hierarchy{{Name: "unified", Version: 2, Mountpoint: "/model"}}, Plan: decide.Plan{Items: items}}
	return w, e, s, &buf, nil
}

// record is one line of the log, as json.
type logRecord map[string]any

func (r logRecord) str(k string) string {
	v, _ := r[k].(string)
	return v
}

func parseLog(b []byte) ([]logRecord, error) {
	var out []logRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("log line %q: %w", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func want(name string) bool { return *modelOnly == "" || *modelOnly == name }

// checkInvariants returns the first invariant the run broke, or "".
func checkInvariants(w *world, logged []byte) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, x := range w.calls {
		if x.kind != "stop" && x.kind != "signal" && x.kind != "rmdir" {
			continue
		}
		if x.kind == "signal" && want("optin") && !w.pods[x.pod].kill {
			return fmt.Sprintf("call %d: processes of pod %d signalled, its action is not KillRemove", x.seq, x.pod)
		}
		if !want(x.kind) {
			continue
		}
		if why := freshNotListed(w, i); why != "" {
			return fmt.Sprintf("call %d: %s of pod %d: %s", x.seq, x.kind, x.pod, why)
		}
	}
	records, err := parseLog(logged)
	if err != nil {
		return err.Error()
	}
	if want("pairs") {
		if why := pairs(w, records); why != "" {
			return why
		}
	}
	if want("accepted") {
		if why := acceptedFirst(w); why != "" {
			return why
		}
	}
	return ""
}

// freshNotListed checks the action at calls[i]: the last answers of the
// runtime and kubelet before it said "not listed", are at most
// MaxCheckAge old, and no call of the engine since the earlier of them
// (other than the asks themselves) ran while the pod was listed or
// tracked: a change the engine could have seen by asking again.
func freshNotListed(w *world, i int) string {
	x := w.calls[i]
	rt, kl := -1, -1
	for j := i - 1; j >= 0 && (rt < 0 || kl < 0); j-- {
		c := w.calls[j]
		if rt < 0 && c.kind == "runtime" && !c.failed {
			rt = j
		}
		if kl < 0 && c.kind == "kubelet" && c.pod == x.pod && !c.failed {
			kl = j
		}
	}
	if rt < 0 || kl < 0 {
		return "the runtime or kubelet was never asked before it"
	}
	r, k := w.calls[rt], w.calls[kl]
	if r.listed[x.pod] || k.listed[x.pod] {
		return "the last answer listed the pod"
	}
	// The runtime's answer counts from when it was asked.
	if age := x.issued.Sub(r.issued); age > MaxCheckAge {
		return fmt.Sprintf("the runtime's answer was %s old", age)
	}
	if age := x.issued.Sub(k.at); age > MaxCheckAge {
		return fmt.Sprintf("kubelet's answer was %s old", age)
	}
	for j := min(rt, kl) + 1; j < i; j++ {
		c := w.calls[j]
		if c.kind != "runtime" && c.kind != "kubelet" && c.liveAt[x.pod] {
			return fmt.Sprintf("the pod was listed again at call %d (%s), after the last answer", c.seq, c.kind)
		}
	}
	return ""
}

// pairs checks every intent has exactly one outcome record: a record of
// the same ACTION_ID and ACTION, or a keep record of that ACTION_ID (a
// refusal) closing the one intent left open.
func pairs(w *world, records []logRecord) string {
	outcomes := map[string]int{}
	keeps := map[string]int{}
	intents := map[string]bool{}
	for _, r := range records {
		id, action := r.str(audit.ActionID), r.str(audit.Action)
		switch {
		case id == "":
		case r.str(audit.MessageID) == audit.IDActionIntent:
			intents[id+" "+action] = true
		case action == audit.ActionKeep:
			keeps[id]++
		default:
			outcomes[id+" "+action]++
		}
	}
	for _, in := range w.intents {
		intents[in.actionID+" "+in.action] = true
	}
	for k := range intents {
		id, _, _ := strings.Cut(k, " ")
		if outcomes[k] == 0 && keeps[id] > 0 {
			keeps[id]--
			outcomes[k]++
		}
	}
	for k := range intents {
		if outcomes[k] != 1 {
			return fmt.Sprintf("intent %s has %d outcome records, want 1", k, outcomes[k])
		}
	}
	return ""
}

// acceptedFirst checks no action ran without an accepted intent for it.
func acceptedFirst(w *world) string {
	step := map[string]string{"stop": audit.ActionStop, "signal": audit.ActionKill, "rmdir": audit.ActionRemove}
	for _, c := range w.calls {
		s, ok := step[c.kind]
		if !ok {
			continue
		}
		var last *modelIntent
		for i := range w.intents {
			in := &w.intents[i]
			if in.seq < c.seq && in.pod == c.pod && in.action == s {
				last = in
			}
		}
		if last != nil && !last.accepted {
			return fmt.Sprintf("call %d: %s of pod %d after its intent was refused", c.seq, c.kind, c.pod)
		}
	}
	return ""
}

// drawn is a schedule drawn by rapid.
type drawn struct {
	t    *rapid.T
	pods int
}

var eventKinds = []string{"pod-back", "runtime-lists", "kubelet-tracks", "pod-gone", "proc-enter", "proc-leave",
	"job-queued", "job-done", "runtime-fails", "runtime-ok", "kubelet-fails", "kubelet-ok", "journal-down", "journal-up", "advance"}

func (d drawn) at(boundary string) []event {
	// Most boundaries see nothing happen.
	n := rapid.IntRange(0, 9).Draw(d.t, "n")
	if n < 7 {
		return nil
	}
	kind := rapid.SampledFrom(eventKinds).Draw(d.t, "event "+boundary)
	ev := event{kind: kind, pod: rapid.IntRange(0, d.pods-1).Draw(d.t, "pod")}
	if kind == "advance" {
		ev.d = rapid.SampledFrom([]time.Duration{time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond, 2 * time.Second}).Draw(d.t, "by")
	}
	return []event{ev}
}

// modelProperty is one generated run: a node with 1-3 orphan pods, a
// schedule, one to three passes of Apply, the invariants after each.
func modelProperty(t *rapid.T) { modelRun(t, config.ModeAct) }

// modelObserveProperty is the same run in observe mode, where nothing
// may be stopped, signalled or removed whatever the schedule does.
func modelObserveProperty(t *rapid.T) { modelRun(t, config.ModeObserve) }

func modelRun(t *rapid.T, mode string) {
	n := rapid.IntRange(1, 3).Draw(t, "pods")
	systemd := rapid.SliceOfN(rapid.Bool(), n, n).Draw(t, "systemd")
	kill := rapid.SliceOfN(rapid.Bool(), n, n).Draw(t, "kill")
	level := rapid.SampledFrom([]string{"debug", "info", "warning", "error"}).Draw(t, "log.level")
	w, e, s, buf, err := newWorld(drawn{t, n}, n, systemd, kill, level)
	if err != nil {
		t.Fatal(err)
	}
	e.Config.Clean.Mode = mode
	passed := false
	t.Repeat(map[string]func(*rapid.T){
		"pass": func(t *rapid.T) {
			e.Apply(context.Background(), s, false)
			passed = true
		},
		"between passes": func(t *rapid.T) {
			w.mu.Lock()
			w.boundary("between passes")
			w.mu.Unlock()
		},
		"": func(t *rapid.T) {
			if !passed {
				return
			}
			passed = false
			if why := checkInvariants(w, buf.Bytes()); why != "" {
				t.Fatal(why)
			}
			if mode == config.ModeObserve {
				if why := nothingDone(w, buf.Bytes()); why != "" {
					t.Fatal(why)
				}
			}
		},
	})
}

// modelChecks is how many schedules plain go test runs (rapid's default
// is 100); -rapid.checks overrides it.
const modelChecks = 2000

// Thousands of generated schedules in plain go test.
func TestRemovalModel(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue && !testing.Short() {
		if err := flag.Set("rapid.checks", fmt.Sprint(modelChecks)); err != nil {
			t.Fatal(err)
		}
		defer flag.Set("rapid.checks", f.DefValue)
	}
	rapid.Check(t, modelProperty)
}

// Observe mode, over generated schedules: no action and no intent.
func TestRemovalModelObserve(t *testing.T) {
	rapid.Check(t, modelObserveProperty)
}

// nothingDone says which stop, signal or rmdir an observing engine made,
// or which intent record it wrote, or "".
func nothingDone(w *world, logged []byte) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range w.calls {
		if x.kind == "stop" || x.kind == "signal" || x.kind == "rmdir" {
			return fmt.Sprintf("observe mode: call %d: %s of pod %d", x.seq, x.kind, x.pod)
		}
	}
	records, err := parseLog(logged)
	if err != nil {
		return err.Error()
	}
	for _, r := range records {
		if r.str(audit.MessageID) == audit.IDActionIntent {
			return "observe mode: an intent record was written: " + r.str("msg")
		}
	}
	return ""
}

// The same property as a fuzz target: a failing schedule is saved as a
// corpus entry and stays a regression test.
func FuzzRemovalModel(f *testing.F) {
	f.Fuzz(rapid.MakeFuzz(modelProperty))
}
