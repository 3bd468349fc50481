// Package demo is `make demo`: a throwaway containerd, live and orphaned
// pods under a cgroup root of its own, and the real cgroupcleand binary's
// scan, clean --dry-run, clean and scan again on them. It is a test only so
// it can reuse the test harness; it runs when CGROUPCLEAN_DEMO is set.
package demo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func TestDemo(t *testing.T) {
	bin := os.Getenv("CGROUPCLEAN_DEMO")
	if bin == "" {
		t.Skip("set CGROUPCLEAN_DEMO=<path to cgroupcleand> (make demo does)")
	}
	bin, _ = filepath.Abs(bin)
	out := os.Stdout
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	root := testbed.NewCgroupRoot(t, "demo")
	ctrd := testbed.StartContainerd(t)
	kubelet := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(kubelet, "pods"), 0o755))
	say("== a throwaway containerd at %s, pod cgroups under /%s/kubepods in %d hierarchies", ctrd.Endpoint(), root.Name, len(root.Hierarchies))

	run := func(qos string) (string, string) {
		uid := testbed.RandomUID()
		rel := "kubepods/" + qos + "/pod" + uid
		if qos == "guaranteed" {
			rel = "kubepods/pod" + uid
		}
		must(t, root.Mkdir(rel))
		return uid, ctrd.RunPod(t, root.Rel(rel), uid, "demo-"+uid[:8])
	}
	a, sbA := run("burstable")
	ctrd.CreateStartContainer(t, sbA, "app")
	// A busy container under a 5 ms per 100 ms CFS quota: doctor flags it.
	spinner := ctrd.StartWorkload(t, sbA, "spinner", "spin")
	for _, h := range root.Hierarchies {
		if h.Version == 1 && h.Has("cpu") {
			must(t, os.WriteFile(filepath.Join(h.Path(root.Rel("kubepods/burstable/pod"+a)), spinner, "cpu.cfs_quota_us"), []byte("5000"), 0o644))
		}
	}
	b, _ := run("guaranteed")
	c, sbC := run("besteffort")
	ctrd.StopRemovePod(t, sbC)
	say("== live pods %s (burstable, with a container and a CPU-bound one under a small quota) and %s (guaranteed)", a[:8], b[:8])
	say("== pod %s stopped and removed through CRI: its pod cgroup is now an orphan", c[:8])
	d := testbed.RandomUID()
	must(t, root.Mkdir("kubepods/burstable/pod"+d+"/"+strings.Repeat("ab", 32)))
	say("== pod %s: a leaked pod cgroup with a container dir, made by hand", d[:8])
	e := testbed.RandomUID()
	must(t, root.Mkdir("kubepods/burstable/pod"+e))
	sleeper := exec.Command("sleep", "600")
	must(t, sleeper.Start())
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	must(t, root.AddProc("kubepods/burstable/pod"+e, sleeper.Process.Pid))
	say("== pod %s: an orphan with a process inside (pid %d): it must be kept", e[:8], sleeper.Process.Pid)

	cfg := filepath.Join(t.TempDir(), "config.toml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`[runtime]
endpoint = %q
timeout = "5s"
[cgroup]
pod_root = %q
kubelet_root = %q
[clean]
min_age = "0s"
confirm_passes = 1
max_removal_share = 1.0
use_systemd = "never"
[daemon]
state_dir = %q
`, ctrd.Endpoint(), root.Rel("kubepods"), kubelet, t.TempDir())), 0o644))

	for _, args := range [][]string{{"scan"}, {"doctor", "--interval", "2s"}, {"clean", "--dry-run"}, {"clean"}, {"scan"}} {
		say("\n$ cgroupcleand %s --config %s", strings.Join(args, " "), cfg)
		// Its own lock: another test's cleaner may be running.
		cmd := testbed.PrivateLockCommand(append([]string{bin}, append(args, "--config", cfg)...)...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(os.Environ(), "JOURNAL_STREAM=")
		err := cmd.Run()
		// doctor exits 1 when it has a warning, which it must have here.
		if args[0] == "doctor" && cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 1 {
			err = nil
		}
		if err != nil {
			t.Errorf("cgroupcleand %v: %v", args, err)
		}
	}
	for _, uid := range []string{c, d} {
		for _, q := range []string{"burstable", "besteffort"} {
			if root.Exists("kubepods/"+q+"/pod"+uid) != 0 {
				t.Errorf("orphan %s still there after clean", uid)
			}
		}
	}
	if root.Exists("kubepods/burstable/pod"+a) != len(root.Hierarchies) || root.Exists("kubepods/pod"+b) != len(root.Hierarchies) || root.Exists("kubepods/burstable/pod"+e) != len(root.Hierarchies) {
		t.Error("a live pod or the orphan with a process lost a cgroup")
	}
	say("\n== done: the throwaway containerd and every cgroup under /%s are removed now", root.Name)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
