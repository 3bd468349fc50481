//go:build nodeguest

package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/doctor"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const (
	kubeletUnit     = "kubelet.service"
	kubeletConfig   = "/var/lib/kubelet/config.yaml"
	manifestDir     = "/etc/kubernetes/manifests"
	staticNamespace = "node-test"
	// frozenDisk is the small ext4 disk node/run.sh attaches for the
	// D-state leak (fsfreeze needs a file system that can freeze).
	frozenDisk = "/dev/vdb"
	// window is how long each retry-rate and CPU sample runs.
	window = 30 * time.Second
)

// kubeletConfigYAML runs kubelet standalone (no API server): static pods
// only, the systemd driver (containerd 1.6 cannot report it over CRI),
// no swap check, and no eviction or image GC on the small test disk.
const kubeletConfigYAML = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: ` + manifestDir + `
fileCheckFrequency: 5s
failSwapOn: false
resolvConf: ""
readOnlyPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`

// staticPod is a manifest in one QoS class; the image is the pause image
// the node's containerd already has (no registry here).
func staticPod(qos string) string {
	res := ""
	switch qos {
	case "guaranteed":
		res = "    resources: {limits: {cpu: 100m, memory: 64Mi}}\n"
	case "burstable":
		res = "    resources: {requests: {cpu: 10m}}\n"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: static-%s
  namespace: %s
spec:
  hostNetwork: true
  containers:
  - name: pause
    image: %s
    imagePullPolicy: Never
%s`, qos, staticNamespace, testbed.PauseImage, res)
}

// livePod is a static pod as kubelet runs it.
type livePod struct {
	qos, uid, dir        string
	sandbox, container   string
	sandboxScope, cScope string
}

// leak is a cgroup made to look like one leak form, and when it went.
type leak struct {
	form, dir string
	made      time.Time
	gone      time.Duration // 0: still there
	raw       bool          // a plain directory, not a unit's scope
}

// cadvisorStale is what kubelet's cAdvisor logs about a cgroup it still
// lists but has no stats for.
const cadvisorStale = "RecentStats: unable to find data in memory cache"

