package doctor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func TestMain(m *testing.M) {
	testbed.ChargeMain()
	os.Exit(m.Run())
}

type node struct {
	root    *testbed.CgroupRoot
	ctrd    *testbed.Containerd
	cfg     config.Config
	client  *cri.Client
	kubelet string
}

func newNode(t *testing.T) *node {
	t.Helper()
	testbed.RequireRoot(t)
	n := &node{root: testbed.NewCgroupRoot(t, "doctor")}
	n.ctrd = testbed.StartContainerd(t)
	n.kubelet = t.TempDir()
	if err := os.MkdirAll(filepath.Join(n.kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.cfg = config.Default()
	n.cfg.Runtime.Endpoint = n.ctrd.Endpoint()
	n.cfg.Cgroup.PodRoot = n.root.Rel("kubepods")
	n.cfg.Cgroup.Driver = "cgroupfs"
	n.cfg.Cgroup.KubeletRoot = n.kubelet
	n.cfg.Clean.MinAge.Duration = 0
	n.cfg.Clean.UseSystemd = "never"
	var err error
	if n.client, err = cri.Dial(n.ctrd.Endpoint(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.client.Close() })
	return n
}

func (n *node) pod(t *testing.T, name string) (uid, rel, sandbox string) {
	t.Helper()
	uid = testbed.RandomUID()
	rel = "kubepods/burstable/pod" + uid
	if err := n.root.Mkdir(rel); err != nil {
		t.Fatal(err)
	}
	return uid, rel, n.ctrd.RunPod(t, n.root.Rel(rel), uid, name)
}

func (n *node) doctor(t *testing.T, interval time.Duration, inodes uint64) Report {
	t.Helper()
	ctx := context.Background()
	e := &engine.Engine{Config: n.cfg, Runtime: n.client}
	in := Input{Config: n.cfg, Interval: interval, InodeThreshold: inodes}
	in.Scan, in.ScanErr = e.Scan(ctx, nil)
	in.Containers, in.ContainersErr = n.client.Containers(ctx)
	rep := Run(ctx, in)
	var b bytes.Buffer
	_ = rep.WriteText(&b)
	t.Logf("doctor report:\n%s", b.String())
	return rep
}

func hier(t *testing.T, r *testbed.CgroupRoot, has func(hierarchy.Hierarchy) bool, what string) hierarchy.Hierarchy {
	for _, h := range r.Hierarchies {
		if has(h) {
			return h
		}
	}
	testbed.Need(t, false, what)
	return hierarchy.Hierarchy{}
}

// A busy container under a small CFS quota is flagged by pod and container
// name; an idle pod is not. Orphans made by CRI Stop+Remove and an
// unlisted container cgroup in a live pod are counted and given their leak
// form. A container that wrote many files to its writable layer is
// flagged from the runtime's own figures.
func TestDoctorOnRealNode(t *testing.T) {
	n := newNode(t)
	cpu := hier(t, n.root, func(h hierarchy.Hierarchy) bool { return h.Version == 1 && h.Has("cpu") }, "a v1 cpu hierarchy")

	_, busyRel, busySB := n.pod(t, "busy")
	spin := n.ctrd.StartWorkload(t, busySB, "spinner", "spin")
	quota := filepath.Join(cpu.Path(n.root.Rel(busyRel)), spin, "cpu.cfs_quota_us")
	if err := os.WriteFile(quota, []byte("5000"), 0o644); err != nil { // 5 ms per 100 ms period
		t.Fatal(err)
	}
	_, idleRel, idleSB := n.pod(t, "idle")
	n.ctrd.CreateStartContainer(t, idleSB, "sleeper")
	_, _, filesSB := n.pod(t, "writer")
	const nFiles = 12000
	writer := n.ctrd.StartWorkload(t, filesSB, "scratch", "files", strconv.Itoa(nFiles), "/scratch")

	// Leaks: two pods gone without kubelet, one unlisted container cgroup
	// inside the live idle pod.
	for i := 0; i < 2; i++ {
		_, _, sb := n.pod(t, fmt.Sprintf("gone-%d", i))
		n.ctrd.StopRemovePod(t, sb)
	}
	strayID := strings.Repeat("ab", 32)
	if err := n.root.Mkdir(filepath.Join(idleRel, strayID)); err != nil {
		t.Fatal(err)
	}

	// containerd's CRI refreshes snapshot usage every 10 s (stats_collect_period).
	var layerInodes uint64
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		cs, err := n.client.Containers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.ID == writer {
				layerInodes = c.LayerInodes
			}
		}
		if layerInodes >= nFiles {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("containerd reports %d inodes in the writer's writable layer", layerInodes)

	rep := n.doctor(t, 2*time.Second, 10000)

	// CFS throttling.
	throttled := rep.Find(IDThrottled)
	busyName := testbed.PodNamespace + "/busy/spinner"
	found := false
	for _, f := range throttled {
		if f.Subject == busyName {
			found = true
			if f.Value <= ThrottleThreshold || f.Severity != Warn || !strings.Contains(f.Source, "CPUThrottlingHigh") {
				t.Errorf("busy container finding %+v", f)
			}
		}
		if strings.Contains(f.Subject, "/idle") || strings.Contains(f.Subject, "/writer") {
			t.Errorf("an idle container was flagged: %+v", f)
		}
	}
	if !found {
		t.Errorf("busy container %s not flagged; throttled findings %+v", busyName, throttled)
	}
	if fix := rep.Find(IDCFSFix); len(fix) != 1 || fix[0].Severity != OK {
		t.Errorf("cfs fix finding %+v on a 6.x kernel", fix)
	}

	// Leaks.
	if o := rep.Find(IDOrphans); len(o) != 1 || o[0].Value != 3 {
		t.Errorf("leak.orphans = %+v, want value 3 (2 pods + 1 container)", o)
	}
	causes := map[string]int{}
	for _, f := range rep.Find(IDOrphan) {
		causes[f.Form]++
		if f.Cause != CauseUnknown {
			t.Errorf("%s: cause %q stated, but its tree does not show it", f.Subject, f.Cause)
		}
		if !strings.HasPrefix(f.Subject, n.root.Rel("kubepods")) {
			t.Errorf("orphan outside the test root: %+v", f)
		}
	}
	if causes[FormEmptyPod] != 2 || causes[FormUnknown] != 1 || len(causes) != 2 {
		t.Errorf("leak forms %v, want 2 %s and 1 %s", causes, FormEmptyPod, FormUnknown)
	}

	// Writable layers.
	high := rep.Find(IDLayerHigh)
	if layerInodes == 0 {
		t.Errorf("containerd reported 0 inodes for a layer with %d files: the snapshotter does not count them here", nFiles)
	} else if len(high) != 1 || high[0].Subject != testbed.PodNamespace+"/writer/scratch" || high[0].Value < nFiles {
		t.Errorf("layer findings %+v, want the writer's alone", high)
	}

	// Read-only: the orphans are all still there.
	if n.root.Exists(filepath.Join(idleRel, strayID)) == 0 {
		t.Fatal("doctor removed a cgroup")
	}
}

// The dying count doctor reports for the memory hierarchy grows by the
// memcgs the test makes dying (charged, then rmdir'ed). It is machine-wide
// on v1: other cgroups on the machine may move it too.
func TestDoctorCountsDying(t *testing.T) {
	testbed.RequireRoot(t)
	root := testbed.NewCgroupRoot(t, "doctor-dying")
	mem := hier(t, root, func(h hierarchy.Hierarchy) bool { return h.Version == 1 && h.Has("memory") }, "a v1 memory hierarchy")
	data := testbed.DiskTempDir(t)
	hs, err := hierarchy.Discover("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	in := Input{Config: cfg, Scan: &engine.Scan{Hierarchies: hs, NoPodRoot: true}, ProcRoot: "/proc"}
	count := func() float64 {
		r := &Report{}
		checkDying(in, r)
		for _, f := range r.Findings {
			if f.ID == IDDying && f.Subject == mem.Name {
				return f.Value
			}
		}
		t.Fatalf("no dying finding for %s: %+v %v", mem.Name, r.Findings, r.NotRun)
		return 0
	}
	const n = 200
	before := count()
	for _, d := range root.ChargeMemcgs(t, mem, "", "", data, n, 64<<10) {
		if err := unix.Rmdir(d); err != nil {
			t.Fatal(err)
		}
	}
	after := count()
	t.Logf("memory hierarchy dying: %v before, %v after %d charged memcgs were removed", before, after, n)
	if d := after - before; d < n*9/10 {
		t.Fatalf("dying count rose by %v, want about %d", d, n)
	}
}
