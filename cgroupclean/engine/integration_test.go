package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// node is a kubelet-like layout under the test's own cgroup root, with a
// real containerd answering CRI.
type node struct {
	root    *testbed.CgroupRoot
	ctrd    *testbed.Containerd
	kubelet string
	cfg     config.Config
}

func newNode(t *testing.T) *node {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "engine")
	ctrd := testbed.StartContainerd(t)
	n := &node{root: r, ctrd: ctrd, kubelet: t.TempDir()}
	if err := os.Mkdir(filepath.Join(n.kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Runtime.Endpoint = ctrd.Endpoint()
	cfg.Runtime.Timeout = config.Duration{Duration: 3 * time.Second}
	cfg.Cgroup.PodRoot = r.Rel("kubepods")
	cfg.Cgroup.KubeletRoot = n.kubelet
	cfg.Clean.MinAge = config.Duration{}
	cfg.Clean.ConfirmPasses = 1
	cfg.Clean.MaxRemovalShare = 1
	cfg.Clean.UseSystemd = "never"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n.cfg = cfg
	return n
}

func (n *node) engine(t *testing.T) *engine.Engine {
	t.Helper()
	return &engine.Engine{Config: n.cfg, Runtime: dialCRI(t, n.cfg)}
}

// dialCRI is a CRI client of cfg's runtime, closed when the test ends.
func dialCRI(t *testing.T, cfg config.Config) *cri.Client {
	t.Helper()
	c, err := cri.Dial(cfg.Runtime.Endpoint, cfg.Runtime.Timeout.Duration)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// podPath is the cgroupfs pod cgroup path inside the root.
func (n *node) podPath(qos, uid string) string {
	if qos == "guaranteed" {
		return "kubepods/pod" + uid
	}
	return "kubepods/" + qos + "/pod" + uid
}

// runPod starts a real sandbox (and optionally a container) in a pod cgroup.
func (n *node) runPod(t *testing.T, qos string, withContainer bool) (uid, sandbox, ctr string) {
	t.Helper()
	uid = testbed.RandomUID()
	if err := n.root.Mkdir(n.podPath(qos, uid)); err != nil {
		t.Fatal(err)
	}
	sandbox = n.ctrd.RunPod(t, n.root.Rel(n.podPath(qos, uid)), uid, "pod-"+uid[:8])
	if withContainer {
		ctr = n.ctrd.CreateStartContainer(t, sandbox, "c-"+uid[:8])
	}
	return uid, sandbox, ctr
}

// dirs lists every directory under rel in every hierarchy, as
// "hierarchy:relative path", to prove a live pod lost nothing.
func (n *node) dirs(t *testing.T, rel string) []string {
	t.Helper()
	var out []string
	for _, h := range n.root.Hierarchies {
		top := h.Path(n.root.Rel(rel))
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, h.Name+":"+strings.TrimPrefix(p, top))
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

func hexID(n int) string { return fmt.Sprintf("%064x", 0xc0ffee00+n) }

func itemByPath(s *engine.Scan, path string) (decide.Item, bool) {
	for _, it := range s.Plan.Items {
		if it.Path == path {
			return it, true
		}
		for _, c := range it.Children {
			if c.Path == path {
				return c, true
			}
		}
	}
	return decide.Item{}, false
}

func TestScanCleanAgainstContainerd(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()

	// Live pods in all three QoS classes, one with a container, one stopped
	// (NOTREADY but still listed: still live).
	liveBurst, _, _ := n.runPod(t, "burstable", true)
	liveGuar, _, _ := n.runPod(t, "guaranteed", false)
	liveNotReady, nrSandbox, _ := n.runPod(t, "besteffort", false)
	n.ctrd.StopPod(t, nrSandbox)

	// An orphan left by Stop+Remove: containerd removed its sandbox leaf,
	// the pod<uid> dir stays, as on a node whose kubelet lost track.
	orphanStopped, osb, _ := n.runPod(t, "burstable", true)
	n.ctrd.StopRemovePod(t, osb)

	// Hand-made orphan trees: with container dirs; in one hierarchy only.
	orphanTree := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("besteffort", orphanTree)+"/"+hexID(1)))
	must(t, n.root.Mkdir(n.podPath("besteffort", orphanTree)+"/"+hexID(2)))
	orphanOneHier := testbed.RandomUID()
	must(t, n.root.MkdirIn(n.root.Hierarchies[0], n.podPath("guaranteed", orphanOneHier)))

	// An orphan holding a process: kept and reported.
	orphanBusy := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("burstable", orphanBusy)+"/"+hexID(3)))
	proc := testbed.StartProcess(t, "sleep", "300")
	must(t, n.root.AddProc(n.podPath("burstable", orphanBusy)+"/"+hexID(3), proc.PID))

	// An orphan whose pod dir kubelet still has.
	orphanKubelet := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("burstable", orphanKubelet)))
	must(t, os.Mkdir(filepath.Join(n.kubelet, "pods", orphanKubelet), 0o755))

	liveDirs := map[string][]string{}
	for _, uid := range []string{liveBurst, liveGuar, liveNotReady} {
		for _, q := range []string{"burstable", "guaranteed", "besteffort"} {
			if d := n.dirs(t, n.podPath(q, uid)); len(d) > 0 {
				liveDirs[uid] = d
			}
		}
	}

	// An orphan container cgroup inside a live pod (made after the live
	// pods' dirs were recorded: it must go, they must stay).
	strayCtr := n.podPath("burstable", liveBurst) + "/" + hexID(4)
	must(t, n.root.Mkdir(strayCtr))

	e := n.engine(t)
	s, err := e.Scan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan.RuntimeError != "" {
		t.Fatalf("runtime error: %s", s.Plan.RuntimeError)
	}
	want := map[string]string{
		n.root.Rel(n.podPath("burstable", liveBurst)):      "live/keep/live-sandbox",
		n.root.Rel(n.podPath("guaranteed", liveGuar)):      "live/keep/live-sandbox",
		n.root.Rel(n.podPath("besteffort", liveNotReady)):  "live/keep/live-sandbox",
		n.root.Rel(n.podPath("burstable", orphanStopped)):  "orphan/remove/",
		n.root.Rel(n.podPath("besteffort", orphanTree)):    "orphan/remove/",
		n.root.Rel(n.podPath("guaranteed", orphanOneHier)): "orphan/remove/",
		n.root.Rel(n.podPath("burstable", orphanBusy)):     "orphan/keep/has-processes",
		n.root.Rel(n.podPath("burstable", orphanKubelet)):  "orphan/keep/kubelet-tracks-pod",
		n.root.Rel(strayCtr):                               "orphan/remove/",
	}
	for path, w := range want {
		it, ok := itemByPath(s, path)
		if !ok {
			t.Errorf("scan did not find %s", path)
			continue
		}
		if got := fmt.Sprintf("%s/%s/%s", it.State, it.Action, it.Reason); got != w {
			t.Errorf("%s: got %s, want %s", path, got, w)
		}
	}
	// Counting the candidates' processes from one pass over /proc gives the
	// same plan as reading their cgroup.procs files.
	eProc := n.engine(t)
	eProc.ProcScanFrom = 1
	sProc, err := eProc.Scan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, w := range want {
		if it, _ := itemByPath(sProc, path); fmt.Sprintf("%s/%s/%s", it.State, it.Action, it.Reason) != w {
			t.Errorf("with the /proc scan, %s: %s/%s/%s, want %s", path, it.State, it.Action, it.Reason, w)
		}
	}
	if it, _ := itemByPath(s, n.root.Rel(n.podPath("guaranteed", orphanOneHier))); len(it.Hierarchies) != 1 {
		t.Errorf("one-hierarchy orphan seen in %v", it.Hierarchies)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Dry run: the plan is printed, nothing changes.
	before := n.dirs(t, "kubepods")
	dry := e.Apply(ctx, s, true)
	if removed, _, _ := engine.Counts(dry); removed != 4 {
		t.Fatalf("dry run would remove %d, want 4", removed)
	}
	if after := n.dirs(t, "kubepods"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatal("dry run changed the cgroup tree")
	}

	results := e.Apply(ctx, s, false)
	for _, r := range results {
		if r.Outcome != engine.Removed {
			t.Errorf("%s: %s %s %s", r.Item.Path, r.Outcome, r.Reason, r.Detail)
		}
	}
	for _, uid := range []string{orphanStopped, orphanTree, orphanOneHier} {
		for _, q := range []string{"burstable", "guaranteed", "besteffort"} {
			if c := n.root.Exists(n.podPath(q, uid)); c != 0 {
				t.Errorf("orphan %s/%s still in %d hierarchies", q, uid, c)
			}
		}
	}
	if n.root.Exists(strayCtr) != 0 {
		t.Error("orphan container cgroup in a live pod not removed")
	}
	if n.root.Exists(n.podPath("burstable", orphanBusy)) != len(n.root.Hierarchies) || !proc.Alive() {
		t.Error("orphan with a process was touched")
	}
	if n.root.Exists(n.podPath("burstable", orphanKubelet)) != len(n.root.Hierarchies) {
		t.Error("pod kubelet tracks was touched")
	}
	for uid, d := range liveDirs {
		var now []string
		for _, q := range []string{"burstable", "guaranteed", "besteffort"} {
			now = append(now, n.dirs(t, n.podPath(q, uid))...)
		}
		if strings.Join(now, ",") != strings.Join(d, ",") {
			t.Errorf("live pod %s lost cgroup dirs:\nbefore %v\nafter  %v", uid, d, now)
		}
	}
}

