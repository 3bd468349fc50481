package relief

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/bench"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// memState is one reading of what dying memcgs cost.
type memState struct {
	RootLat, PodLat time.Duration // median memory.stat read
	Memcgs          int64         // /proc/cgroups: machine-wide, others' too
	OrphanUsage     int64         // charged to the dying memcgs' parent
	Percpu, SUnrecl int64         // /proc/meminfo, bytes
	LiveCache       int64         // the live pod's page cache, bytes
}

// memMethod is one way to deal with the zombies; it returns what it did.
type memMethod struct {
	name  string
	apply func(t *testing.T, s *memSetup) string
}

// memSetup is one fresh setup: a pod root holding a live pod with page
// cache and n dying memcgs that still hold theirs.
type memSetup struct {
	root    *testbed.CgroupRoot
	mem     hierarchy.Hierarchy
	probe   *memcg.Probe
	liveDir string
}

const (
	liveCacheBytes = 64 << 20
	zombieBytes    = 64 << 10
	zombieBatch    = 800
)

func newMemSetup(t *testing.T, n int) *memSetup {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "relief-memstat")
	s := &memSetup{root: r}
	found := false
	for _, h := range r.Hierarchies {
		if h.Has("memory") {
			s.mem, found = h, true
		}
	}
	testbed.Need(t, found, "a memory controller")
	if err := r.MkdirIn(s.mem, "kubepods/orphans"); err != nil {
		t.Fatal(err)
	}
	// Made after the root: removed first. Two: the helper names its files
	// by index, and the zombies' must not overwrite the live pod's.
	data, liveData := testbed.DiskTempDir(t), testbed.DiskTempDir(t)
	// The live pod: its page cache stays charged, it is not removed.
	s.liveDir = r.ChargeMemcgs(t, s.mem, "kubepods/live", "", liveData, 1, liveCacheBytes)[0]
	var err error
	s.probe, err = memcg.NewProbe(memcg.Paths{ProcRoot: "/proc", MemoryRoot: s.mem.Mountpoint, PodRoot: r.Rel("kubepods")}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// In batches: the helper gets its memcgs in one environment string
	// (at most 128 KiB), and names its files by index (a data dir each).
	for b := 0; b*zombieBatch < n; b++ {
		if b > 0 {
			data = testbed.DiskTempDir(t)
		}
		for _, d := range r.ChargeMemcgs(t, s.mem, fmt.Sprintf("kubepods/orphans/b%d", b), "", data, min(zombieBatch, n-b*zombieBatch), zombieBytes) {
			if err := unix.Rmdir(d); err != nil {
				t.Fatalf("rmdir %s: %v", d, err)
			}
		}
	}
	// The zombies' charges stay in their parent's usage: proof they are
	// dying with their cache, and this setup's own signal (the v1 dying
	// count is machine-wide, other tests move it).
	if u := s.orphanUsage(t); u < int64(n)*zombieBytes*9/10 {
		t.Fatalf("the orphans' parent holds %d bytes after %d rmdirs of charged memcgs, want >= %d", u, n, int64(n)*zombieBytes*9/10)
	}
	return s
}

func (s *memSetup) orphanUsage(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(s.mem.Path(s.root.Rel("kubepods/orphans/memory.usage_in_bytes")))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// memcgCount is num_cgroups of the memory controller in /proc/cgroups:
// live and dying memcgs of the whole machine (v1).
func memcgCount(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "memory" {
			n, _ := strconv.ParseInt(f[2], 10, 64)
			return n
		}
	}
	return -1
}

func (s *memSetup) sample(t *testing.T) memcg.Sample {
	t.Helper()
	smp, err := s.probe.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return smp
}

