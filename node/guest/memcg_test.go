//go:build nodeguest

package guest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const (
	chargeHelperEnv = "CGROUPCLEAN_NODE_CHARGE"
	zombies         = 150
	chargeBytes     = 256 << 10
	// The kernel frees an uncharged memcg after an RCU grace period and
	// its release work, which are slow under emulation.
	settle = 8 * time.Second
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(chargeHelperEnv); spec != "" {
		if err := chargeHelper(spec); err != nil {
			fmt.Fprintln(os.Stderr, "charge helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// chargeHelper runs in a child process. For each memcg dir given it joins
// it, writes a file and fsyncs it (clean page cache charged to that memcg),
// then moves to home, so the memcg can be removed with its charge left:
// a dying memcg once removed.
func chargeHelper(spec string) error {
	lines := strings.Split(spec, "\n")
	home, data, dirs := lines[0], lines[1], lines[2:]
	pid := []byte(strconv.Itoa(os.Getpid()))
	buf := bytes.Repeat([]byte("z"), chargeBytes)
	for i, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0o644); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(data, "f"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		f.Close()
	}
	return os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0o644)
}

// memcgBed is a cgroup root of the test's own with the memory controller
// enabled down to pods/, and pods/<set>/z<i> memcgs to charge.
type memcgBed struct {
	root *testbed.CgroupRoot
	top  string // the root's directory in the v2 hierarchy
	data string
}

func newMemcgBed(t *testing.T) *memcgBed {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "memcg")
	if len(r.Hierarchies) != 1 || r.Hierarchies[0].Version != 2 {
		t.Fatalf("hierarchies %v, want the v2 one only", r.Hierarchies)
	}
	b := &memcgBed{root: r, top: r.Hierarchies[0].Path(r.Name)}
	// Made after the root, so removed before it: deleting the files
	// uncharges their pages and frees the zombies left behind.
	b.data = t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(b.data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Fatalf("%s is tmpfs: its pages are not reclaimable", b.data)
	}
	for _, d := range []string{"home", "pods"} {
		if err := r.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{b.top, filepath.Join(b.top, "pods")} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
			t.Fatalf("enable memory in %s: %v", d, err)
		}
	}
	return b
}