func TestNothingRemovedWhenRuntimeDown(t *testing.T) {
	n := newNode(t)
	liveUID, _, _ := n.runPod(t, "burstable", true)
	orphan := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("burstable", orphan)))
	e := n.engine(t)
	n.ctrd.Kill9(t)

	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plan.RuntimeError == "" {
		t.Fatal("scan did not notice the runtime is down")
	}
	// Neither the live pod nor the orphan is called anything but unknown.
	for _, uid := range []string{liveUID, orphan} {
		it, _ := itemByPath(s, n.root.Rel(n.podPath("burstable", uid)))
		if it.State != decide.Unknown || it.Reason != decide.RuntimeUnreachable || it.Removes() {
			t.Fatalf("pod %s with runtime down: %s/%s/%s", uid, it.State, it.Action, it.Reason)
		}
		for _, c := range it.Children {
			if c.State != decide.Unknown || c.Removes() {
				t.Fatalf("container %s with runtime down: %s/%s", c.Path, c.State, c.Action)
			}
		}
	}
	if sum := s.Plan.Summary; sum.UnknownPods != 2 || sum.LivePods != 0 || sum.OrphanPods != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if r := e.Apply(context.Background(), s, false); len(r) != 0 {
		t.Fatalf("apply acted with the runtime down: %+v", r)
	}
	if n.root.Exists(n.podPath("burstable", orphan)) != len(n.root.Hierarchies) {
		t.Fatal("orphan removed while the runtime was down")
	}
	n.ctrd.Restart(t)
}