// TestKubelet runs a real kubelet (standalone, static pods, systemd
// driver) and measures what it does with each leak form: the ones it
// removes itself and how fast, the ones it retries forever (and what that
// costs it), the ones it never looks at. Then the installed, enabled
// package runs beside it: it removes what kubelet never looks at, never
// touches a live static pod, and kubelet logs no error about what it
// removed; `cgroupcleand doctor` names the cause of each busy leak and
// kubelet's retry rate.
func TestKubelet(t *testing.T) {
	requireNode(t)
	sh := share(t)
	bus := systemBus(t)
	rt := dialCRI(t, containerdSocket)
	importPause(t, containerdSocket)
	report := &leakReport{}
	t.Cleanup(func() { report.write(t, filepath.Join(sh, "out", "kubelet-leaks.md")) })

	// 1. kubelet, alone first: the package is installed but not started.
	if out, _ := run(30*time.Second, "dpkg-query", "-W", "-f=${Status}", "cgroupclean"); !strings.Contains(out, "install ok installed") {
		mustRun(t, 120*time.Second, "dpkg", "-i", filepath.Join(sh, "cgroupclean.deb"))
	}
	t.Cleanup(func() {
		_, _ = run(120*time.Second, "systemctl", "disable", "--now", unit)
		_, _ = run(180*time.Second, "dpkg", "--purge", "cgroupclean")
	})
	earlier := cgroupDirs(t, filepath.Join(cgroupRoot, "kubepods.slice"))
	kubeletStart := time.Now()
	pods, started := startKubelet(t, sh, rt)
	report.add("kubelet v%s up, 3 static pods running, %s after start", kubeletVersion(t, sh), started.Round(time.Second))
	before := kubeletSample(t, window, nil)
	report.add("idle: kubelet CPU %.1f%% of a CPU, %d %q lines in %s", 100*before.cpu, before.total, doctor.KubeletRetryLine, window)

	// 2. Leaks kubelet removes itself: orphan pod slices (made-up UIDs
	// kubelet never ran) with an empty child scope (kubernetes#112151's
	// form), or with a scope holding a stray process.
	var removable []*leak
	var strays []*exec.Cmd
	for i := 0; i < 3; i++ {
		_, _, dir := orphanSlice(t, bus, "besteffort")
		child := filepath.Join(dir, "cri-containerd-"+randomHex(64)+".scope")
		if err := os.Mkdir(child, 0o755); err != nil {
			t.Fatal(err)
		}
		removable = append(removable, &leak{form: "empty child scope in a deleted pod's slice", dir: dir, made: time.Now()})
	}
	for i := 0; i < 3; i++ {
		_, slice, dir := orphanSlice(t, bus, "burstable")
		sleeper := exec.Command("sleep", "3600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		strays = append(strays, sleeper)
		t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
		startTransient(t, bus, "cri-containerd-"+randomHex(64)+".scope", []sddbus.Property{
			sddbus.PropSlice(slice), sddbus.PropPids(uint32(sleeper.Process.Pid)),
		})
		removable = append(removable, &leak{form: "child scope holding a stray process", dir: dir, made: time.Now()})
	}
	// Leaks inside live pods kubelet never looks at: CRI-O's conmon scope
	// and dropped-infra directory, a containerd scope whose container is
	// gone.
	var inLive []*leak
	for i, l := range []struct {
		form, name string
		raw        bool
	}{
		{"CRI-O conmon scope in a live pod", "crio-conmon-" + randomHex(64) + ".scope", false},
		{"CRI-O dropped-infra directory in a live pod", "crio-" + randomHex(64), true},
		{"containerd scope of a deleted container in a live pod", "cri-containerd-" + randomHex(64) + ".scope", false},
	} {
		dir := filepath.Join(pods[i].dir, l.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		inLive = append(inLive, &leak{form: l.form, dir: dir, made: time.Now(), raw: l.raw})
	}
	waitGone(t, 180*time.Second, removable)
	for _, l := range removable {
		report.add("kubelet removed %s (%s) in %s", filepath.Base(l.dir), l.form, l.gone.Round(100*time.Millisecond))
	}
	for _, s := range strays {
		if st := testbed.ProcState(s.Process.Pid); st != 0 && st != 'Z' {
			t.Errorf("stray process %d still alive (state %c) after kubelet removed its pod cgroup", s.Process.Pid, st)
		}
	}

	// 3. Busy leaks kubelet cannot remove and retries forever: a mount on
	// a child directory, then a task in D state (kubernetes#123766's form).
	mountUID, _, mountDir := orphanSlice(t, bus, "besteffort")
	mp := filepath.Join(mountDir, "cri-containerd-"+randomHex(64)+".scope")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(mp, mp, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", mp, err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mp, err)
			}
		}
	}
	t.Cleanup(unmount)
	time.Sleep(10 * time.Second) // kubelet's first tries
	one := kubeletSample(t, window, map[string]string{"mount": mountUID})
	report.add("1 busy leak (a mount on a child): kubelet CPU %.1f%% of a CPU (idle %.1f%%), %.0f %q lines a minute (%d naming it)",
		100*one.cpu, 100*before.cpu, one.perMinute(), doctor.KubeletRetryLine, one.byLeak["mount"])
	if one.byLeak["mount"] == 0 {
		t.Errorf("kubelet logged no %q naming the mount leak %s in %s", doctor.KubeletRetryLine, mountDir, window)
	}

	// The writer gets stuck in a cgroup of the test's own first, then
	// moves into the leak at once: kubelet would remove an empty slice
	// while the writer is on its way.
	hold := filepath.Join(cgroupRoot, "node-test-hold-"+randomHex(8))
	if err := os.Mkdir(hold, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "the holding cgroup "+hold+" to empty", func() bool { return syscall.Rmdir(hold) == nil })
	})
	join := func(dir string) func(int) error {
		return func(pid int) error {
			return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		}
	}
	writer, thaw := testbed.StuckWriter(t, frozenDisk, join(hold))
	stuckUID, _, stuckDir := orphanSlice(t, bus, "besteffort")
	stuckChild := filepath.Join(stuckDir, "cri-containerd-"+randomHex(64)+".scope")
	if err := os.Mkdir(stuckChild, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := join(stuckChild)(writer); err != nil {
		t.Fatalf("move the stuck writer %d into %s: %v", writer, stuckChild, err)
	}
	time.Sleep(10 * time.Second)
	two := kubeletSample(t, window, map[string]string{"mount": mountUID, "dstate": stuckUID})
	report.add("2 busy leaks (+ a task in D state): kubelet CPU %.1f%% of a CPU, %.0f %q lines a minute (%d naming the D-state leak)",
		100*two.cpu, two.perMinute(), doctor.KubeletRetryLine, two.byLeak["dstate"])
	if two.byLeak["dstate"] == 0 {
		t.Errorf("kubelet logged no %q naming the D-state leak %s in %s", doctor.KubeletRetryLine, stuckDir, window)
	}
	for _, d := range []string{mountDir, stuckDir} {
		if !exists(d) {
			t.Errorf("busy leak %s is gone: it should be impossible to remove", d)
		}
	}
	if testbed.ProcState(writer) != 'D' {
		t.Errorf("the stuck writer %d: state %c, want D", writer, testbed.ProcState(writer))
	}
	for _, l := range inLive {
		if !exists(l.dir) {
			t.Errorf("%s went while only kubelet ran: kubelet looks inside live pods after all", l.dir)
		} else {
			report.add("kubelet left %s (%s) for %s", filepath.Base(l.dir), l.form, time.Since(l.made).Round(time.Second))
		}
	}

	// 4. The package beside kubelet, enabled as an operator would.
	if err := os.WriteFile(configPath, []byte(daemonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	daemonStart := time.Now()
	mustRun(t, 120*time.Second, "systemctl", "enable", "--now", unit)
	waitGone(t, 180*time.Second, inLive)
	for _, l := range inLive {
		report.add("cgroupcleand removed %s (%s) %s after it started", filepath.Base(l.dir), l.form, time.Since(daemonStart).Round(time.Second))
	}
	passes := len(journal(t, "-u", unit, "MESSAGE_ID="+audit.IDPassSummary))
	testbed.WaitFor(t, 90*time.Second, 250*time.Millisecond, "three more passes", func() bool {
		return len(journal(t, "-u", unit, "MESSAGE_ID="+audit.IDPassSummary)) >= passes+3
	})

	t.Run("live static pods untouched", func(t *testing.T) { checkStaticPods(t, rt, pods) })
	t.Run("removed the leaks in live pods, nothing else of this test's", func(t *testing.T) {
		removed := map[string]bool{}
		for _, e := range journal(t, "-u", unit, "--since", "@"+strconv.FormatInt(daemonStart.Unix(), 10), "MESSAGE_ID="+audit.IDOrphanRemoved) {
			removed[cgroupRoot+e["CGROUP_PATH"]] = true
		}
		for _, l := range inLive {
			if !removed[l.dir] {
				t.Errorf("no removed entry for %s", l.dir)
			}
			delete(removed, l.dir)
		}
		// Earlier steps of the node test leave orphans of their own:
		// those may go too, nothing else.
		for p := range removed {
			if !earlier[p] {
				t.Errorf("removed %s, which is neither a leak in a live pod nor an earlier step's leftover", p)
			}
		}
	})
	t.Run("kubelet logs no error about what the daemon removed", func(t *testing.T) {
		errs := kubeletErrors(t, daemonStart)
		bad, stale := 0, 0
		for _, line := range errs {
			for _, l := range inLive {
				// The container ID alone names it too (cAdvisor's way).
				id := strings.TrimSuffix(filepath.Base(l.dir), ".scope")
				id = id[strings.LastIndex(id, "-")+1:]
				if !strings.Contains(line, id) {
					continue
				}
				// A plain directory no runtime claims (crio-<id> on a
				// containerd node) is watched by cAdvisor's raw handler,
				// which misses its removal and keeps asking for its stats:
				// measured, documented, and the only error allowed.
				if l.raw && strings.Contains(line, cadvisorStale) {
					stale++
					continue
				}
				bad++
				t.Errorf("kubelet error naming %s, which the daemon removed:\n%s", l.dir, line)
			}
		}
		mountStale := 0
		for _, line := range kubeletErrors(t, kubeletStart) {
			if strings.Contains(line, filepath.Base(mp)) && strings.Contains(line, cadvisorStale) {
				mountStale++
			}
		}
		report.add("kubelet error lines while the daemon ran (%s): %d; %d naming a cgroup the daemon removed; %d of them cAdvisor's %q about the removed dropped-infra directory (it logs the same about the busy mount leak kubelet failed to remove: %d lines)",
			time.Since(daemonStart).Round(time.Second), len(errs), bad+stale, stale, cadvisorStale, mountStale)
	})
	t.Run("doctor names the busy causes and kubelet's retries", func(t *testing.T) {
		checkDoctor(t, report, mountDir, mp, stuckDir)
	})

	// 5. Doing what doctor says ends it: unmount, thaw; then the leaks go.
	fixed := []*leak{{form: "busy: mount", dir: mountDir, made: time.Now()}}
	unmount()
	fixed = append(fixed, &leak{form: "busy: D state", dir: stuckDir, made: time.Now()})
	thaw()
	waitGone(t, 180*time.Second, fixed)
	for _, l := range fixed {
		report.add("after the fix (umount, fsfreeze -u) %s went in %s", filepath.Base(l.dir), l.gone.Round(100*time.Millisecond))
	}
}

// startKubelet writes kubelet's config and static pods, starts it as a
// transient service, and waits for the pods to run.
func startKubelet(t *testing.T, sh string, rt *cri) ([]*livePod, time.Duration) {
	t.Helper()
	for _, d := range []string{manifestDir, filepath.Dir(kubeletConfig)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(kubeletConfig, []byte(kubeletConfigYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	qos := []string{"guaranteed", "burstable", "besteffort"}
	for _, q := range qos {
		if err := os.WriteFile(filepath.Join(manifestDir, "static-"+q+".yaml"), []byte(staticPod(q)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The guest has no network: without a default route kubelet fails its
	// node status every second, which is noise in its CPU and its errors.
	for _, args := range [][]string{
		{"link", "add", "node-test0", "type", "dummy"},
		{"addr", "add", "10.254.0.1/24", "dev", "node-test0"},
		{"link", "set", "node-test0", "up"},
		{"route", "add", "default", "via", "10.254.0.254", "dev", "node-test0"},
	} {
		if args[1] == "add" && args[0] == "link" {
			t.Cleanup(func() { _, _ = run(30*time.Second, "ip", "link", "del", "node-test0") })
		}
		if out, err := run(30*time.Second, "ip", args...); err != nil {
			t.Logf("no default route for kubelet (%v: %s): its node status fails every second", err, out)
			break
		}
	}
	start := time.Now()
	mustRun(t, 60*time.Second, "systemd-run", "--unit="+strings.TrimSuffix(kubeletUnit, ".service"),
		"--property=CPUAccounting=yes", filepath.Join(sh, "bin", "kubelet"), "--config="+kubeletConfig, "--v=2")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run(60*time.Second, "journalctl", "-b", "--no-pager", "-u", kubeletUnit, "-n", "150")
			t.Logf("kubelet journal (last 150 lines):\n%s", out)
		}
		_, _ = run(120*time.Second, "systemctl", "stop", kubeletUnit)
		_ = os.RemoveAll(manifestDir)
		// The static pods' sandboxes: kubelet made them, the test stops
		// them, through CRI.
		ctx, cancel := criCtx()
		defer cancel()
		res, err := rt.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Logf("list sandboxes for cleanup: %v", err)
			return
		}
		for _, sb := range res.GetItems() {
			if sb.GetMetadata().GetNamespace() == staticNamespace {
				_, _ = rt.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.GetId()})
				_, _ = rt.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.GetId()})
			}
		}
	})
	var pods []*livePod
	testbed.WaitFor(t, 300*time.Second, 250*time.Millisecond, "kubelet to run the 3 static pods", func() bool {
		pods = staticPods(t, rt)
		return len(pods) == len(qos)
	})
	took := time.Since(start)
	byQoS := map[string]*livePod{}
	for _, p := range pods {
		byQoS[p.qos] = p
	}
	pods = pods[:0]
	for _, q := range qos {
		p := byQoS[q]
		if p == nil {
			t.Fatalf("no running static pod of QoS %s", q)
		}
		for _, d := range []string{p.dir, p.sandboxScope, p.cScope} {
			if !exists(d) {
				t.Fatalf("static pod %s: no %s (kubelet's systemd driver names differ from what the test expects)", q, d)
			}
		}
		pods = append(pods, p)
	}
	return pods, took
}

