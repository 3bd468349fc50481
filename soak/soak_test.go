package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// Orphan kinds (report rows).
const (
	kindStopRemove = "stop+remove"
	kindKubelet    = "kubelet-tracked"
	kindProcess    = "live-process"
	kindRmdir      = "rmdir-refused"
	kindBatch      = "daemon-killed batch"
	kindSlice      = "systemd slice"
)

var kindHow = map[string]string{
	kindStopRemove: "CRI StopPodSandbox + RemovePodSandbox, kubelet's pods/<uid> deleted: pod<uid> is left in every hierarchy. Clock: at RemovePodSandbox",
	kindKubelet:    "as stop+remove, but kubelet's pods/<uid> kept for 3-8 s (kept: `kubelet-tracks-pod`). Clock: when it is deleted",
	kindProcess:    "as stop+remove, then a `sleep` moved into a child cgroup `<64 hex>` in every hierarchy for 3-8 s (kept: `has-processes`). Clock: when it exits",
	kindRmdir:      "as stop+remove, then the pod dir in the memory hierarchy bind-mounted onto itself in the daemon's mount namespace for 3-8 s: the kernel refuses its rmdir (EBUSY), the other hierarchies go. Clock: when it is unmounted",
	kindBatch:      "3-5 pods orphaned at once for the daemon-SIGKILL fault; the daemon is killed when the first of them starts to disappear, and restarted. Clock: at RemovePodSandbox",
	kindSlice:      "systemd driver: a pod slice with a scope under a real systemd --user manager; the scope's process ends, the slice stays, no sandbox. Clock: when the process has ended",
}

// knobs come from the environment (soak/run.sh).
type knobs struct {
	dur     time.Duration
	out     string
	seed    uint64
	maxLive int
	faultEv time.Duration
	smoke   bool
	note    string
	noDbus  bool
}

func knobsFromEnv() (knobs, error) {
	k := knobs{out: os.Getenv("SOAK_OUT"), note: os.Getenv("SOAK_NOTE"), smoke: os.Getenv("SOAK_SMOKE") == "1", maxLive: 10, noDbus: os.Getenv("SOAK_NO_DBUS") == "1"}
	var err error
	if k.dur, err = time.ParseDuration(os.Getenv("CGROUPCLEAN_SOAK")); err != nil || k.dur < 30*time.Second {
		return k, fmt.Errorf("CGROUPCLEAN_SOAK=%q: want a duration of at least 30s", os.Getenv("CGROUPCLEAN_SOAK"))
	}
	if k.out == "" {
		k.out = "../bench/soak.md"
	}
	if v := os.Getenv("SOAK_SEED"); v != "" {
		if k.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return k, fmt.Errorf("SOAK_SEED=%q: %w", v, err)
		}
	} else {
		k.seed = uint64(time.Now().UnixNano())
	}
	if v := os.Getenv("SOAK_MAX_PODS"); v != "" {
		if k.maxLive, err = strconv.Atoi(v); err != nil || k.maxLive < 4 {
			return k, fmt.Errorf("SOAK_MAX_PODS=%q: want at least 4", v)
		}
	}
	// A fault every 12 s: a 10-minute soak injects about 50.
	k.faultEv = 12 * time.Second
	if k.smoke {
		k.faultEv = 6 * time.Second
	}
	if v := os.Getenv("SOAK_FAULT_EVERY"); v != "" {
		if k.faultEv, err = time.ParseDuration(v); err != nil || k.faultEv < time.Second {
			return k, fmt.Errorf("SOAK_FAULT_EVERY=%q: want a duration of at least 1s", v)
		}
	}
	return k, nil
}

// pod is a live sandbox and the cgroup directories it had when created.
type pod struct {
	uid, rel, qos string
	sandbox       string
	dirs          []string // absolute, every hierarchy
}

// orphan is a pod cgroup left behind, and what still holds it back.
type orphan struct {
	kind, uid, rel string
	// blocked names what keeps it ("" once removable); until names when
	// the harness lifts it.
	blocked    string
	until      time.Time
	proc       *testbed.Process
	releasedAt time.Time
	goneAt     time.Time
	logged     bool
	sd         bool // under the systemd root
}