// TestStalledRuntimeRemovesNothing: a CRI endpoint that accepts and never
// answers must end in a refusal within the timeout, not a hang.
func TestStalledRuntimeRemovesNothing(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "stall")
	sock := filepath.Join(t.TempDir(), "stall.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	orphan := testbed.RandomUID()
	must(t, r.Mkdir("kubepods/burstable/pod"+orphan))
	cfg := config.Default()
	cfg.Runtime.Endpoint = "unix://" + sock
	cfg.Runtime.Timeout = config.Duration{Duration: 500 * time.Millisecond}
	cfg.Cgroup.PodRoot, cfg.Cgroup.KubeletRoot = r.Rel("kubepods"), t.TempDir()
	cfg.Clean.MinAge, cfg.Clean.ConfirmPasses = config.Duration{}, 1
	c := dialCRI(t, cfg)
	e := &engine.Engine{Config: cfg, Runtime: c}
	start := time.Now()
	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("scan took %s with a stalled runtime", took)
	}
	if s.Plan.RuntimeError == "" || len(decide.Removals(s.Plan)) != 0 {
		t.Fatalf("stalled runtime: error %q, removals %d", s.Plan.RuntimeError, len(decide.Removals(s.Plan)))
	}
	if r.Exists("kubepods/burstable/pod"+orphan) != len(r.Hierarchies) {
		t.Fatal("orphan touched")
	}
}