// staticPods lists the static pods whose sandbox is ready and whose
// container runs.
func staticPods(t *testing.T, rt *cri) []*livePod {
	t.Helper()
	ctx, cancel := criCtx()
	defer cancel()
	sbs, err := rt.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil {
		return nil
	}
	cs, err := rt.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return nil
	}
	var out []*livePod
	for _, sb := range sbs.GetItems() {
		md := sb.GetMetadata()
		if md.GetNamespace() != staticNamespace {
			continue
		}
		p := &livePod{uid: md.GetUid(), sandbox: sb.GetId()}
		for _, q := range []string{"guaranteed", "burstable", "besteffort"} {
			if strings.HasPrefix(md.GetName(), "static-"+q+"-") {
				p.qos = q
			}
		}
		for _, c := range cs.GetContainers() {
			if c.GetPodSandboxId() == sb.GetId() {
				p.container = c.GetId()
			}
		}
		if p.qos == "" || p.container == "" {
			continue
		}
		p.dir = slicePath(sliceName(p.qos, p.uid))
		p.sandboxScope = filepath.Join(p.dir, "cri-containerd-"+p.sandbox+".scope")
		p.cScope = filepath.Join(p.dir, "cri-containerd-"+p.container+".scope")
		out = append(out, p)
	}
	return out
}