// state measures: 15 timed reads of each memory.stat, their medians.
func (s *memSetup) state(t *testing.T) memState {
	t.Helper()
	var st memState
	for _, x := range []struct {
		dir string
		to  *time.Duration
	}{{s.mem.Mountpoint, &st.RootLat}, {s.mem.Path(s.root.Rel("kubepods")), &st.PodLat}} {
		var lat []time.Duration
		for range 15 {
			start := time.Now()
			if _, err := os.ReadFile(filepath.Join(x.dir, "memory.stat")); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		*x.to = lat[len(lat)/2]
	}
	st.Memcgs, st.OrphanUsage = memcgCount(t), s.orphanUsage(t)
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	st.Percpu, st.SUnrecl = meminfoBytes(mi, "Percpu"), meminfoBytes(mi, "SUnreclaim")
	stat, err := os.ReadFile(filepath.Join(s.liveDir, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	st.LiveCache = statValue(stat, "total_cache", "file")
	return st
}

func meminfoBytes(data []byte, key string) int64 {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return -1
}

// statValue is the first of keys found in a memory.stat (v1 total_cache,
// v2 file).
func statValue(stat []byte, keys ...string) int64 {
	for _, key := range keys {
		for _, line := range bytes.Split(stat, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte(key+" ")); ok {
				n, _ := strconv.ParseInt(string(v), 10, 64)
				return n
			}
		}
	}
	return -1
}

// watchdog runs the memcg watchdog's act path as the daemon does: three
// probe samples into a watchdog with cfg, and the executor applies its
// decision (drop_caches is the real file).
func watchdog(cfg config.Memcg) func(t *testing.T, s *memSetup) string {
	return func(t *testing.T, s *memSetup) string {
		cfg.Mode = "act"
		w := memcg.NewWatchdog(cfg, s.probe.Env(), memcg.SystemClock{})
		var d memcg.Decision
		for range cfg.ConfirmSamples {
			d = w.Observe(s.sample(t))
		}
		if d.Action == memcg.ActionNone {
			return d.Health.String()
		}
		o := memcg.NewExecutor(s.probe.Paths(), cfg, "/proc/sys/vm/drop_caches").Apply(context.Background(), d)
		if o.Err != nil {
			t.Fatalf("%s: %v", d.Action, o.Err)
		}
		where := "the pod root"
		if o.Target != s.mem.Path(s.root.Rel("kubepods")) {
			where = o.Target
		}
		return fmt.Sprintf("%s: %s at %s, freed %.0f MiB", o.Action, o.Detail, where, float64(o.FreedBytes)/(1<<20))
	}
}

// TestMemstatRelief compares, on identical fresh setups, what the memcg
// watchdog's act path (as shipped, and with the v1 opt-in), the public
// `echo 2 > /proc/sys/vm/drop_caches` and doing nothing give back: dying
// count, memory.stat latency, kernel memory, the live pod's page cache.
// The drop is global: it runs once per run, on a shared machine.
func TestMemstatRelief(t *testing.T) {
	testbed.RequireRoot(t)
	n, runs := envInt("RELIEF_DYING", 3000), envInt("RELIEF_MEM_RUNS", 3)
	out := envOr("RELIEF_OUT", t.TempDir())
	// The shipped thresholds are machine-wide counts (dying_act 5000):
	// here they are set so the test's own zombies cross them alone, and
	// the rest of the config is as shipped.
	shipped := config.DefaultMemcg()
	shipped.DyingWarn, shipped.DyingAct = n/4, n/2
	optIn := shipped
	optIn.V1ForceEmptyPodRoot = true
	methods := []memMethod{
		{"nothing", func(*testing.T, *memSetup) string { return "nothing" }},
		{"echo 2 > drop_caches", func(t *testing.T, _ *memSetup) string {
			if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0o200); err != nil {
				t.Fatal(err)
			}
			return "drop_caches=2"
		}},
		{"watchdog act, shipped config", watchdog(shipped)},
		{"watchdog act, v1_force_empty_pod_root", watchdog(optIn)},
	}
	type result struct {
		before, after memState
		took          time.Duration
		did           string
	}
	res := map[string][]result{}
	for run := 1; run <= runs; run++ {
		for _, m := range methods {
			t.Run(fmt.Sprintf("run%d/%s", run, m.name), func(t *testing.T) {
				s := newMemSetup(t, n)
				before := s.state(t)
				start := time.Now()
				did := m.apply(t, s)
				took := time.Since(start)
				time.Sleep(5 * time.Second) // the kernel frees memcgs asynchronously
				after := s.state(t)
				t.Logf("%s: %s in %s; memcgs %d -> %d, orphans' parent %d -> %d MiB, root memory.stat %s -> %s, pod root %s -> %s, Percpu %d -> %d MiB, SUnreclaim %d -> %d MiB, live cache %d -> %d MiB",
					m.name, did, took.Round(time.Millisecond), before.Memcgs, after.Memcgs, before.OrphanUsage>>20, after.OrphanUsage>>20, before.RootLat, after.RootLat, before.PodLat, after.PodLat,
					before.Percpu>>20, after.Percpu>>20, before.SUnrecl>>20, after.SUnrecl>>20, before.LiveCache>>20, after.LiveCache>>20)
				res[m.name] = append(res[m.name], result{before, after, took, did})
			})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d dying memcgs of %d KiB page cache each under the pod root, next to a live pod with %d MiB of page cache; %d fresh setup(s) per method, median (range).\n\n",
		n, zombieBytes>>10, liveCacheBytes>>20, runs)
	b.WriteString("| method | what it did | took | zombies' cache at their parent | memcgs in /proc/cgroups (machine) | root memory.stat | pod root memory.stat | Percpu change | SUnreclaim change | live pod cache before → after |\n|---|---|---|---|---|---|---|---|---|---|\n")
	ser := func(rs []result, f func(result) float64) bench.Stat {
		s := bench.Series{}
		for _, r := range rs {
			s = append(s, f(r))
		}
		return s.Stats()
	}
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v*1e3) }
	mibS := func(v float64) string { return fmt.Sprintf("%+.0f MiB", v/(1<<20)) }
	mibU := func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }
	for _, m := range methods {
		rs := res[m.name]
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s → %s | %s → %s | %s → %s | %s → %s | %s | %s | %s → %s |\n", m.name, rs[0].did,
			ser(rs, func(r result) float64 { return r.took.Seconds() }).Format(ms),
			ser(rs, func(r result) float64 { return float64(r.before.OrphanUsage) }).Format(mibU),
			ser(rs, func(r result) float64 { return float64(r.after.OrphanUsage) }).Format(mibU),
			ser(rs, func(r result) float64 { return float64(r.before.Memcgs) }).Format(f0),
			ser(rs, func(r result) float64 { return float64(r.after.Memcgs) }).Format(f0),
			ser(rs, func(r result) float64 { return r.before.RootLat.Seconds() }).Format(ms),
			ser(rs, func(r result) float64 { return r.after.RootLat.Seconds() }).Format(ms),
			ser(rs, func(r result) float64 { return r.before.PodLat.Seconds() }).Format(ms),
			ser(rs, func(r result) float64 { return r.after.PodLat.Seconds() }).Format(ms),
			ser(rs, func(r result) float64 { return float64(r.after.Percpu - r.before.Percpu) }).Format(mibS),
			ser(rs, func(r result) float64 { return float64(r.after.SUnrecl - r.before.SUnrecl) }).Format(mibS),
			ser(rs, func(r result) float64 { return float64(r.before.LiveCache) }).Format(mibU),
			ser(rs, func(r result) float64 { return float64(r.after.LiveCache) }).Format(mibU))
	}
	writeFile(t, filepath.Join(out, "relief-memstat.md"), b.String())
	t.Log("\n" + b.String())
}
