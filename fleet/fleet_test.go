package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/cgroupclean/cgroupclean/packaging/prometheus"
)

// interval is the daemons' pass interval; the rules' durations are scaled
// by interval / 5m (their default interval), with floor as the shortest
// window or for: (three passes). The mass guard's day-long window (24h,
// 576 s scaled) is cut to dayWindow, so that its alert is seen to clear
// within the test; the 3-day for: of the observe-mode reminder is not.
const (
	interval  = 2 * time.Second
	floor     = 3 * interval
	dayWindow = 30 * time.Second
)

// node is one cgroupcleand of the fleet: its own cgroup root (pod root),
// kubelet dir, state dir, config, metrics port and CRI endpoint, the
// daemon running in a mount namespace of its own with a private /run.
type node struct {
	name    string
	root    *testbed.CgroupRoot
	dir     string
	port    int
	proxy   *criProxy
	cfg     testbed.NodeConfig
	daemon  *testbed.Daemon
	orphans []string // pod cgroups made orphaned, relative to root
}

type fleet struct {
	t     *testing.T
	bin   string
	ctrd  *testbed.Containerd
	nodes map[string]*node
}

func (f *fleet) newNode(name string, clean []string, doctorEvery int) *node {
	t := f.t
	t.Helper()
	n := &node{name: name, root: testbed.NewCgroupRoot(t, "fleet-"+name), dir: t.TempDir(), port: testbed.FreePort(t)}
	if err := os.MkdirAll(filepath.Join(n.dir, "kubelet", "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.proxy = newCRIProxy(t, filepath.Join(n.dir, "cri.sock"), f.ctrd.Socket)
	n.cfg = testbed.NodeConfig{
		Endpoint: "unix://" + n.proxy.path, PodRoot: n.root.Rel("kubepods"), KubeletRoot: filepath.Join(n.dir, "kubelet"),
		StateDir: filepath.Join(n.dir, "state"), Interval: interval, MetricsPort: n.port, Clean: clean, DoctorEvery: doctorEvery,
	}
	n.writeConfig(t)
	f.nodes[name] = n
	return n
}

func (n *node) writeConfig(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, "config.toml"), []byte(n.cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs the daemon in a mount namespace with a tmpfs of its own on
// /run: whatever it keeps under /run (a lock in /run/cgroupclean) is the
// node's alone. unshare and sh exec, so the PID is the daemon's.
func (f *fleet) start(n *node) {
	n.daemon = testbed.StartDaemon(f.t, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 fleet-run /run && mkdir /run/cgroupclean && exec "$0" "$@"`,
		f.bin, "run", "--config", filepath.Join(n.dir, "config.toml"))
}

// livePod runs a sandbox in a new pod cgroup of the node.
func (f *fleet) livePod(n *node, name string) (rel, sandbox string) {
	uid := testbed.RandomUID()
	rel = "kubepods/burstable/pod" + uid
	if err := n.root.Mkdir(rel); err != nil {
		f.t.Fatal(err)
	}
	return rel, f.ctrd.RunPod(f.t, n.root.Rel(rel), uid, n.name+"-"+name)
}

// leakPod runs a sandbox and stops and removes it through CRI: its pod
// cgroup stays, as when kubelet loses track of a pod.
func (f *fleet) leakPod(n *node, name string) {
	rel, sb := f.livePod(n, name)
	f.ctrd.StopRemovePod(f.t, sb)
	n.orphans = append(n.orphans, rel)
}

// leakedLeft counts the node's orphans still in any hierarchy.
func (n *node) leakedLeft() int {
	left := 0
	for _, rel := range n.orphans {
		if n.root.Exists(rel) > 0 {
			left++
		}
	}
	return left
}

func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cgroupcleand")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cgroupcleand")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func keys(ks ...key) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// TestFleet: ten real daemons, one Prometheus evaluating the shipped rules.
// Faults on chosen nodes (a runtime outage, a mass-guard refusal, a killed
// daemon, a CPU-throttled container, observe mode, leaked pods) must make
// exactly their alerts fire for exactly those nodes, and the alerts must
// resolve when the cause goes; the mass guard's stays until its daemon is
// restarted and a (scaled) day passes without a refusal: it is never
// cleared silently.
func TestFleet(t *testing.T) {
	if os.Getenv("CGROUPCLEAN_FLEET") == "" {
		t.Skip("the fleet test runs with `make fleet-test` (CGROUPCLEAN_FLEET=1)")
	}
	testbed.RequireRoot(t)
	promBin, err := exec.LookPath("prometheus")
	testbed.Need(t, err == nil, "Debian's prometheus package (scripts/install-deps.sh)")
	f := &fleet{t: t, ctrd: testbed.StartContainerd(t), nodes: map[string]*node{}}
	f.bin = buildDaemon(t)

	// The shipped rules, every duration scaled to 2-second passes.
	factor, err := prometheus.Factor(float64(interval)/float64(5*time.Minute), floor)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := prometheus.ScaledSource(func(d time.Duration) time.Duration {
		if d == 24*time.Hour {
			return dayWindow
		}
		return factor(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(t.TempDir(), "cgroupclean-rules.yml")
	if err := os.WriteFile(rulesPath, rules, 0o644); err != nil {
		t.Fatal(err)
	}

	const (
		leaking  = "node-01" // pods leak while it runs, and drain
		outage   = "node-02" // its CRI endpoint goes away, then comes back
		massive  = "node-03" // more orphans than max_removal_share allows
		killed   = "node-04" // SIGKILLed, then started again
		observer = "node-05" // observe mode, switched to act by SIGHUP
		busy     = "node-06" // a container held to 5% of a CPU
	)
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("node-%02d", i)
		var clean []string
		doctorEvery := 0 // the checks' CRI stats call is the costly part: only where needed
		switch name {
		case observer:
			clean = []string{`mode = "observe"`}
		case busy:
			doctorEvery = 1
		case massive:
			clean = []string{"max_removal_share = 0.5"}
		}
		n := f.newNode(name, clean, doctorEvery)
		if name != massive {
			f.livePod(n, "live")
		}
	}
	// node-03: 2 live pods and 4 leaked ones: 4 of 6 is over half.
	for i := 0; i < 2; i++ {
		f.livePod(f.nodes[massive], fmt.Sprintf("live-%d", i))
	}
	for i := 0; i < 4; i++ {
		f.leakPod(f.nodes[massive], fmt.Sprintf("gone-%d", i))
	}
	for i := 0; i < 2; i++ {
		f.leakPod(f.nodes[observer], fmt.Sprintf("gone-%d", i))
	}
	var cpu hierarchy.Hierarchy
	for _, h := range f.nodes[busy].root.Hierarchies {
		if h.Version == 1 && h.Has("cpu") {
			cpu = h
		}
	}
	testbed.Need(t, cpu.Name != "", "a v1 cpu hierarchy")
	busyRel, busySB := f.livePod(f.nodes[busy], "busy")
	spinner := f.ctrd.StartWorkload(t, busySB, "spinner", "spin")
	quota := filepath.Join(cpu.Path(f.nodes[busy].root.Rel(busyRel)), spinner, "cpu.cfs_quota_us")
	if err := os.WriteFile(quota, []byte("5000"), 0o644); err != nil {
		t.Fatal(err)
	}

	var targets []target
	for i := 1; i <= 10; i++ {
		n := f.nodes[fmt.Sprintf("node-%02d", i)]
		f.start(n)
		targets = append(targets, target{instance: n.name, port: n.port})
	}
	prom := startPrometheus(t, promBin, rulesPath, testbed.FreePort(t), targets)
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "every node scraped and up", func() bool {
		up, err := prom.query(`up{job="cgroupclean"} == 1`)
		return err == nil && len(up) == 10
	})
	start := time.Now()
	log := followAlerts(t, prom, start)
	t.Logf("fleet up: 10 daemons, passes every %s; rules scaled by %s/5m, floor %s", interval, interval, floor)
	defer func() { t.Logf("alerts per node:\n%s", log.table()) }()

	// Phase 1: the faults.
	for i := 0; i < 3; i++ {
		f.leakPod(f.nodes[leaking], fmt.Sprintf("gone-%d", i))
	}
	f.nodes[outage].proxy.close()
	f.nodes[killed].daemon.Kill()
	t.Logf("t+%.1fs: %s leaked 3 pods, %s lost its runtime, %s was SIGKILLed (pid %d)",
		time.Since(start).Seconds(), leaking, outage, killed, f.nodes[killed].daemon.PID())

	want := keys(key{"CgroupcleanRuntimeUnreachable", outage}, key{"CgroupcleanMassGuardRefused", massive},
		key{"CgroupcleanDown", killed}, key{"CgroupcleanPodsThrottled", busy})
	testbed.WaitFor(t, 150*time.Second, 250*time.Millisecond, "the faults' alerts to fire, and no other: want "+strings.Join(want, " "), func() bool {
		return strings.Join(log.firing(), " ") == strings.Join(want, " ")
	})
	t.Logf("t+%.1fs: firing %v", time.Since(start).Seconds(), log.firing())

	// The leaked pods drained; the observe node removed nothing and says
	// what it would have removed.
	testbed.WaitFor(t, 30*time.Second, 250*time.Millisecond, leaking+"'s leaked pods to drain", func() bool { return f.nodes[leaking].leakedLeft() == 0 })
	expect(t, prom, `sum by (instance) (cgroupclean_removals_total{instance="`+leaking+`"})`, leaking, 3)
	expect(t, prom, `sum by (instance) (cgroupclean_removals_total{instance="`+observer+`"})`, observer, 0)
	expect(t, prom, `cgroupclean_clean_mode{instance="`+observer+`", mode="observe"}`, observer, 1)
	if v := value(t, prom, `cgroupclean_would_remove_total{instance="`+observer+`", kind="pod"}`, observer); v < 2 {
		t.Errorf("%s: would_remove_total{pod} = %v, want at least its 2 orphans", observer, v)
	}
	if left := f.nodes[observer].leakedLeft(); left != 2 {
		t.Fatalf("%s in observe mode: %d of its 2 orphans left", observer, left)
	}
	if left := f.nodes[massive].leakedLeft(); left != 4 {
		t.Fatalf("%s under its mass guard: %d of its 4 orphans left", massive, left)
	}
	if s := log.summary(key{"CgroupcleanPodsThrottled", busy}); !strings.Contains(s, busy+": 1 pods or containers throttled") {
		t.Errorf("throttling alert summary %q", s)
	}

	// Phase 2: the causes go.
	if err := f.nodes[outage].proxy.open(); err != nil {
		t.Fatal(err)
	}
	f.start(f.nodes[killed])
	if err := os.WriteFile(quota, []byte("-1"), 0o644); err != nil {
		t.Fatal(err)
	}
	obs := f.nodes[observer]
	obs.cfg.Clean = []string{`mode = "act"`}
	obs.writeConfig(t)
	pid := obs.daemon.PID()
	if err := obs.daemon.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mg := f.nodes[massive]
	mg.cfg.Clean = []string{"max_removal_share = 1.0"}
	mg.writeConfig(t)
	if err := mg.daemon.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	t.Logf("t+%.1fs: runtime back on %s, %s started again, %s's quota lifted, %s switched to act and %s's share raised by SIGHUP",
		time.Since(start).Seconds(), outage, killed, busy, observer, massive)

	// The mass guard's alert stays: the refusal must be acknowledged.
	want = keys(key{"CgroupcleanMassGuardRefused", massive})
	testbed.WaitFor(t, 120*time.Second, 250*time.Millisecond, "every alert but the mass guard's to resolve: want "+strings.Join(want, " "), func() bool {
		return strings.Join(log.firing(), " ") == strings.Join(want, " ")
	})
	testbed.WaitFor(t, 30*time.Second, 250*time.Millisecond, observer+" to drain after the switch", func() bool { return obs.leakedLeft() == 0 })
	testbed.WaitFor(t, 30*time.Second, 250*time.Millisecond, massive+" to drain with the share raised", func() bool { return mg.leakedLeft() == 0 })
	t.Logf("t+%.1fs: %s and %s drained; firing %v", time.Since(start).Seconds(), observer, massive, log.firing())
	expect(t, prom, `cgroupclean_clean_mode{instance="`+observer+`", mode="act"}`, observer, 1)
	testbed.WaitFor(t, 15*time.Second, 250*time.Millisecond, "Prometheus to see "+observer+"'s 2 removals", func() bool {
		return value(t, prom, `sum by (instance) (cgroupclean_removals_total{instance="`+observer+`"})`, observer) == 2
	})
	if obs.daemon.PID() != pid || !obs.daemon.Running() {
		t.Errorf("%s restarted instead of reloading", observer)
	}

	// The mass guard's alert clears as its runbook says: the refusing
	// daemon restarted, and no refusal for a (scaled) day. Not before:
	// a day's window after the last refusal it still fires.
	time.Sleep(dayWindow + 5*time.Second)
	if !log.stillFiring(key{"CgroupcleanMassGuardRefused", massive}) {
		t.Fatal("the mass guard's alert cleared without a restart")
	}
	mg.daemon.Stop(10 * time.Second)
	f.start(mg)
	t.Logf("t+%.1fs: %s restarted (acknowledged)", time.Since(start).Seconds(), massive)
	testbed.WaitFor(t, 2*dayWindow+30*time.Second, 250*time.Millisecond, "the mass guard's alert to clear after the restart", func() bool {
		return len(log.firing()) == 0
	})

	// Nothing else fired at any time, and each alert fired once.
	all := keys(key{"CgroupcleanRuntimeUnreachable", outage}, key{"CgroupcleanMassGuardRefused", massive},
		key{"CgroupcleanDown", killed}, key{"CgroupcleanPodsThrottled", busy})
	if got := log.everFired(); strings.Join(got, " ") != strings.Join(all, " ") {
		t.Errorf("alerts that fired at some time: %v, want %v", got, all)
	}
	for _, k := range []key{{"CgroupcleanRuntimeUnreachable", outage}, {"CgroupcleanDown", killed}, {"CgroupcleanPodsThrottled", busy}, {"CgroupcleanMassGuardRefused", massive}} {
		if r := log.row(k); r.firedN != 1 || r.resolveN != 1 {
			t.Errorf("%s fired %d and resolved %d times, want once each", k, r.firedN, r.resolveN)
		}
	}
}

func value(t *testing.T, p *promServer, q, instance string) float64 {
	t.Helper()
	got, err := p.query(q)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := got[instance]
	if !ok {
		t.Fatalf("%s: no series for %s (%v)", q, instance, got)
	}
	return v
}

func expect(t *testing.T, p *promServer, q, instance string, want float64) {
	t.Helper()
	if v := value(t, p, q, instance); v != want {
		t.Errorf("%s = %v, want %v", q, v, want)
	}
}