// checkStaticPods: every live static pod keeps its slice and scopes, and
// its sandbox and container are the same ones, still running.
func checkStaticPods(t *testing.T, rt *cri, pods []*livePod) {
	now := map[string]*livePod{}
	for _, p := range staticPods(t, rt) {
		now[p.uid] = p
	}
	for _, p := range pods {
		for _, d := range []string{p.dir, p.sandboxScope, p.cScope} {
			if !exists(d) {
				t.Errorf("static %s pod: %s is gone", p.qos, d)
			}
		}
		q := now[p.uid]
		switch {
		case q == nil:
			t.Errorf("static %s pod %s: no longer running", p.qos, p.uid)
		case q.sandbox != p.sandbox || q.container != p.container:
			t.Errorf("static %s pod %s: sandbox/container %s/%s, was %s/%s (restarted)", p.qos, p.uid, q.sandbox, q.container, p.sandbox, p.container)
		}
		if rm := journal(t, "-u", unit, "MESSAGE_ID="+audit.IDOrphanRemoved, "POD_UID="+p.uid); len(rm) != 0 {
			for _, e := range rm {
				if !strings.HasPrefix(cgroupRoot+e["CGROUP_PATH"], p.dir+"/") || strings.Contains(e["CGROUP_PATH"], p.sandbox) || strings.Contains(e["CGROUP_PATH"], p.container) {
					t.Errorf("static %s pod %s: the daemon removed %s", p.qos, p.uid, e["CGROUP_PATH"])
				}
			}
		}
	}
}