// TestPodRecreatedBeforeRemoval: kubelet makes a new sandbox for the same
// pod UID after the scan; the final re-ask must keep the pod cgroup.
func TestPodRecreatedBeforeRemoval(t *testing.T) {
	n := newNode(t)
	uid, sb, _ := n.runPod(t, "burstable", false)
	n.ctrd.StopRemovePod(t, sb)
	e := n.engine(t)
	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm := decide.Removals(s.Plan); len(rm) != 1 || rm[0].PodUID != uid {
		t.Fatalf("expected the orphan to be planned for removal, got %+v", rm)
	}
	n.ctrd.RunPod(t, n.root.Rel(n.podPath("burstable", uid)), uid, "again")
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.RuntimeListsNow {
		t.Fatalf("results %+v", results)
	}
	if n.root.Exists(n.podPath("burstable", uid)) != len(n.root.Hierarchies) {
		t.Fatal("recreated pod's cgroup was touched")
	}
}

func TestMassGuardWithEmptyRuntime(t *testing.T) {
	n := newNode(t)
	for i := 0; i < 5; i++ {
		must(t, n.root.Mkdir(n.podPath("besteffort", testbed.RandomUID())))
	}
	s, err := n.engine(t).Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(decide.Removals(s.Plan)) != 0 || s.Plan.Kept[decide.MassGuardRuntimeEmpty] != 5 {
		t.Fatalf("mass guard did not hold: kept %v", s.Plan.Kept)
	}
}