type harness struct {
	t       *testing.T
	ctx     context.Context
	rng     *mrand.Rand
	k       knobs
	root    *testbed.CgroupRoot
	ctrd    *testbed.Containerd
	kubelet string
	d       *daemonProc
	log     *logWatch
	rep     *Report
	kinds   map[string]*OrphanKind
	faults  map[string]*Fault
	sd      *sdPhase

	a        *source // the cgroupfs daemon
	mu       sync.Mutex
	live     map[string]*pod
	orphans  []*orphan
	lost     map[string]bool
	blockers map[string]bool // memory-hierarchy dirs mounted onto themselves in the daemon's namespace
}

// source is one daemon, its log and the pods it must keep.
type source struct {
	d    *daemonProc
	log  *logWatch
	root *testbed.CgroupRoot
	live map[string]*pod
	sd   bool
	// outageFrom is the log offset from which removals are forbidden
	// (the runtime is down or stalled), -1 when none.
	outageFrom int64
}

// TestSoak is `make soak` / `make soak-smoke`. It is skipped unless
// CGROUPCLEAN_SOAK=<duration> is set: it runs for minutes and is started
// by its own make target, never by `go test ./...` (even in CI, where
// CGROUPCLEAN_REQUIRE_INTEGRATION is set).
func TestSoak(t *testing.T) {
	if os.Getenv("CGROUPCLEAN_SOAK") == "" {
		t.Skip("the soak runs only from `make soak` / `make soak-smoke` (CGROUPCLEAN_SOAK=<duration>)")
	}
	testbed.RequireRoot(t)
	k, err := knobsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"unshare", "nsenter", "mount", "umount", "sleep"} {
		_, err := exec.LookPath(bin)
		testbed.Need(t, err == nil, bin+" on PATH (util-linux, coreutils)")
	}
	// Ctrl-C ends the churn early and still drains, reports and cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t.Cleanup(stop)

	h := &harness{t: t, ctx: ctx, k: k, rng: mrand.New(mrand.NewPCG(k.seed, k.seed^0x9e3779b97f4a7c15)),
		live: map[string]*pod{}, lost: map[string]bool{}, blockers: map[string]bool{},
		kinds: map[string]*OrphanKind{}, faults: map[string]*Fault{}}
	h.rep = &Report{Date: time.Now(), Planned: k.dur, Smoke: k.smoke, Seed: k.seed, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Note: k.note, PodsByQoS: Counter{}, Kept: Counter{}, Failed: Counter{}}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.rep.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		h.rep.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	if out, err := exec.Command("containerd", "--version").Output(); err == nil {
		h.rep.Containerd = strings.TrimSpace(string(out))
	}
	t.Logf("soak: %s, seed %d, report to %s", k.dur, k.seed, k.out)

	dir := t.TempDir()
	bin := buildDaemon(t, dir)
	// Order matters for cleanup (last registered runs first): the daemon
	// stops, then containerd removes its sandboxes, then the roots go.
	h.root = testbed.NewCgroupRoot(t, "soak")
	for _, hh := range h.root.Hierarchies {
		h.rep.Hierarchies = append(h.rep.Hierarchies, hh.Name)
	}
	if !k.noDbus {
		h.sd = startSDPhase(t)
	}
	h.ctrd = testbed.StartContainerd(t)
	h.kubelet = filepath.Join(dir, "kubelet")
	must(t, os.MkdirAll(filepath.Join(h.kubelet, "pods"), 0o755))
	for _, q := range []string{"kubepods/burstable", "kubepods/besteffort"} {
		must(t, h.root.Mkdir(q))
	}
	cfg := filepath.Join(dir, "config.toml")
	must(t, os.WriteFile(cfg, []byte(h.config(h.ctrd.Endpoint(), h.root.Rel("kubepods"), "cgroupfs", "never", "")), 0o644))
	h.rep.Config = "daemon.interval 1s, jitter 0, clean.confirm_passes 2, min_age 0s, max_removal_share 1.0, runtime.timeout 1s, use_systemd never, memcg off, log.format json"
	h.d = &daemonProc{bin: bin, cfg: cfg, logPath: filepath.Join(dir, "daemon.log")}
	h.log = &logWatch{path: h.d.logPath}
	h.a = &source{d: h.d, log: h.log, root: h.root, live: h.live, outageFrom: -1}
	must(t, h.d.start(nil))
	h.rep.DaemonStarts++
	t.Cleanup(func() {
		if err := h.d.stop(); err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(h.d.logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("--- daemon log tail:\n%s", b)
		}
	})
	if h.sd != nil {
		h.sd.startDaemon(t, h, bin, dir)
	}
	for _, src := range h.sources() {
		h.waitLog(src, 10*time.Second, "first pass summary", func(e entry) bool { return e.ID == audit.IDPassSummary })
	}

	// Timings: the harness looks at every orphan every 100 ms.
	pollDone := make(chan struct{})
	pollCtx, stopPoll := context.WithCancel(context.Background())
	go func() { defer close(pollDone); h.pollOrphans(pollCtx) }()
	defer func() { stopPoll(); <-pollDone }()

	faults := []func(){h.faultContainerdKill, h.faultStall, h.faultDaemonKill, h.faultRmdir}
	if h.sd != nil {
		faults = append(faults, h.faultDbus)
	}
	order := h.rng.Perm(len(faults))
	start := time.Now()
	// Leave time for the drain (blockers lifted, last orphans removed).
	end := start.Add(k.dur - 20*time.Second)
	nextFault, fi := start.Add(k.faultEv/2), 0
	for time.Now().Before(end) && ctx.Err() == nil {
		h.releaseDue()
		if time.Now().After(nextFault) {
			faults[order[fi%len(order)]]()
			fi++
			if fi%len(order) == 0 {
				order = h.rng.Perm(len(faults))
			}
			nextFault = time.Now().Add(k.faultEv)
		} else {
			h.churn()
		}
		h.check("step")
		time.Sleep(time.Duration(100+h.rng.IntN(400)) * time.Millisecond)
	}
	h.drain(20 * time.Second)
	h.rep.Ran = time.Since(start)
	h.finish()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) config(endpoint, podRoot, driver, useSystemd, bus string) string {
	s := fmt.Sprintf(`[runtime]
endpoint = %q
timeout = "1s"

[cgroup]
pod_root = %q
driver = %q
kubelet_root = %q

[clean]
min_age = "0s"
confirm_passes = 2
max_removal_share = 1.0
use_systemd = %q
unit_stop_timeout = "5s"
`, endpoint, podRoot, driver, h.kubelet, useSystemd)
	if bus != "" {
		s += fmt.Sprintf("systemd_bus = %q\n", bus)
	}
	return s + `
[daemon]
interval = "1s"
jitter = 0.0
state_dir = ` + fmt.Sprintf("%q", filepath.Join(filepath.Dir(h.kubelet), "state-"+driver)) + `

[log]
level = "info"
format = "json"

[memcg]
mode = "off"

[metrics]
listen = ""
`
}