// cgroupDirs lists the directories below top (none when it is missing).
func cgroupDirs(t *testing.T, top string) map[string]bool {
	dirs := map[string]bool{}
	err := filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs[p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// orphanSlice makes a pod slice as kubelet does, for a pod kubelet never
// ran (a made-up UID, no pod directory): what a deleted pod leaves.
func orphanSlice(t *testing.T, bus *sddbus.Conn, qos string) (uid, slice, dir string) {
	t.Helper()
	uid = testbed.RandomUID()
	slice = sliceName(qos, uid)
	kubeletSlice(t, bus, slice)
	return uid, slice, slicePath(slice)
}

// waitGone polls until every leak's directory is gone, noting when.
func waitGone(t *testing.T, limit time.Duration, leaks []*leak) {
	t.Helper()
	testbed.WaitFor(t, limit, 250*time.Millisecond, fmt.Sprintf("%d leaks to go", len(leaks)), func() bool {
		left := 0
		for _, l := range leaks {
			if l.gone == 0 {
				if exists(l.dir) {
					left++
				} else {
					l.gone = time.Since(l.made)
				}
			}
		}
		return left == 0
	})
}

// sample is kubelet over one window: its CPU (share of one CPU, from its
// unit's cpu.stat) and its retry lines, in all and per leak.
type sample struct {
	cpu    float64
	total  int
	byLeak map[string]int
	window time.Duration
}

func (s sample) perMinute() float64 {
	return float64(s.total) * float64(time.Minute) / float64(s.window)
}

// kubeletSample measures kubelet for d; leaks maps a name to a pod UID
// whose retry lines are counted apart.
func kubeletSample(t *testing.T, d time.Duration, leaks map[string]string) sample {
	t.Helper()
	stat := filepath.Join(cgroupRoot, "system.slice", kubeletUnit, "cpu.stat")
	from := time.Now()
	u0 := cpuUsage(t, stat)
	time.Sleep(d)
	u1 := cpuUsage(t, stat)
	to := time.Now()
	s := sample{cpu: float64(u1-u0) / float64(to.Sub(from)), byLeak: map[string]int{}, window: to.Sub(from)}
	out := mustRun(t, 60*time.Second, "journalctl", "--no-pager", "-q", "-o", "cat", "-u", kubeletUnit,
		"--since", "@"+strconv.FormatInt(from.Unix(), 10), "--until", "@"+strconv.FormatInt(to.Unix(), 10))
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, doctor.KubeletRetryLine) {
			continue
		}
		s.total++
		for name, uid := range leaks {
			if strings.Contains(line, uid) || strings.Contains(line, strings.ReplaceAll(uid, "-", "_")) {
				s.byLeak[name]++
			}
		}
	}
	t.Logf("kubelet over %s: CPU %.1f%%, %d retry lines %v", s.window.Round(time.Second), 100*s.cpu, s.total, s.byLeak)
	return s
}