func TestMinAgeKeepsFreshOrphans(t *testing.T) {
	n := newNode(t)
	n.runPod(t, "burstable", false)
	must(t, n.root.Mkdir(n.podPath("burstable", testbed.RandomUID())))
	n.cfg.Clean.MinAge = config.Duration{Duration: time.Hour}
	s, err := n.engine(t).Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(decide.Removals(s.Plan)) != 0 || s.Plan.Kept[decide.TooYoung] != 1 {
		t.Fatalf("kept %v", s.Plan.Kept)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// TestBadNamesLeftAlone: directories under the pod root whose names are
// not what kubelet or a runtime makes are reported and never touched.
func TestBadNamesLeftAlone(t *testing.T) {
	n := newNode(t)
	n.runPod(t, "burstable", false)
	bad := []string{
		"kubepods/burstable/podNOT-A-UID!",
		"kubepods/burstable/pod-" + testbed.RandomUID(),
		"kubepods/burstable/" + hexID(20),
		"kubepods/burstable/kubepods-burstable-pod" + strings.ReplaceAll(testbed.RandomUID(), "-", "_") + ".slice",
		"kubepods/something-else",
		"kubepods/besteffort/pod..",
	}
	for _, b := range bad {
		must(t, n.root.Mkdir(b))
	}
	e := n.engine(t)
	s, err := e.Scan(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	for _, sk := range s.Inventory.Skipped {
		skipped[sk.Path] = true
	}
	for _, b := range bad {
		if !skipped[n.root.Rel(b)] {
			t.Errorf("%s not reported as left alone (skipped: %+v)", b, s.Inventory.Skipped)
		}
	}
	e.Apply(context.Background(), s, false)
	for _, b := range bad {
		if n.root.Exists(b) != len(n.root.Hierarchies) {
			t.Errorf("%s was touched", b)
		}
	}
}

// TestKillOrphanProcessesOptIn: with kill_orphan_processes the orphan's
// process is killed (by the PID found in the orphan's own cgroup) and the
// orphan removed; a live pod's container process is untouched.
func TestKillOrphanProcessesOptIn(t *testing.T) {
	n := newNode(t)
	liveUID, _, _ := n.runPod(t, "burstable", true)
	orphan := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("besteffort", orphan)+"/"+hexID(30)))
	proc := testbed.StartProcess(t, "sleep", "300")
	must(t, n.root.AddProc(n.podPath("besteffort", orphan)+"/"+hexID(30), proc.PID))
	liveBefore := n.dirs(t, n.podPath("burstable", liveUID))

	// Off (the default): kept, reported.
	s, err := n.engine(t).Scan(context.Background(), nil)
	must(t, err)
	if it, _ := itemByPath(s, n.root.Rel(n.podPath("besteffort", orphan))); it.Reason != decide.HasProcesses || it.Processes != 1 {
		t.Fatalf("without the opt-in: %s/%s procs %d", it.Action, it.Reason, it.Processes)
	}

	n.cfg.Clean.KillOrphanProcesses = true
	e := n.engine(t)
	s, err = e.Scan(context.Background(), nil)
	must(t, err)
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Removed || len(results[0].Killed) != 1 || results[0].Killed[0] != proc.PID {
		t.Fatalf("results %+v", results)
	}
	if !proc.Wait(5*time.Second) || n.root.Exists(n.podPath("besteffort", orphan)) != 0 {
		t.Fatal("orphan process not killed or orphan not removed")
	}
	if after := n.dirs(t, n.podPath("burstable", liveUID)); strings.Join(after, ",") != strings.Join(liveBefore, ",") {
		t.Fatal("live pod lost cgroup dirs")
	}
	if pids, err := readPidsOf(n, n.podPath("burstable", liveUID)); err != nil || len(pids) < 2 {
		t.Fatalf("live pod's processes: %v %v", pids, err)
	}
}

func readPidsOf(n *node, rel string) ([]int, error) {
	t, err := apply.ReadTrees(n.root.Hierarchies, n.root.Rel(rel))
	return t.Pids, err
}

// truncatedRuntime is a real runtime whose answer loses containers, as a
// runtime still loading its state after a restart (or a truncated reply)
// would give: every sandbox, only the first keep containers.
type truncatedRuntime struct {
	rt   live.Runtime
	keep int
}

func (r truncatedRuntime) Snapshot(ctx context.Context) (live.Snapshot, error) {
	s, err := r.rt.Snapshot(ctx)
	if len(s.Containers) > r.keep {
		s.Containers = s.Containers[:r.keep]
	}
	return s, err
}

// TestContainerGuardsHoldOnTruncatedAnswer: real containerd, three live
// pods with two running containers each, and kill_orphan_processes on.
// When the runtime's answer lists every sandbox but none or few of the
// containers, the container cgroups of the live pods look orphaned; the
// container mass guards must keep every one, with every process alive.
func TestContainerGuardsHoldOnTruncatedAnswer(t *testing.T) {
	n := newNode(t)
	var uids []string
	for i := 0; i < 3; i++ {
		uid, sb, _ := n.runPod(t, "burstable", true)
		n.ctrd.CreateStartContainer(t, sb, "second-"+uid[:8])
		uids = append(uids, uid)
	}
	type podState struct {
		dirs []string
		pids []int
	}
	state := func() map[string]podState {
		m := map[string]podState{}
		for _, uid := range uids {
			pids, err := readPidsOf(n, n.podPath("burstable", uid))
			must(t, err)
			sort.Ints(pids)
			m[uid] = podState{n.dirs(t, n.podPath("burstable", uid)), pids}
		}
		return m
	}
	before := state()
	for uid, st := range before {
		if len(st.pids) < 3 || len(st.dirs) == 0 {
			t.Fatalf("pod %s: want a sandbox and two containers running, got pids %v", uid, st.pids)
		}
	}
	n.cfg.Clean.KillOrphanProcesses = true
	for _, tc := range []struct {
		name  string
		keep  int
		share float64
		want  decide.Reason
	}{
		// No container listed; the share guard off (1.0) to show this
		// guard holds on its own.
		{"no container listed", 0, 1.0, decide.MassGuardContainersUnlisted},
		// One of six listed: five of nine container cgroups unlisted.
		{"one container listed", 1, 0.5, decide.MassGuardContainerShare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.cfg.Clean.MaxRemovalShare = tc.share
			e := n.engine(t)
			e.Runtime = truncatedRuntime{rt: e.Runtime, keep: tc.keep}
			s, err := e.Scan(context.Background(), nil)
			must(t, err)
			if s.Plan.RuntimeError != "" {
				t.Fatal(s.Plan.RuntimeError)
			}
			if len(decide.Removals(s.Plan)) != 0 || s.Plan.Kept[tc.want] < 5 {
				t.Fatalf("planned %d removals, kept %v; want the unlisted containers kept for %s", len(decide.Removals(s.Plan)), s.Plan.Kept, tc.want)
			}
			if r := e.Apply(context.Background(), s, false); len(r) != 0 {
				t.Fatalf("apply acted: %+v", r)
			}
			after := state()
			for _, uid := range uids {
				if fmt.Sprint(after[uid]) != fmt.Sprint(before[uid]) {
					t.Errorf("live pod %s changed:\nbefore %v\nafter  %v", uid, before[uid], after[uid])
				}
			}
		})
	}
}

