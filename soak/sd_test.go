package soak

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

	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// sdPhase is the systemd-driver half: a second daemon (use_systemd =
// "always") whose pod root is a kubepods.slice tree under a real
// systemd --user manager, against the same containerd. It exists for the
// D-Bus fault: with the bus gone, orphan slices must be kept
// (systemd-unreachable), never rmdir'ed behind systemd's back.
type sdPhase struct {
	sd  *testbed.UserSystemd
	src *source
	d   *daemonProc
	// procs are the live pods' scope processes, by pod UID.
	procs map[string]*testbed.Process
}

func startSDPhase(t *testing.T) *sdPhase {
	return &sdPhase{sd: testbed.StartUserSystemd(t), procs: map[string]*testbed.Process{}}
}

func (p *sdPhase) startDaemon(t *testing.T, h *harness, bin, dir string) {
	cfg := filepath.Join(dir, "config-systemd.toml")
	must(t, os.WriteFile(cfg, []byte(h.config(h.ctrd.Endpoint(), p.sd.Root.Rel("kubepods.slice"), "systemd", "always", p.sd.Bus)), 0o644))
	p.d = &daemonProc{bin: bin, cfg: cfg, logPath: filepath.Join(dir, "daemon-systemd.log")}
	p.src = &source{d: p.d, log: &logWatch{path: p.d.logPath}, root: p.sd.Root, live: map[string]*pod{}, sd: true, outageFrom: -1}
	// The slices must exist before the first pass finds the pod root.
	uid := testbed.RandomUID()
	p.createPod(h, uid)
	must(t, p.d.start(nil))
	h.rep.DaemonStarts++
	t.Cleanup(func() {
		if err := p.d.stop(); err != nil {
			t.Errorf("systemd-driver daemon: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.d.logPath)
			if len(b) > 10000 {
				b = b[len(b)-10000:]
			}
			t.Logf("--- systemd-driver daemon log tail:\n%s", b)
		}
	})
}

func slicePath(uid string) string {
	return "kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, uid)
}

// createPod is a systemd-driver pod: a scope with a process in the pod's
// slice, a sandbox of that UID in containerd (its cgroup outside the pod
// root: this containerd cannot place sandboxes in slices; liveness is by
// UID) and kubelet's pod dir.
func (p *sdPhase) createPod(h *harness, uid string) {
	proc := testbed.StartProcess(h.t, "sleep", "3600")
	scope := slicePath(uid) + "/crio-" + randomHex(64) + ".scope"
	p.sd.StartScope(h.t, scope, proc.PID)
	must(h.t, os.MkdirAll(filepath.Join(h.kubelet, "pods", uid), 0o755))
	must(h.t, p.sd.Root.Mkdir("sandboxes/pod"+uid))
	sb := h.ctrd.RunPod(h.t, p.sd.CgroupPath("sandboxes/pod"+uid), uid, "sd-"+uid[:8])
	pd := &pod{uid: uid, rel: slicePath(uid), qos: "besteffort (systemd)", sandbox: sb}
	for _, hh := range p.sd.Root.Hierarchies {
		for _, rel := range []string{slicePath(uid), "sandboxes/pod" + uid} {
			_ = filepath.WalkDir(filepath.Join(hh.Path(p.sd.Root.Name), rel), func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					pd.dirs = append(pd.dirs, path)
				}
				return nil
			})
		}
	}
	h.mu.Lock()
	p.src.live[uid] = pd
	p.procs[uid] = proc
	h.rep.PodsCreated++
	h.rep.PodsByQoS[pd.qos]++
	h.rep.WithKubeletDir++
	h.rep.MaxLive = max(h.rep.MaxLive, len(h.live)+len(p.src.live))
	h.mu.Unlock()
}

// churn keeps two or three systemd-driver pods live and orphans one now
// and then.
func (p *sdPhase) churn(h *harness) {
	h.mu.Lock()
	n := len(p.src.live)
	h.mu.Unlock()
	if n < 3 {
		p.createPod(h, testbed.RandomUID())
		return
	}
	p.orphan(h)
}