func cpuUsage(t *testing.T, stat string) time.Duration {
	t.Helper()
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return time.Duration(us) * time.Microsecond
		}
	}
	t.Fatalf("%s: no usage_usec", stat)
	return 0
}

// kubeletErrors are kubelet's error lines (klog "E<mmdd> ...") since a time.
func kubeletErrors(t *testing.T, since time.Time) []string {
	t.Helper()
	out := mustRun(t, 60*time.Second, "journalctl", "--no-pager", "-q", "-o", "cat", "-u", kubeletUnit,
		"--since", "@"+strconv.FormatInt(since.Unix(), 10))
	var errs []string
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 5 && line[0] == 'E' && line[1] >= '0' && line[1] <= '9' {
			errs = append(errs, line)
		}
	}
	return errs
}

func kubeletVersion(t *testing.T, sh string) string {
	out := mustRun(t, 60*time.Second, filepath.Join(sh, "bin", "kubelet"), "--version")
	return strings.TrimPrefix(strings.TrimSpace(out), "Kubernetes v")
}

// checkDoctor runs `cgroupcleand doctor --json` as an operator would and
// wants each busy leak's cause with its evidence, and kubelet's retries.
func checkDoctor(t *testing.T, report *leakReport, mountDir, mp, stuckDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "cgroupcleand", "doctor", "--json", "--interval", "5s")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("cgroupcleand doctor: %v\n%s\n%s", err, out, ee.Stderr)
	}
	var rep doctor.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	text, _ := run(180*time.Second, "cgroupcleand", "doctor", "--interval", "5s")
	t.Logf("cgroupcleand doctor:\n%s", text)
	find := func(id, dir string) *doctor.Finding {
		for _, f := range rep.Find(id) {
			if dir == "" || cgroupRoot+f.Subject == dir {
				return &f
			}
		}
		return nil
	}
	if f := find(doctor.IDBusyMount, mountDir); f == nil {
		t.Errorf("no %s for %s in %s", doctor.IDBusyMount, mountDir, out)
	} else if !strings.Contains(f.Measured, mp) {
		t.Errorf("%s: %q does not name the mount point %s", doctor.IDBusyMount, f.Measured, mp)
	} else {
		report.add("doctor: %s %s: %s", f.ID, f.Subject, f.Measured)
	}
	if f := find(doctor.IDBusyDState, stuckDir); f == nil {
		t.Errorf("no %s for %s in %s", doctor.IDBusyDState, stuckDir, out)
	} else if !strings.Contains(f.Measured, "percpu_rwsem_wait") {
		t.Errorf("%s: %q does not give the wchan percpu_rwsem_wait", doctor.IDBusyDState, f.Measured)
	} else {
		report.add("doctor: %s %s: %s", f.ID, f.Subject, f.Measured)
	}
	if f := find(doctor.IDKubeletRetry, ""); f == nil {
		t.Errorf("no %s in %s", doctor.IDKubeletRetry, out)
	} else if f.Severity != doctor.Warn || f.Value <= 0 {
		t.Errorf("%s: %s, value %v: want a warning with the lines a minute", f.ID, f.Severity, f.Value)
	} else {
		report.add("doctor: %s: %s", f.ID, f.Measured)
	}
}

// leakReport collects the measured figures for docs/leak-forms.md.
type leakReport struct{ lines []string }

func (r *leakReport) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *leakReport) write(t *testing.T, path string) {
	body := "# kubelet and the leak forms (node test)\n\n"
	for _, l := range r.lines {
		body += "- " + l + "\n"
		t.Log(l)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Logf("write %s: %v", path, err)
	}
}