// TestMissingKubeletRootKeepsEverything: a kubelet_root without pods/ (a
// distribution that keeps kubelet elsewhere) must not turn the kubelet
// gate off. Every pod the runtime does not list is kept as of unknown
// state, with one warning per pass naming the key; a pods/ that goes away
// between the scan and the removal stops the removal too.
func TestMissingKubeletRootKeepsEverything(t *testing.T) {
	n := newNode(t)
	liveUID, _, _ := n.runPod(t, "burstable", false)
	orphan := testbed.RandomUID()
	must(t, n.root.Mkdir(n.podPath("besteffort", orphan)))
	n.cfg.Cgroup.KubeletRoot = filepath.Join(n.kubelet, "elsewhere")

	log, hook := test.NewNullLogger()
	e := n.engine(t)
	e.Log = log
	s, err := e.Scan(context.Background(), nil)
	must(t, err)
	it, _ := itemByPath(s, n.root.Rel(n.podPath("besteffort", orphan)))
	if it.State != decide.Unknown || it.Reason != decide.KubeletStateUnknown || it.Removes() {
		t.Fatalf("orphan with no kubelet state: %s/%s/%s", it.State, it.Action, it.Reason)
	}
	if it, _ := itemByPath(s, n.root.Rel(n.podPath("burstable", liveUID))); it.State != decide.Live {
		t.Fatalf("live pod: %s", it.State)
	}
	warnings := 0
	for _, en := range hook.AllEntries() {
		if en.Level == logrus.WarnLevel && strings.Contains(en.Message, "cgroup.kubelet_root") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Fatalf("%d warnings naming cgroup.kubelet_root in one pass, want 1", warnings)
	}
	if r := e.Apply(context.Background(), s, false); len(r) != 0 {
		t.Fatalf("apply acted: %+v", r)
	}

	// The plan was made with kubelet's pods/ there; it goes before the
	// removal: the final check refuses.
	n.cfg.Cgroup.KubeletRoot = n.kubelet
	e = n.engine(t)
	s, err = e.Scan(context.Background(), nil)
	must(t, err)
	if rm := decide.Removals(s.Plan); len(rm) != 1 || rm[0].PodUID != orphan {
		t.Fatalf("planned %+v", rm)
	}
	must(t, os.Remove(filepath.Join(n.kubelet, "pods")))
	results := e.Apply(context.Background(), s, false)
	if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.KubeletStateUnknown {
		t.Fatalf("results %+v", results)
	}
	if n.root.Exists(n.podPath("besteffort", orphan)) != len(n.root.Hierarchies) {
		t.Fatal("orphan removed while kubelet's state was unknown")
	}
}