// zombies makes n memcgs under pods/<set>, charges each, and removes them
// (before removes each, e.g. with reclaim first). It returns the dying
// count of pods/<set> once the kernel had time to free what it could.
func (b *memcgBed) zombies(t *testing.T, set string, n int, beforeRmdir func(dir string)) int64 {
	t.Helper()
	parent := filepath.Join(b.top, "pods", set)
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(b.data, set)
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := []string{filepath.Join(b.top, "home"), data}
	for i := range n {
		d := filepath.Join(parent, "z"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		spec = append(spec, d)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), chargeHelperEnv+"="+strings.Join(spec, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("charge helper: %v\n%s", err, out)
	}
	for _, d := range spec[2:] {
		if beforeRmdir != nil {
			beforeRmdir(d)
		}
		if err := unix.Rmdir(d); err != nil {
			t.Fatalf("rmdir %s: %v", d, err)
		}
	}
	time.Sleep(settle)
	return dying(t, parent)
}

func dying(t testing.TB, dir string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.stat"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := memcg.ParseCgroupStat(data)
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.Dying())
}

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestMemcgV2 runs the memcg watchdog's v2 paths on the real kernel:
// dying memcgs made and counted, memory.reclaim before rmdir, and act
// mode's memory.reclaim at the pod root within its cooldown.
func TestMemcgV2(t *testing.T) {
	requireNode(t)
	b := newMemcgBed(t)
	podRoot := b.root.Rel("pods")

	var plain, prevented int64
	t.Run("dying memcgs made and counted", func(t *testing.T) {
		plain = b.zombies(t, "plain", zombies, nil)
		t.Logf("%d memcgs charged and removed: %d dying", zombies, plain)
		if plain < zombies/2 {
			t.Fatalf("only %d of %d removed memcgs dying: the test cannot measure prevention", plain, zombies)
		}
		hs, err := hierarchy.Discover(cgroupRoot)
		if err != nil {
			t.Fatal(err)
		}
		root, v2, err := memcg.Locate(hs)
		if err != nil || !v2 || root != cgroupRoot {
			t.Fatalf("memcg.Locate: %s v2=%v %v, want %s on v2", root, v2, err, cgroupRoot)
		}
		p, err := memcg.NewProbe(memcg.Paths{ProcRoot: "/proc", MemoryRoot: root, V2: true, PodRoot: podRoot}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := dying(t, filepath.Join(b.top, "pods")); s.PodDying != want {
			t.Errorf("probe: pod root dying %d, cgroup.stat says %d", s.PodDying, want)
		}
		if s.Dying < plain {
			t.Errorf("probe: machine dying %d < the %d the test made", s.Dying, plain)
		}
	})
	t.Run("memory.reclaim before rmdir lowers the dying count", func(t *testing.T) {
		var freed int64
		prevented = b.zombies(t, "prevented", zombies, func(dir string) {
			n, err := memcg.PreventZombie(context.Background(), cgroupRoot, dir, true, 5*time.Second)
			if err != nil {
				t.Errorf("PreventZombie %s: %v", dir, err)
			}
			freed += n
		})
		t.Logf("with memory.reclaim before rmdir: %d dying (without: %d), %d bytes freed", prevented, plain, freed)
		if freed < zombies*chargeBytes/2 {
			t.Errorf("memory.reclaim freed %d bytes, want at least half of the %d charged", freed, zombies*chargeBytes)
		}
		if prevented*4 > plain {
			t.Errorf("dying with prevention %d, without %d: want at most a quarter", prevented, plain)
		}
	})
	t.Run("act mode reclaims at the pod root within its cooldown", func(t *testing.T) {
		hs, err := hierarchy.Discover(cgroupRoot)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.DefaultMemcg()
		cfg.Mode = "act"
		cfg.Window, cfg.ConfirmSamples = 2, 2
		cfg.DyingWarn, cfg.DyingAct = 10, int(plain/2)
		cfg.DropCaches = false
		cfg.ReclaimCooldown = config.Duration{Duration: 15 * time.Minute}
		clock := &stepClock{now: time.Now()}
		m, err := memcg.NewMonitor(hs, "/proc", podRoot, cfg, clock)
		if err != nil {
			t.Fatal(err)
		}
		log, hook := logtest.NewNullLogger()
		tick := func() memcg.Decision {
			d, err := m.Tick(context.Background(), log)
			if err != nil {
				t.Fatal(err)
			}
			clock.add(30 * time.Second)
			return d
		}
		actions := func() []*logrus.Entry {
			var out []*logrus.Entry
			for _, e := range hook.AllEntries() {
				if e.Data[audit.MessageID] == audit.IDMemcgAction {
					out = append(out, e)
				}
			}
			return out
		}
		before := dying(t, filepath.Join(b.top, "pods"))
		if d := tick(); d.Action != memcg.ActionNone || d.Reason != memcg.ReasonNotConfirmed {
			t.Fatalf("first sample: action %s reason %s, want none (not confirmed)", d.Action, d.Reason)
		}
		if d := tick(); d.Action != memcg.ActionReclaimPodRoot {
			t.Fatalf("confirmed: action %s reason %s (dying %d, act at %d), want %s", d.Action, d.Reason, d.Dying, cfg.DyingAct, memcg.ActionReclaimPodRoot)
		}
		acts := actions()
		if len(acts) != 1 {
			t.Fatalf("%d action entries, want 1", len(acts))
		}
		e := acts[0]
		if e.Data[audit.CgroupPath] != filepath.Join(b.top, "pods") || !strings.Contains(fmt.Sprint(e.Data[memcg.FieldDetail]), "memory.reclaim") {
			t.Errorf("action entry: %s %v, want memory.reclaim at %s", e.Message, e.Data, filepath.Join(b.top, "pods"))
		}
		if e.Level == logrus.ErrorLevel {
			t.Errorf("action failed: %s (%v)", e.Message, e.Data[audit.Error])
		}
		time.Sleep(settle)
		after := dying(t, filepath.Join(b.top, "pods"))
		t.Logf("act: %s; pod root dying %d -> %d", e.Message, before, after)
		if after*2 > before {
			t.Errorf("reclaim at the pod root: dying %d -> %d, want at least halved", before, after)
		}
		// More zombies, and samples inside the cooldown: no second reclaim.
		b.zombies(t, "again", zombies, nil)
		for range 4 {
			d := tick()
			if d.Action != memcg.ActionNone {
				t.Fatalf("inside the cooldown: action %s", d.Action)
			}
			if d.Level == memcg.LevelAct && (len(d.Skipped) == 0 || (d.Skipped[0].Reason != memcg.ReasonCooldown && d.Skipped[0].Reason != memcg.ReasonBackoff)) {
				t.Errorf("inside the cooldown: skipped %v, want cooldown", d.Skipped)
			}
		}
		if n := len(actions()); n != 1 {
			t.Errorf("%d action entries inside the cooldown, want 1", n)
		}
		// Once the time the entry names has passed, it may act again (a
		// cooldown, doubled when the first reclaim did not move the count
		// yet when measured).
		next, err := time.Parse(time.RFC3339, fmt.Sprint(e.Data[memcg.FieldNextAllowed]))
		if err != nil {
			t.Fatalf("action entry: next allowed: %v", err)
		}
		if next.Before(clock.Now()) {
			t.Errorf("next reclaim allowed at %s, before the cooldown of %s has passed", next, cfg.ReclaimCooldown.Duration)
		}
		clock.add(next.Sub(clock.Now()) + time.Second)
		if d := tick(); d.Action != memcg.ActionReclaimPodRoot {
			t.Errorf("after the cooldown: action %s reason %s skipped %v, want %s", d.Action, d.Reason, d.Skipped, memcg.ActionReclaimPodRoot)
		}
		if n := len(actions()); n != 2 {
			t.Errorf("%d action entries after the cooldown, want 2", n)
		}
	})
}
