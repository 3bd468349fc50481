package memcg

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Integration tests on this machine's real v1 memory hierarchy, under the
// test's own cgroup root only. The v2 memory.reclaim path cannot run here
// (memory is a v1 controller; the unified mount has none): it is tested on
// fixture files in action_test.go.

const (
	fileSize   = 256 << 10
	nZombies   = 300
	settleTime = 10 * time.Second
)

func TestMain(m *testing.M) {
	testbed.ChargeMain()
	os.Exit(m.Run())
}

type memTestbed struct {
	root     *testbed.CgroupRoot
	mem      hierarchy.Hierarchy
	podRoot  string // cgroup path of the test's "pod root"
	podDir   string
	dataDir  string
	probe    *Probe
	children []string
}

func newMemTestbed(t *testing.T) *memTestbed {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "memcg")
	tb := &memTestbed{root: r, podRoot: r.Rel("pods")}
	found := false
	for _, h := range r.Hierarchies {
		if h.Version == 1 && h.Has("memory") {
			tb.mem, found = h, true
		}
	}
	testbed.Need(t, found, "a cgroup v1 memory hierarchy")
	if err := r.MkdirIn(tb.mem, "pods"); err != nil {
		t.Fatal(err)
	}
	tb.podDir = tb.mem.Path(tb.podRoot)
	// Made after the cgroup root, so it is removed first.
	tb.dataDir = testbed.DiskTempDir(t)
	p, err := NewProbe(Paths{ProcRoot: "/proc", MemoryRoot: tb.mem.Mountpoint, PodRoot: tb.podRoot}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tb.probe = p
	return tb
}

// chargeChildren makes n memcgs under the pod root, each with page cache
// charged by the helper process, and leaves them empty of tasks.
func (tb *memTestbed) chargeChildren(t *testing.T, n int) {
	t.Helper()
	tb.children = tb.root.ChargeMemcgs(t, tb.mem, "pods", "", tb.dataDir, n, fileSize)
}