func (h *harness) kind(k string) *OrphanKind {
	if o := h.kinds[k]; o != nil {
		return o
	}
	o := &OrphanKind{Kind: k, How: kindHow[k]}
	h.kinds[k] = o
	return o
}

func (h *harness) fault(kind, detail string) *Fault {
	if f := h.faults[kind]; f != nil {
		return f
	}
	f := &Fault{Kind: kind, Detail: detail}
	h.faults[kind] = f
	return f
}

func (h *harness) violation(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	h.t.Errorf("VIOLATION: %s", msg)
	h.mu.Lock()
	h.rep.Violations = append(h.rep.Violations, msg)
	h.mu.Unlock()
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// churn is one workload step, picked at random.
func (h *harness) churn() {
	h.mu.Lock()
	n := len(h.live)
	h.mu.Unlock()
	switch w := h.rng.IntN(10); {
	case n < 3 || (w < 4 && n < h.k.maxLive):
		h.createPod()
	case w < 6:
		h.deleteClean()
	case w < 8:
		h.orphanPod(kindStopRemove)
	case w < 9:
		h.orphanPod(kindKubelet)
	default:
		h.orphanPod(kindProcess)
	}
	if h.sd != nil && h.rng.IntN(6) == 0 {
		h.sd.churn(h)
	}
}

var qosDirs = []struct{ name, dir string }{
	{"burstable", "kubepods/burstable"}, {"besteffort", "kubepods/besteffort"}, {"guaranteed", "kubepods"},
}

// createPod does what kubelet and the runtime do for a new pod: kubelet's
// pod dir, the pod cgroup, RunPodSandbox under it, sometimes a container.
// The directories it then has are the ones it must keep while it lives.
func (h *harness) createPod() {
	q := qosDirs[h.rng.IntN(len(qosDirs))]
	uid := testbed.RandomUID()
	rel := q.dir + "/pod" + uid
	must(h.t, os.MkdirAll(filepath.Join(h.kubelet, "pods", uid), 0o755))
	must(h.t, h.root.Mkdir(rel))
	p := &pod{uid: uid, rel: rel, qos: q.name}
	p.sandbox = h.ctrd.RunPod(h.t, h.root.Rel(rel), uid, "soak-"+uid[:8])
	withC := h.rng.IntN(2) == 0
	if withC {
		h.ctrd.CreateStartContainer(h.t, p.sandbox, "c-"+uid[:8])
	}
	p.dirs = h.dirsOf(rel)
	h.mu.Lock()
	h.live[uid] = p
	h.rep.PodsCreated++
	h.rep.PodsByQoS[q.name]++
	h.rep.WithKubeletDir++
	if withC {
		h.rep.WithContainer++
	}
	h.rep.MaxLive = max(h.rep.MaxLive, len(h.live))
	h.mu.Unlock()
}

// dirsOf lists rel and every directory under it, in every hierarchy.
func (h *harness) dirsOf(rel string) []string {
	var out []string
	for _, hh := range h.root.Hierarchies {
		_ = filepath.WalkDir(filepath.Join(hh.Path(h.root.Name), rel), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// pickLive takes a live pod out of the live set (it is about to stop).
func (h *harness) pickLive() *pod {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.live) == 0 {
		return nil
	}
	uids := make([]string, 0, len(h.live))
	for u := range h.live {
		uids = append(uids, u)
	}
	sort.Strings(uids)
	p := h.live[uids[h.rng.IntN(len(uids))]]
	delete(h.live, p.uid)
	return p
}

// deleteClean is a pod deleted the normal way: sandbox stopped and
// removed, then kubelet removes the pod cgroup and its pod dir.
func (h *harness) deleteClean() {
	p := h.pickLive()
	if p == nil {
		return
	}
	h.ctrd.StopRemovePod(h.t, p.sandbox)
	if err := rmTree(h.root, p.rel); err != nil {
		h.t.Fatalf("delete pod cgroup %s: %v", p.rel, err)
	}
	must(h.t, os.RemoveAll(filepath.Join(h.kubelet, "pods", p.uid)))
	h.mu.Lock()
	h.rep.DeletedCleanly++
	h.mu.Unlock()
}

// rmTree removes rel leaf-first in every hierarchy, as kubelet does for
// a pod it deletes (the harness's own pods only).
func rmTree(r *testbed.CgroupRoot, rel string) error {
	var errs []error
	for _, hh := range r.Hierarchies {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(hh.Path(r.Name), rel), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// orphanPod turns a live pod into an orphan of the given kind.
func (h *harness) orphanPod(kind string) *orphan {
	p := h.pickLive()
	if p == nil {
		return nil
	}
	h.ctrd.StopRemovePod(h.t, p.sandbox)
	o := &orphan{kind: kind, uid: p.uid, rel: p.rel}
	hold := time.Duration(3000+h.rng.IntN(5000)) * time.Millisecond
	switch kind {
	case kindKubelet:
		o.blocked, o.until = "kubelet pod dir", time.Now().Add(hold)
	case kindProcess:
		child := p.rel + "/" + randomHex(64)
		must(h.t, h.root.Mkdir(child))
		o.proc = testbed.StartProcess(h.t, "sleep", "3600")
		must(h.t, h.root.AddProc(child, o.proc.PID))
		o.blocked, o.until = "process", time.Now().Add(hold)
	}
	if o.blocked != "kubelet pod dir" {
		must(h.t, os.RemoveAll(filepath.Join(h.kubelet, "pods", p.uid)))
	}
	if o.blocked == "" {
		o.releasedAt = time.Now()
	}
	h.mu.Lock()
	h.orphans = append(h.orphans, o)
	h.kind(kind).Made++
	h.mu.Unlock()
	return o
}

// releaseDue lifts the blockers whose hold time has passed.
func (h *harness) releaseDue() {
	h.mu.Lock()
	var due []*orphan
	for _, o := range h.orphans {
		if o.blocked != "" && time.Now().After(o.until) {
			due = append(due, o)
		}
	}
	h.mu.Unlock()
	for _, o := range due {
		h.release(o)
	}
}

func (h *harness) release(o *orphan) {
	switch o.kind {
	case kindKubelet:
		must(h.t, os.RemoveAll(filepath.Join(h.kubelet, "pods", o.uid)))
	case kindProcess, kindSlice:
		if o.proc != nil {
			_ = syscall.Kill(o.proc.PID, syscall.SIGKILL)
			if !o.proc.Wait(10 * time.Second) {
				h.t.Fatalf("sleep %d did not exit after SIGKILL", o.proc.PID)
			}
		}
	case kindRmdir:
		dir := h.memDir(o.rel)
		if h.d.running() {
			if err := h.d.inNS("umount", dir); err != nil {
				h.t.Fatalf("lift rmdir blocker: %v", err)
			}
		}
		h.mu.Lock()
		delete(h.blockers, dir)
		h.mu.Unlock()
	}
	h.mu.Lock()
	o.blocked, o.releasedAt = "", time.Now()
	h.mu.Unlock()
}

func (h *harness) memDir(rel string) string {
	for _, hh := range h.root.Hierarchies {
		if hh.Has("memory") {
			return filepath.Join(hh.Path(h.root.Name), rel)
		}
	}
	// cgroup v2 only: the one hierarchy holds every controller.
	for _, hh := range h.root.Hierarchies {
		if hh.Version == 2 {
			return filepath.Join(hh.Path(h.root.Name), rel)
		}
	}
	h.t.Fatal("no memory hierarchy")
	return ""
}

// pollOrphans notes when each orphan's directory is gone everywhere.
func (h *harness) pollOrphans(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		h.mu.Lock()
		pending := make([]*orphan, 0, len(h.orphans))
		for _, o := range h.orphans {
			if o.goneAt.IsZero() {
				pending = append(pending, o)
			}
		}
		h.mu.Unlock()
		for _, o := range pending {
			if h.exists(o) > 0 {
				continue
			}
			now := time.Now()
			h.mu.Lock()
			o.goneAt = now
			blocked := o.blocked
			k := h.kind(o.kind)
			if blocked == "" {
				k.Removed++
				k.Waits = append(k.Waits, now.Sub(o.releasedAt))
			}
			h.mu.Unlock()
			if blocked != "" {
				h.violation("orphan %s (%s) removed while its %s was still there", o.rel, o.kind, blocked)
			}
		}
	}
}

func (h *harness) exists(o *orphan) int {
	if o.sd {
		return h.sd.sd.Root.Exists(o.rel)
	}
	return h.root.Exists(o.rel)
}

// check runs after every step: the daemon is up (or was stopped by the
// harness), the log is read, and every live pod still has every
// directory it had.
func (h *harness) check(step string) {
	h.mu.Lock()
	h.rep.Steps++
	h.rep.Checks++
	h.mu.Unlock()
	for _, src := range h.sources() {
		if !src.d.running() && !src.d.expected {
			h.violation("daemon %s exited on its own (%v) after step %s", src.d.cfg, src.d.state, step)
			h.rep.UnexpectedExits++
			must(h.t, h.restartDaemon(src.d))
		}
	}
	h.readLogs()
	h.mu.Lock()
	var lives []*pod
	for _, src := range h.sources() {
		for _, p := range src.live {
			lives = append(lives, p)
		}
	}
	h.mu.Unlock()
	for _, p := range lives {
		lostHere := 0
		for _, d := range p.dirs {
			if _, err := os.Stat(d); err != nil && !h.lost[d] {
				h.lost[d] = true
				lostHere++
				h.violation("live pod %s lost %s after step %s: %v", p.uid, d, step, err)
			}
		}
		if lostHere > 0 {
			h.rep.LostDirs += lostHere
			h.rep.LostPods++
		}
	}
}

func (h *harness) sources() []*source {
	if h.sd != nil && h.sd.src != nil {
		return []*source{h.a, h.sd.src}
	}
	return []*source{h.a}
}

func (h *harness) restartDaemon(d *daemonProc) error {
	var mounts []string
	if d == h.d {
		h.mu.Lock()
		for m := range h.blockers {
			if _, err := os.Stat(m); err == nil {
				mounts = append(mounts, m)
			}
		}
		h.mu.Unlock()
		sort.Strings(mounts)
	}
	h.rep.DaemonStarts++
	return d.start(mounts)
}

// readLogs tallies every daemon's new log entries.
func (h *harness) readLogs() {
	for _, src := range h.sources() {
		es, err := src.log.poll()
		if err != nil {
			h.t.Fatalf("read daemon log: %v", err)
		}
		h.tally(src, es)
	}
}

// tally counts a source's entries and flags removals of live pods or
// during a runtime outage.
func (h *harness) tally(src *source, es []entry) {
	h.mu.Lock()
	var bad []string
	for _, e := range es {
		switch e.ID {
		case audit.IDPassSummary:
			h.rep.Passes++
		case audit.IDRemovalRefused, audit.IDKeptSummary:
			h.rep.AddKept(e.ID, e.Level, e.Reason, e.Count)
		case audit.IDRemovalFailed:
			h.rep.Failed[e.Reason]++
		case audit.IDUnitStopped:
			h.rep.UnitsStopped++
		case audit.IDOrphanRemoved:
			h.rep.RemovalEntries++
			for _, p := range src.live {
				if pp := src.root.Rel(p.rel); e.Path == pp || strings.HasPrefix(e.Path, pp+"/") {
					h.rep.LiveRemovalLogged++
					bad = append(bad, fmt.Sprintf("removal entry for live pod %s: %s", p.uid, e.Path))
				}
			}
			if src.outageFrom >= 0 && e.Off >= src.outageFrom {
				h.rep.OutageRemovals++
				bad = append(bad, fmt.Sprintf("removal while the runtime was down: %s", e.Path))
			}
			for _, o := range h.orphans {
				if o.sd == src.sd && src.root.Rel(o.rel) == e.Path {
					o.logged = true
				}
			}
		}
	}
	h.mu.Unlock()
	for _, b := range bad {
		h.violation("%s", b)
	}
}

// waitLog reads the log until an entry matches or limit passes.
func (h *harness) waitLog(src *source, limit time.Duration, what string, match func(entry) bool) entry {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		es, err := src.log.poll()
		if err != nil {
			h.t.Fatalf("read daemon log: %v", err)
		}
		h.tally(src, es)
		for _, e := range es {
			if match(e) {
				return e
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("no %s in the daemon log after %v", what, limit)
	return entry{}
}

// ---- faults ----

// outage runs hold while the runtime cannot answer: from the first pass
// that finds it unreachable until it is back, no removal may be logged
// and no orphan directory may go.
func (h *harness) outage(kind string, hold time.Duration, down, up func()) {
	h.readLogs()
	down()
	began := time.Now()
	for _, src := range h.sources() {
		e := h.waitLog(src, hold+3*time.Second, kind+": runtime-unreachable entry", func(e entry) bool {
			return e.ID == audit.IDRuntimeUnreachable || e.Reason == "runtime-unreachable-now"
		})
		h.mu.Lock()
		src.outageFrom = e.Off
		h.mu.Unlock()
	}
	h.mu.Lock()
	counts := map[*orphan]int{}
	for _, o := range h.orphans {
		if o.goneAt.IsZero() {
			counts[o] = 0
		}
	}
	h.mu.Unlock()
	for o := range counts {
		counts[o] = h.exists(o)
	}
	for time.Since(began) < hold {
		time.Sleep(100 * time.Millisecond)
	}
	h.check(kind + " (runtime down)")
	for o, n := range counts {
		if now := h.exists(o); now < n {
			h.violation("%s: orphan %s lost directories while the runtime was down (%d -> %d)", kind, o.rel, n, now)
			h.mu.Lock()
			h.rep.OutageRemovals++
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	for _, src := range h.sources() {
		src.outageFrom = -1
	}
	h.mu.Unlock()
	up()
}

func (h *harness) faultContainerdKill() {
	f := h.fault("containerd SIGKILL + restart", "containerd alone SIGKILLed (shims and sandboxes live on), down 3 s (3 passes), then restarted on the same state. Checked: the daemon logs runtime-unreachable, no removal entry and no orphan directory gone from the first such pass until the restart; live sandboxes keep every directory (they are READY again after the restart)")
	h.outage("containerd SIGKILL", 3*time.Second, func() { h.ctrd.Kill9(h.t) }, func() { h.ctrd.Restart(h.t) })
	f.Count++
}

func (h *harness) faultStall() {
	f := h.fault("containerd stalled (SIGSTOP 4 s)", "containerd SIGSTOPped by its PID for 4 s (its socket accepts and never answers; runtime.timeout 1s), then SIGCONT. Checked as for the SIGKILL")
	pid := h.ctrd.PID()
	h.outage("containerd stall", 4*time.Second, func() {
		must(h.t, syscall.Kill(pid, syscall.SIGSTOP))
	}, func() {
		must(h.t, syscall.Kill(pid, syscall.SIGCONT))
		h.waitCRI()
	})
	f.Count++
}

// waitCRI waits until containerd answers again.
func (h *harness) waitCRI() {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := h.ctrd.Runtime().Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("containerd does not answer after SIGCONT: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultDaemonKill orphans a batch of pods, waits for the pass that saw
// them first, then SIGKILLs the daemon as soon as one of them starts to
// disappear (the next pass is removing them) and starts it again.
func (h *harness) faultDaemonKill() {
	f := h.fault("daemon SIGKILL mid-pass + restart", "")
	for h.liveCount() < 6 {
		h.createPod()
	}
	n := 3 + h.rng.IntN(3)
	var batch []*orphan
	for i := 0; i < n; i++ {
		if o := h.orphanPod(kindBatch); o != nil {
			batch = append(batch, o)
		}
	}
	h.check("daemon-kill batch orphaned")
	total := func() int {
		s := 0
		for _, o := range batch {
			s += h.exists(o)
		}
		return s
	}
	full := total()
	// The first pass after the batch sees it (awaiting-confirmation); the
	// next one removes it: watch for the first rmdir.
	deadline := time.Now().Add(6 * time.Second)
	for total() == full && time.Now().Before(deadline) {
		time.Sleep(500 * time.Microsecond)
	}
	left := total()
	must(h.t, h.d.kill9())
	if left < full && left > 0 {
		h.rep.KillsMidApply++
	}
	f.Count++
	h.check("daemon SIGKILLed")
	time.Sleep(time.Duration(h.rng.IntN(1500)) * time.Millisecond)
	must(h.t, h.restartDaemon(h.d))
	f.Detail = fmt.Sprintf("3-5 pods orphaned at once; the harness polls their directories every 0.5 ms and SIGKILLs the daemon (by its PID) at the first rmdir, then restarts it 0-1.5 s later. %d of %d kills landed mid-apply (part of the batch gone, part not). Checked: live sandboxes keep every directory; the new daemon removes what the killed pass left (also half-removed pods), with the confirmation count starting again", h.rep.KillsMidApply, f.Count)
}

func (h *harness) liveCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.live)
}

// faultRmdir makes an orphan whose memory-hierarchy directory the kernel
// will not remove: it is a mount point (bound onto itself) in the
// daemon's mount namespace.
func (h *harness) faultRmdir() {
	f := h.fault("rmdir refused (EBUSY)", "an orphan's pod dir in the memory hierarchy bind-mounted onto itself inside the daemon's mount namespace (nsenter), so the daemon's rmdir gets EBUSY there; lifted after 3-8 s (umount; a restarted daemon gets the mount again until then). Checked: removal failures logged with REASON busy, the other hierarchies removed, the rest removed after the lift")
	if h.liveCount() < 2 {
		h.createPod()
	}
	o := h.orphanPod(kindRmdir)
	if o == nil {
		return
	}
	dir := h.memDir(o.rel)
	must(h.t, h.d.inNS("mount", "--bind", dir, dir))
	h.mu.Lock()
	h.blockers[dir] = true
	o.blocked, o.until, o.releasedAt = "rmdir blocker", time.Now().Add(time.Duration(3000+h.rng.IntN(5000))*time.Millisecond), time.Time{}
	h.mu.Unlock()
	f.Count++
}

// drain stops the churn: every blocker is lifted, and every orphan must
// be gone within limit.
func (h *harness) drain(limit time.Duration) {
	h.mu.Lock()
	var blocked []*orphan
	for _, o := range h.orphans {
		if o.blocked != "" {
			blocked = append(blocked, o)
		}
	}
	h.mu.Unlock()
	for _, o := range blocked {
		h.release(o)
	}
	h.check("drain")
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if h.pending() == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // one more poll of the orphans
	h.check("end")
}

func (h *harness) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.orphans {
		if o.goneAt.IsZero() {
			n++
		}
	}
	return n
}

// finish stops the daemon (it must exit 0), writes the report and fails
// the test on any violation.
func (h *harness) finish() {
	for _, src := range h.sources() {
		if err := src.d.stop(); err != nil {
			h.violation("stop daemon: %v", err)
		}
	}
	h.readLogs()
	h.mu.Lock()
	for _, o := range h.orphans {
		if o.goneAt.IsZero() {
			h.rep.LeftAtEnd++
			h.rep.Violations = append(h.rep.Violations, fmt.Sprintf("orphan %s (%s) still there at the end", o.rel, o.kind))
		} else if !o.logged && o.blocked == "" {
			h.rep.UnloggedRemoved++
		}
	}
	for _, k := range []string{kindStopRemove, kindKubelet, kindProcess, kindRmdir, kindBatch, kindSlice} {
		if o := h.kinds[k]; o != nil {
			h.rep.Orphans = append(h.rep.Orphans, o)
		}
	}
	for _, k := range []string{"containerd SIGKILL + restart", "containerd stalled (SIGSTOP 4 s)", "daemon SIGKILL mid-pass + restart", "rmdir refused (EBUSY)", "systemd D-Bus gone"} {
		if f := h.faults[k]; f != nil {
			h.rep.Faults = append(h.rep.Faults, f)
		}
	}
	for _, src := range h.sources() {
		h.rep.NonJSONLines += len(src.log.nonJSON)
	}
	h.mu.Unlock()
	if k := h.kinds[kindSlice]; k != nil && k.Removed > 0 && h.rep.UnitsStopped == 0 {
		h.t.Errorf("%d orphan slices removed and no unit stopped through systemd", k.Removed)
	}
	if h.rep.LeftAtEnd > 0 {
		h.t.Errorf("%d orphans still there at the end", h.rep.LeftAtEnd)
	}
	if h.rep.UnloggedRemoved > 0 && h.faults["daemon SIGKILL mid-pass + restart"] == nil {
		h.t.Errorf("%d orphans removed without a removal entry, and the daemon was never killed", h.rep.UnloggedRemoved)
	}
	for _, src := range h.sources() {
		for _, l := range src.log.nonJSON {
			h.t.Logf("non-JSON daemon log line: %s", l)
		}
	}
	out := h.k.out
	must(h.t, os.MkdirAll(filepath.Dir(out), 0o755))
	f, err := os.Create(out)
	must(h.t, err)
	must(h.t, h.rep.Write(f))
	must(h.t, f.Close())
	abs, _ := filepath.Abs(out)
	h.t.Logf("soak report written to %s", abs)
	b, _ := os.ReadFile(out)
	h.t.Logf("\n%s", b)
}
