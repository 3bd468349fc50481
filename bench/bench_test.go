package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/bench/pass"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// knobs are the bench's settings, from the environment (bench/run.sh).
type knobs struct {
	sizes         []int
	runs          int
	scanReps      int
	workers       int
	idleSandboxes int
	idlePasses    int
	benchtime     string
	out           string
	benchpass     string // path of the built bench/cmd/benchpass
	note          string
	// binary is the cgroupcleand of the whole-process rows (BENCH_BINARY,
	// set by `make bench` to what `make build` built).
	binary         string
	endpoint       string // the real containerd of the whole-process rows
	daemonPasses   int
	steadySizes    []int
	sandboxWorkers int
	// skip names rows not measured (BENCH_SKIP): where they cannot run
	// (no Go toolchain in the node VM) or take too long there.
	skip map[string]bool
	// vm describes the emulated node the bench runs in (BENCH_VM): the
	// report then says that only ratios to find mean something.
	vm string
	// strace is an strace binary (BENCH_STRACE): one extra clean runs
	// under it to count which cgroup files it opens.
	strace string
	// heapProfile is a path prefix (BENCH_HEAP_PROFILE): every cgroupcleand
	// command writes a heap profile under it (cli).
	heapProfile string
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", name, v)
	}
	return n, nil
}

func knobsFromEnv() (knobs, error) {
	k := knobs{benchtime: os.Getenv("BENCH_GOBENCHTIME"), out: os.Getenv("BENCH_OUT"), note: os.Getenv("BENCH_NOTE"), binary: os.Getenv("BENCH_BINARY"),
		benchpass: os.Getenv("BENCH_BENCHPASS"), vm: os.Getenv("BENCH_VM"), strace: os.Getenv("BENCH_STRACE"), heapProfile: os.Getenv("BENCH_HEAP_PROFILE"), skip: map[string]bool{}}
	if k.binary == "" {
		return k, fmt.Errorf("BENCH_BINARY not set: the path of the cgroupcleand that `make build` built")
	}
	for _, f := range strings.Split(os.Getenv("BENCH_SKIP"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, ok := skippable[f]; !ok {
			return k, fmt.Errorf("BENCH_SKIP: unknown row %q (want some of gobench, daemon, idle, steady)", f)
		}
		k.skip[f] = true
	}
	steady := os.Getenv("BENCH_STEADY_SANDBOXES")
	if steady == "" {
		steady = "100,1000"
	}
	for _, f := range strings.Split(steady, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(k.steadySizes) > 0 && n < k.steadySizes[len(k.steadySizes)-1]) {
			return k, fmt.Errorf("BENCH_STEADY_SANDBOXES=%q: want growing sandbox counts, comma-separated", steady)
		}
		k.steadySizes = append(k.steadySizes, n)
	}
	sizes := os.Getenv("BENCH_SIZES")
	if sizes == "" {
		sizes = "1000,10000"
	}
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return k, fmt.Errorf("BENCH_SIZES=%q: want pod counts of at least 2, comma-separated", sizes)
		}
		k.sizes = append(k.sizes, n)
	}
	var err error
	for _, x := range []struct {
		p    *int
		name string
		def  int
	}{
		{&k.runs, "BENCH_RUNS", 5}, {&k.scanReps, "BENCH_SCAN_REPS", 3}, {&k.workers, "BENCH_WORKERS", 2},
		{&k.idleSandboxes, "BENCH_IDLE_SANDBOXES", 100}, {&k.idlePasses, "BENCH_IDLE_PASSES", 50},
		{&k.daemonPasses, "BENCH_DAEMON_PASSES", 20}, {&k.sandboxWorkers, "BENCH_SANDBOX_WORKERS", 4},
	} {
		if *x.p, err = envInt(x.name, x.def); err != nil {
			return k, err
		}
	}
	if k.benchtime == "" {
		k.benchtime = "1s"
	}
	if k.out == "" {
		k.out = "results.md"
	}
	return k, nil
}