func (tb *memTestbed) sample(t *testing.T) Sample {
	t.Helper()
	s, err := tb.probe.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitDying polls until cond holds on the machine-wide dying count (the
// kernel frees memcgs asynchronously) and returns the last sample.
func (tb *memTestbed) waitDying(t *testing.T, cond func(int64) bool) (Sample, bool) {
	t.Helper()
	deadline := time.Now().Add(settleTime)
	for {
		s := tb.sample(t)
		if cond(s.Dying) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func usage(t *testing.T, dir string) int64 {
	t.Helper()
	v, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Zombies made under the test root are counted, the watchdog decides to
// act; the v1 path without opt-in picks drop_caches (written to an
// injected file here, so nothing happens and the watchdog backs off), with
// the opt-in it force_empties the test's own pod root and the count drops.
func TestIntegrationV1ZombiesCountedAndReclaimed(t *testing.T) {
	tb := newMemTestbed(t)
	base := tb.sample(t)
	tb.chargeChildren(t, nZombies)
	for _, d := range tb.children {
		if err := unix.Rmdir(d); err != nil {
			t.Fatalf("rmdir %s: %v", d, err)
		}
	}
	// Machine-wide count: others may add or free a few meanwhile, so
	// the test asks for most of its own, not an exact delta.
	peak, ok := tb.waitDying(t, func(d int64) bool { return d-base.Dying >= nZombies*9/10 })
	t.Logf("dying: base %d, after %d rmdirs of charged memcgs %d; pod root usage %d bytes", base.Dying, nZombies, peak.Dying, usage(t, tb.podDir))
	if !ok {
		t.Fatalf("dying count rose by %d, want >= %d", peak.Dying-base.Dying, nZombies*9/10)
	}
	if u := usage(t, tb.podDir); u < nZombies*fileSize*9/10 {
		t.Fatalf("pod root usage %d: the zombies' page cache is not charged there", u)
	}

	cfg := config.DefaultMemcg()
	cfg.Mode = "act"
	cfg.Window, cfg.ConfirmSamples = 3, 2
	cfg.DyingWarn = int(base.Dying) + nZombies/4
	cfg.DyingAct = int(base.Dying) + nZombies/2
	cfg.DyingRatioAct = 0
	cfg.PressureMax = 100 // this shared machine's PSI is not under test
	env := tb.probe.Env()
	if env.V2 || !env.PodRoot {
		t.Fatalf("env %+v", env)
	}
	var logBuf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logBuf)
	log.SetFormatter(&logrus.JSONFormatter{})

	t.Run("v1 without opt-in, fast reads: the count alone drops nothing", func(t *testing.T) {
		w := NewWatchdog(cfg, env, &fakeClock{t0})
		w.Observe(tb.sample(t))
		d := w.Observe(tb.sample(t))
		if d.Level != LevelAct || d.Trigger != TriggerDyingCount || d.Action != ActionNone || d.Reason != ReasonLatencyLow {
			t.Fatalf("decision %+v (latency p50 %s), want act level, no action, %s", d, d.LatencyP50, ReasonLatencyLow)
		}
	})

	t.Run("v1 without opt-in, slow reads: drop_caches to an injected path, backs off", func(t *testing.T) {
		cfg := cfg
		// Any real read is slower than this: the latency signal is on.
		cfg.LatencyWarn.Duration, cfg.LatencyAct.Duration = time.Nanosecond, time.Nanosecond
		clk := &fakeClock{t0}
		w := NewWatchdog(cfg, env, clk)
		d := w.Observe(tb.sample(t))
		if d.Action != ActionNone || d.Reason != ReasonNotConfirmed {
			t.Fatalf("one sample: action %s reason %q", d.Action, d.Reason)
		}
		d = w.Observe(tb.sample(t))
		if d.Action != ActionDropCaches || d.Trigger != TriggerDyingCount || d.DropValue != 1 ||
			len(d.Skipped) != 1 || d.Skipped[0].Reason != ReasonV1NoTargeted {
			t.Fatalf("decision %+v", d)
		}
		fake := filepath.Join(t.TempDir(), "drop_caches")
		o := NewExecutor(tb.probe.Paths(), cfg, fake).Apply(context.Background(), d)
		if got, _ := os.ReadFile(fake); o.Err != nil || string(got) != "1" {
			t.Fatalf("drop_caches: wrote %q, %v", got, o.Err)
		}
		e := w.Record(d, o, tb.sample(t))
		LogAction(log, d, o, e)
		if e.Moved {
			t.Fatalf("a write to a plain file moved the signal: %+v", e)
		}
		clk.Advance(90 * time.Minute) // past the 1h cooldown, inside the 2h backoff
		if d := w.Observe(tb.sample(t)); d.Action != ActionNone || d.Reason != ReasonBackoff {
			t.Fatalf("after no effect: action %s reason %q", d.Action, d.Reason)
		}
	})

	t.Run("v1 opt-in: force_empty on the test's pod root", func(t *testing.T) {
		cfg := cfg
		cfg.V1ForceEmptyPodRoot = true
		// The v1 count is machine-wide: on a machine that already holds
		// thousands of dying memcgs, freeing this test's zombies is less
		// than the default share. Half their share is the effect asked.
		cfg.MinEffect = float64(nZombies) / float64(base.Dying+nZombies) / 2
		w := NewWatchdog(cfg, env, &fakeClock{t0})
		w.Observe(tb.sample(t))
		d := w.Observe(tb.sample(t))
		if d.Action != ActionReclaimPodRoot || d.Trigger != TriggerDyingCount {
			t.Fatalf("decision %+v", d)
		}
		o := NewExecutor(tb.probe.Paths(), cfg, filepath.Join(t.TempDir(), "drop_caches")).Apply(context.Background(), d)
		if o.Err != nil || o.Target != tb.podDir {
			t.Fatalf("outcome %+v (target must be %s)", o, tb.podDir)
		}
		after, ok := tb.waitDying(t, func(n int64) bool { return n <= base.Dying+nZombies/10 })
		e := w.Record(d, o, after)
		LogAction(log, d, o, e)
		t.Logf("force_empty on %s: freed %d bytes in %s; dying %d -> %d", o.Target, o.FreedBytes, o.Duration, d.Dying, after.Dying)
		if !ok || !e.Moved {
			t.Fatalf("dying count %d, want <= %d (base %d); effect %+v", after.Dying, base.Dying+nZombies/10, base.Dying, e)
		}
		if o.FreedBytes < nZombies*fileSize*9/10 {
			t.Errorf("freed %d bytes, want >= %d", o.FreedBytes, nZombies*fileSize*9/10)
		}
	})

	out := logBuf.String()
	for _, want := range []string{audit.IDMemcgAction, `"` + audit.Action + `":"` + audit.ActionDrop + `"`, `"` + audit.Action + `":"` + audit.ActionReclaim + `"`, `"` + FieldEffect + `":"moved"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// Step 1: reclaiming each memcg before its rmdir leaves no zombie.
func TestIntegrationV1PreventZombie(t *testing.T) {
	tb := newMemTestbed(t)
	base := tb.sample(t)
	tb.chargeChildren(t, nZombies)
	var freed int64
	start := time.Now()
	for _, d := range tb.children {
		n, err := PreventZombie(context.Background(), tb.mem.Mountpoint, d, false, 5*time.Second)
		if err != nil {
			t.Fatalf("prevent %s: %v", d, err)
		}
		freed += n
		if err := unix.Rmdir(d); err != nil {
			t.Fatalf("rmdir %s: %v", d, err)
		}
	}
	took := time.Since(start)
	after, ok := tb.waitDying(t, func(n int64) bool { return n <= base.Dying+nZombies/10 })
	t.Logf("prevented %d zombies: freed %d bytes in %s (%s each); dying %d -> %d", nZombies, freed, took, took/nZombies, base.Dying, after.Dying)
	if !ok {
		t.Fatalf("dying count rose from %d to %d despite prevention", base.Dying, after.Dying)
	}
	if freed < nZombies*fileSize*9/10 {
		t.Errorf("freed %d bytes, want >= %d", freed, nZombies*fileSize*9/10)
	}
	if u := usage(t, tb.podDir); u > nZombies*fileSize/10 {
		t.Errorf("pod root still charged %d bytes", u)
	}

	// A memcg with a task is refused, untouched.
	if err := tb.root.MkdirIn(tb.mem, "pods/busy"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	busy := filepath.Join(tb.podDir, "busy")
	if err := os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PreventZombie(context.Background(), tb.mem.Mountpoint, busy, false, time.Second); !errors.Is(err, ErrPopulated) {
		t.Errorf("populated memcg: err %v, want ErrPopulated", err)
	}
}

// force_empty is written only through a path confined to the memory mount:
// a ".." (even one that stays below the mount) or a mountpoint that is not
// the directory's own is refused, and nothing is reclaimed.
func TestIntegrationV1PreventZombieConfined(t *testing.T) {
	tb := newMemTestbed(t)
	tb.chargeChildren(t, 1)
	d := tb.children[0]
	before := usage(t, d)
	for name, tc := range map[string]struct{ mount, dir string }{
		"dotdot":        {tb.mem.Mountpoint, d + "/../" + filepath.Base(d)},
		"foreign mount": {filepath.Dir(tb.mem.Mountpoint), d},
	} {
		if _, err := PreventZombie(context.Background(), tc.mount, tc.dir, false, time.Second); !errors.Is(err, cgfs.ErrUnconfined) {
			t.Errorf("%s: err %v, want cgfs.ErrUnconfined", name, err)
		}
	}
	if after := usage(t, d); before == 0 || after < before/2 {
		t.Errorf("usage %d -> %d: a refused force_empty reclaimed", before, after)
	}
}