// orphan ends a systemd-driver pod the leaky way: sandbox removed,
// kubelet's dir gone, the scope's process ended (systemd drops the
// scope) but the pod slice stays.
func (p *sdPhase) orphan(h *harness) *orphan {
	h.mu.Lock()
	var uids []string
	for u := range p.src.live {
		uids = append(uids, u)
	}
	if len(uids) == 0 {
		h.mu.Unlock()
		return nil
	}
	sort.Strings(uids)
	pd := p.src.live[uids[h.rng.IntN(len(uids))]]
	delete(p.src.live, pd.uid)
	proc := p.procs[pd.uid]
	delete(p.procs, pd.uid)
	h.mu.Unlock()
	h.ctrd.StopRemovePod(h.t, pd.sandbox)
	if err := rmTree(p.sd.Root, "sandboxes/pod"+pd.uid); err != nil {
		h.t.Fatalf("remove sandbox parent: %v", err)
	}
	must(h.t, os.RemoveAll(filepath.Join(h.kubelet, "pods", pd.uid)))
	_ = syscall.Kill(proc.PID, syscall.SIGKILL)
	if !proc.Wait(10 * time.Second) {
		h.t.Fatalf("scope process %d did not exit", proc.PID)
	}
	o := &orphan{kind: kindSlice, uid: pd.uid, rel: pd.rel, sd: true, releasedAt: time.Now()}
	h.mu.Lock()
	h.orphans = append(h.orphans, o)
	h.kind(kindSlice).Made++
	h.mu.Unlock()
	return o
}

// systemctl talks to the manager over its private socket, which works
// with the bus down.
func (p *sdPhase) systemctl(args ...string) error {
	cmd := exec.Command("systemctl", append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(p.sd.Dir, "xdg"), "DBUS_SESSION_BUS_ADDRESS="+p.sd.Bus)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl --user %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// faultDbus stops the manager's D-Bus (dbus.socket and dbus.service) for
// 4 s with an orphan slice waiting: the daemon must keep it
// (systemd-unreachable) and remove it once the bus is back.
func (h *harness) faultDbus() {
	p := h.sd
	f := h.fault("systemd D-Bus gone", "")
	for h.sdLive() < 2 {
		p.createPod(h, testbed.RandomUID())
	}
	h.readLogs()
	off := p.src.log.size()
	must(h.t, p.systemctl("stop", "dbus.socket", "dbus.service"))
	o := p.orphan(h)
	h.mu.Lock()
	o.blocked, o.until, o.releasedAt = "D-Bus outage", time.Now().Add(time.Hour), time.Time{}
	h.mu.Unlock()
	before := p.sd.Root.Exists(o.rel)
	seen := false
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) || !seen {
		es, err := p.src.log.poll()
		must(h.t, err)
		h.tally(p.src, es)
		for _, e := range es {
			if e.Off >= off && e.Reason == "systemd-unreachable" && e.Path == p.sd.Root.Rel(o.rel) {
				seen = true
			}
		}
		if time.Now().After(deadline.Add(8 * time.Second)) {
			h.violation("D-Bus down: no systemd-unreachable entry for orphan slice %s in 12 s", o.rel)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.check("D-Bus down")
	if now := p.sd.Root.Exists(o.rel); now < before {
		h.violation("D-Bus down: orphan slice %s lost directories behind systemd's back (%d -> %d)", o.rel, before, now)
	}
	must(h.t, p.systemctl("start", "dbus.socket"))
	h.mu.Lock()
	o.blocked, o.releasedAt = "", time.Now()
	h.mu.Unlock()
	f.Count++
	f.Detail = fmt.Sprintf("systemd-driver daemon (use_systemd always, its own config and log) under a real systemd --user manager: `systemctl --user stop dbus.socket dbus.service` (over the manager's private socket) for at least 4 s with a fresh orphan pod slice, then `start dbus.socket`. Checked: the orphan is kept with REASON systemd-unreachable and loses no directory while the bus is gone, and is stopped through systemd and removed once it is back (its wait is in the `%s` row)", kindSlice)
}

func (h *harness) sdLive() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sd.src.live)
}