// TestBench is `make bench`. It is a test (not a Go benchmark) because it
// builds its trees through the testbed's cgroup root, which needs a
// testing.TB; it is skipped unless CGROUPCLEAN_BENCH=1, so `go test ./...`
// passes through it at once.
func TestBench(t *testing.T) {
	if os.Getenv("CGROUPCLEAN_BENCH") != "1" {
		t.Skip("benchmarks run only from `make bench` (CGROUPCLEAN_BENCH=1)")
	}
	testbed.RequireRoot(t)
	k, err := knobsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	// Ctrl-C or SIGTERM stops the bench between steps and lets every
	// cleanup run (trees, containerd). Registered first, so it is undone
	// last: a second Ctrl-C during cleanup does not cut it short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t.Cleanup(stop)

	res := &Results{Date: time.Now(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Note: k.note, Runs: k.runs, ScanReps: k.scanReps, Workers: k.workers, VM: k.vm}
	for name := range k.skip {
		res.Skipped = append(res.Skipped, name)
	}
	sort.Strings(res.Skipped)
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		res.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	hs, err := hierarchy.Discover("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		res.Hierarchies = append(res.Hierarchies, h.Name)
	}

	res.DaemonPasses = k.daemonPasses
	if abs, err := filepath.Abs(k.binary); err == nil {
		k.binary = abs
	}
	if out, err := exec.Command(k.binary, "version").Output(); err != nil {
		t.Fatalf("%s version: %v", k.binary, err)
	} else {
		res.Binary = strings.TrimSpace(string(out))
	}
	if k.benchpass == "" {
		k.benchpass = buildBenchpass(ctx, t)
	}
	// One real containerd for the whole-process scan and clean rows.
	ctrd := startBenchContainerd(t)
	k.endpoint = ctrd.Endpoint()
	if k.skip["gobench"] {
		res.Decide.Missing, res.Probe.Missing = "skipped (BENCH_SKIP)", "skipped (BENCH_SKIP)"
	} else {
		res.Decide = goBench(ctx, t, k, "./cgroupclean/decide/", "BenchmarkDecide100k")
		res.Redecide = goBench(ctx, t, k, "./cgroupclean/decide/", "BenchmarkRedecide100k")
		res.Probe = goBench(ctx, t, k, "./cgroupclean/memcg/", "BenchmarkProbe")
	}
	if k.strace != "" {
		t.Run("syscalls", func(t *testing.T) { res.Syscalls = cleanSyscalls(ctx, t, k, min(k.sizes[0], 1000)) })
	}
	for _, n := range k.sizes {
		sr := SizeResult{Pods: n}
		for run := 0; run < k.runs; run++ {
			ok := t.Run(fmt.Sprintf("pods=%d/run=%d", n, run+1), func(t *testing.T) {
				benchRun(ctx, t, k, run, &sr)
			})
			if !ok || ctx.Err() != nil {
				t.FailNow()
			}
		}
		res.Sizes = append(res.Sizes, sr)
	}
	if !k.skip["idle"] {
		t.Run("idle", func(t *testing.T) { res.Idle = idleBench(ctx, t, k) })
	}
	if !k.skip["steady"] {
		t.Run("steady", func(t *testing.T) { res.Steady = steadyBench(ctx, t, k) })
	}
	if t.Failed() || ctx.Err() != nil {
		t.FailNow()
	}
	var buf bytes.Buffer
	if err := res.Write(&buf); err != nil {
		t.Fatal(err)
	}
	// make relief writes a section of its own into the same file: keep it.
	if old, err := os.ReadFile(k.out); err == nil {
		buf.Write(reliefSection(old))
	}
	if err := os.WriteFile(k.out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s\n%s", k.out, buf.String())
}

// benchRun is one run at one size: build tree A; scan it (engine and find,
// alternating which goes first); one pass's peak RSS in a child; remove it
// with one method; build tree B; remove it with the other. Odd runs swap
// the removal order, so neither side always gets the warmer machine.
func benchRun(ctx context.Context, t *testing.T, k knobs, run int, sr *SizeResult) {
	a := buildTree(ctx, t, sr.Pods, k.workers)
	sr.Dirs = a.dirs()
	sr.Build = append(sr.Build, a.took.Seconds())
	t.Logf("built %d pods (%d dirs) in %s", sr.Pods, a.dirs(), a.took)
	kubelet := kubeletDir(t, nil)
	snap := a.snapshot()
	scanCfg := benchConfig(a, kubelet, true, false)
	defCfg := benchConfig(a, kubelet, false, false)
	procCfg := writeConfig(t, processConfig(a, kubelet, k.endpoint))
	for rep := 0; rep < k.scanReps; rep++ {
		steps := []func(){
			func() { sr.Find = append(sr.Find, runFind(ctx, t, a.podRoots(), "-type", "d")) },
			func() { sr.Scan = append(sr.Scan, timeScan(ctx, t, scanCfg, snap, len(a.pods))) },
			func() { sr.ScanDefault = append(sr.ScanDefault, timeScan(ctx, t, defCfg, snap, len(a.pods))) },
			func() {
				sec, rss := processScan(ctx, t, k, procCfg, len(a.pods))
				sr.ProcScan, sr.ProcScanRSS = append(sr.ProcScan, sec), append(sr.ProcScanRSS, rss)
			},
		}
		if (run*k.scanReps+rep)%2 == 1 {
			steps[0], steps[2] = steps[2], steps[0]
			steps[1], steps[3] = steps[3], steps[1]
		}
		for _, s := range steps {
			s()
		}
	}
	rss, took := childScan(ctx, t, k, scanCfg, snap, len(a.pods))
	sr.RSS, sr.RSSPass = append(sr.RSS, rss), append(sr.RSSPass, took)
	t.Logf("scan: find %s, engine %s, default %s; child RSS %s; cgroupcleand scan --json %s, peak RSS %s",
		Ms(sr.Find[len(sr.Find)-1]), Ms(sr.Scan[len(sr.Scan)-1]), Ms(sr.ScanDefault[len(sr.ScanDefault)-1]), MiB(rss),
		Ms(sr.ProcScan[len(sr.ProcScan)-1]), MiB(sr.ProcScanRSS[len(sr.ProcScanRSS)-1]))
	if !k.skip["daemon"] {
		daemonOverTree(ctx, t, k, a, kubelet, sr)
	}
	removals(ctx, t, k, run, a, kubelet, sr)
}

// daemonOverTree runs the daemon over tree a with the shipped gates
// (min_age 10m: the fresh orphans are kept, nothing is removed): its
// steady state.
func daemonOverTree(ctx context.Context, t *testing.T, k knobs, a *tree, kubelet string, sr *SizeResult) {
	dcfg := config.Default()
	dcfg.Runtime.Endpoint = k.endpoint
	dcfg.Cgroup.PodRoot, dcfg.Cgroup.KubeletRoot, dcfg.Cgroup.Driver = a.root.Rel("kubepods"), kubelet, "cgroupfs"
	dcfg.Clean.UseSystemd = "never"
	dcfg.Log.Format = "json"
	cpu, _, _, drss := daemonSteady(ctx, t, k, dcfg, k.daemonPasses)
	sr.DaemonCPU, sr.DaemonRSS = append(sr.DaemonCPU, cpu), append(sr.DaemonRSS, drss)
	t.Logf("daemon over the tree: %s CPU per pass, VmHWM %s after %d passes", Ms(cpu), MiB(drss), k.daemonPasses+1)
	if left, err := a.remaining(); err != nil || left != a.dirs()+2*len(a.root.Hierarchies) {
		t.Fatalf("the daemon with the shipped gates removed something: %d dirs left (%v), want %d", left, err, a.dirs()+2*len(a.root.Hierarchies))
	}
}

// removals removes tree a and two fresh trees of its size, one each by the
// engine in-process, by find -delete and by the built binary's clean.
func removals(ctx context.Context, t *testing.T, k knobs, run int, a *tree, kubelet string, sr *SizeResult) {

	byEngine := func(tr *tree) {
		s, apply, dirs := timeClean(ctx, t, tr, kubelet)
		sr.CleanScan, sr.CleanApply, sr.CleanDirs = append(sr.CleanScan, s), append(sr.CleanApply, apply), dirs
		t.Logf("engine removed %d dirs: scan %s + apply %s", dirs, Ms(s), Ms(apply))
	}
	byFind := func(tr *tree) {
		d := runFind(ctx, t, tr.podRoots(), "-depth", "-mindepth", "1", "-type", "d", "-delete")
		if left, err := tr.remaining(); err != nil || left != 0 {
			t.Fatalf("find -delete left %d dirs (%v)", left, err)
		}
		sr.FindDel, sr.FindDelDirs = append(sr.FindDel, d), tr.dirs()+2*len(tr.root.Hierarchies)
		t.Logf("find -delete removed %d dirs in %s", sr.FindDelDirs, Ms(d))
	}
	byProcess := func(tr *tree) {
		cfg := writeConfig(t, processConfig(tr, kubelet, k.endpoint))
		sec, rss, dirs := processClean(ctx, t, k, tr, cfg)
		sr.ProcClean, sr.ProcCleanRSS, sr.ProcCleanDirs = append(sr.ProcClean, sec), append(sr.ProcCleanRSS, rss), dirs
		t.Logf("cgroupcleand clean removed %d dirs in %s, peak RSS %s", dirs, Ms(sec), MiB(rss))
	}
	// Tree a (scanned above) goes first; the order of the three removals
	// turns with the run, so none always gets the warmer machine.
	order := []func(*tree){byEngine, byFind, byProcess}
	order = append(order[run%3:], order[:run%3]...)
	order[0](a)
	for _, f := range order[1:] {
		b := buildTree(ctx, t, sr.Pods, k.workers)
		sr.Build = append(sr.Build, b.took.Seconds())
		f(b)
	}
}

// kubeletDir makes a kubelet root whose pods/ holds the given UIDs.
func kubeletDir(t *testing.T, uids []string) string {
	dir := t.TempDir()
	for _, u := range append([]string{""}, uids...) {
		if err := os.MkdirAll(filepath.Join(dir, "pods", u), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// benchConfig is the configuration of a pass over tr. clean sets min_age 0
// (every orphan is past it); removeAll also lifts the removal limits and
// the mass guards, so one pass removes every orphan.
func benchConfig(tr *tree, kubelet string, clean, removeAll bool) config.Config {
	cfg := config.Default()
	// Never dialled: the engine gets the recorded answer as its Runtime.
	cfg.Runtime.Endpoint = "unix:///run/cgroupclean-bench-recorded.sock"
	cfg.Cgroup.PodRoot = tr.root.Rel("kubepods")
	cfg.Cgroup.KubeletRoot = kubelet
	cfg.Cgroup.Driver = "cgroupfs"
	cfg.Clean.UseSystemd = "never"
	if clean {
		cfg.Clean.MinAge = config.Duration{}
	}
	if removeAll {
		cfg.Clean.ConfirmPasses = 1
		cfg.Clean.MaxRemovalShare = 1
		cfg.Clean.MaxRemovalsPerPass = 1 << 30
		cfg.Clean.MassGuardMinPods = 1 << 30
	}
	return cfg
}

// runFind runs find over roots and returns its wall time in seconds. Its
// output goes to /dev/null, as the engine prints nothing either.
func runFind(ctx context.Context, t *testing.T, roots []string, expr ...string) float64 {
	t.Helper()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "find", append(append([]string{}, roots...), expr...)...)
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("find %v: %v\n%s", expr, err, stderr.String())
	}
	return took.Seconds()
}

// timeScan runs one engine scan in this process and returns its wall time.
func timeScan(ctx context.Context, t *testing.T, cfg config.Config, snap live.Snapshot, pods int) float64 {
	t.Helper()
	e := &engine.Engine{Config: cfg, Runtime: pass.Recorded{Snap: snap}}
	start := time.Now()
	s, err := e.Scan(ctx, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	checkScan(t, s, pods)
	return took.Seconds()
}

func checkScan(t *testing.T, s *engine.Scan, pods int) {
	t.Helper()
	if s.NoPodRoot || s.Plan.RuntimeError != "" || s.Plan.Summary.Pods != pods || s.Plan.Summary.LivePods != (pods+1)/2 {
		t.Fatalf("scan saw %+v (runtime error %q), want %d pods, %d live", s.Plan.Summary, s.Plan.RuntimeError, pods, (pods+1)/2)
	}
}

// timeClean removes every pod of tr as an orphan with one clean pass and
// returns the scan and apply times and the directories removed.
func timeClean(ctx context.Context, t *testing.T, tr *tree, kubelet string) (scan, apply float64, dirs int) {
	t.Helper()
	e := &engine.Engine{Config: benchConfig(tr, kubelet, true, true), Runtime: pass.Recorded{}}
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		stop := cpuProfile(t, filepath.Join(dir, fmt.Sprintf("clean-%dpods.pprof", len(tr.pods))))
		defer stop()
	}
	start := time.Now()
	s, err := e.Scan(ctx, nil)
	mid := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	results := e.Apply(ctx, s, false)
	end := time.Now()
	removed, refused, failed := engine.Counts(results)
	if removed != len(tr.pods) || refused+failed != 0 {
		t.Fatalf("clean pass: removed %d of %d pods, refused %d, failed %d (plan kept %v)", removed, len(tr.pods), refused, failed, s.Plan.Kept)
	}
	for _, r := range results {
		dirs += r.Dirs
	}
	if left, err := tr.remaining(); err != nil || left != 2*len(tr.root.Hierarchies) {
		t.Fatalf("after the clean pass %d dirs are left under the pod roots (%v), want the %d QoS dirs", left, err, 2*len(tr.root.Hierarchies))
	}
	return mid.Sub(start).Seconds(), end.Sub(mid).Seconds(), dirs
}

// cpuProfile writes a CPU profile of what runs until the returned func
// (BENCH_PROFILE=dir: to see where a pass spends its time).
func cpuProfile(t *testing.T, file string) func() {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// goBench runs one Go benchmark of the module -count=runs times.
func goBench(ctx context.Context, t *testing.T, k knobs, pkg, name string) GoBenchResult {
	t.Helper()
	mod, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(filepath.Join(mod, pkg, "bench_test.go"))
	if pkg == "./cgroupclean/memcg/" && !bytes.Contains(src, []byte("func "+name+"(")) {
		return GoBenchResult{Missing: "memcg package (or its " + name + ") not present"}
	}
	args := []string{"test", "-run", "^$", "-bench", "^" + name + "$", "-benchmem", "-benchtime", k.benchtime, "-count", strconv.Itoa(k.runs), pkg}
	cmd := exec.CommandContext(ctx, goCmd(), args...)
	cmd.Dir = mod
	out, err := cmd.CombinedOutput()
	res := GoBenchResult{Cmd: "go " + strings.Join(args, " ")}
	if err != nil {
		t.Fatalf("%s: %v\n%s", res.Cmd, err, out)
	}
	if res.Lines, err = ParseGoBench(bytes.NewReader(out)); err != nil || len(res.Lines) == 0 {
		t.Fatalf("%s: no result (%v)\n%s", res.Cmd, err, out)
	}
	t.Logf("%s:\n%s", res.Cmd, out)
	return res
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// buildBenchpass builds bench/cmd/benchpass, the child process of the
// RSS and idle CPU figures.
func buildBenchpass(ctx context.Context, t *testing.T) string {
	t.Helper()
	mod, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "benchpass")
	// As `make build` builds cgroupcleand: what ships is what is measured.
	cmd := exec.CommandContext(ctx, goCmd(), "build", "-trimpath", "-buildmode=pie", "-o", bin, "./bench/cmd/benchpass")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build benchpass: %v\n%s", err, out)
	}
	return bin
}

func goCmd() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// runChild runs one job in a benchpass process and returns its report.
func runChild(ctx context.Context, t *testing.T, k knobs, spec pass.Spec) pass.Report {
	t.Helper()
	f := filepath.Join(t.TempDir(), "spec.json")
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, k.benchpass, f)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\n%s", spec.Mode, err, stderr.String())
	}
	var rep pass.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("child %s output %q: %v", spec.Mode, stdout.String(), err)
	}
	return rep
}

// childScan measures one scan pass's peak RSS in a fresh process.
func childScan(ctx context.Context, t *testing.T, k knobs, cfg config.Config, snap live.Snapshot, pods int) (rssBytes, passSec float64) {
	t.Helper()
	spec := pass.Spec{Mode: "scan", Config: cfg, Snapshot: &snap}
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		spec.AllocProfile = filepath.Join(dir, fmt.Sprintf("scan-%dpods.allocs.pprof", pods))
	}
	rep := runChild(ctx, t, k, spec)
	if rep.Pods != pods {
		t.Fatalf("child scan saw %d pods, want %d", rep.Pods, pods)
	}
	return float64(rep.PeakRSS), time.Duration(rep.WallNS).Seconds()
}

// reliefSection is the part of a results file that make relief wrote
// (between its markers, both included), or nothing.
func reliefSection(results []byte) []byte {
	begin := bytes.Index(results, []byte("<!-- relief:begin"))
	end := bytes.Index(results, []byte("<!-- relief:end -->"))
	if begin < 0 || end < begin {
		return nil
	}
	end += len("<!-- relief:end -->")
	return append([]byte("\n"), append(results[begin:end:end], '\n')...)
}
