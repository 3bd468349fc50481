package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/cgroupclean/cgroupclean/bench/pass"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The whole-process rows run the built binary (bin/cgroupcleand, as
// `make build` makes it) against a real containerd, as an operator runs it.

// writeConfig writes cfg as the TOML file the binary reads, with a state
// dir of the run's own (its lock and memcg limits never meet the node's).
func writeConfig(t *testing.T, cfg config.Config) string {
	t.Helper()
	cfg.Daemon.StateDir = filepath.Join(t.TempDir(), "state")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("bench config: %v", err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// processConfig is the binary's configuration over tr: the real
// containerd at endpoint (which lists none of the tree's pods), min_age 0,
// every limit and mass guard opened (one pass removes every pod), the
// audit trail as JSON on stderr (a file). Every other gate, and every
// final re-check before a removal, stays as shipped.
func processConfig(tr *tree, kubelet, endpoint string) config.Config {
	cfg := benchConfig(tr, kubelet, true, true)
	cfg.Runtime.Endpoint = endpoint
	// A config file holds the limits' ceilings (config.LimitOf): the mass
	// guards stay on, and the live sandbox of startBenchContainerd keeps
	// the runtime-empty one from refusing the pass.
	cfg.Clean.MaxRemovalsPerPass, cfg.Clean.MassGuardMinPods = maxOf("clean.max_removals_per_pass"), maxOf("clean.mass_guard_min_pods")
	cfg.Log.Format, cfg.Log.Level = "json", "info"
	return cfg
}

// startBenchContainerd starts the real containerd of the whole-process
// rows with one live sandbox of its own, outside every tree: it lists none
// of the trees' pods, so every pod is an orphan to it, and it lists some
// sandbox, as a node's runtime does, so the mass guard lets the pass go.
func startBenchContainerd(t *testing.T) *testbed.Containerd {
	ctrd := testbed.StartContainerd(t)
	live := testbed.NewCgroupRoot(t, "bench-live")
	uid := testbed.RandomUID()
	ctrd.RunPod(t, live.Rel("kubepods/pod"+uid), uid, "bench-live")
	return ctrd
}

// maxOf is the ceiling of an integer key.
func maxOf(key string) int {
	l, ok := config.LimitOf(key)
	if !ok {
		panic("no limit for " + key)
	}
	return int(l.Max)
}

// cli is the argv of one cgroupcleand command, with --heap-profile
// <BENCH_HEAP_PROFILE>.<command>.<n>.heap when that is set (a new file
// each time: the flag refuses one that exists).
func (k knobs) cli(args ...string) []string {
	argv := append([]string{k.binary}, args...)
	if k.heapProfile != "" {
		argv = append(argv, "--heap-profile", fmt.Sprintf("%s.%s.%d.heap", k.heapProfile, args[0], heapProfiles.Add(1)))
	}
	return argv
}

var heapProfiles atomic.Int64

// execChild runs args in a benchpass "exec" child (for the child's own
// wait4 rusage) and returns its report; a non-zero exit fails the test.
func execChild(ctx context.Context, t *testing.T, k knobs, args []string, stdout string) pass.Report {
	t.Helper()
	stderr := filepath.Join(t.TempDir(), "stderr")
	rep := runChild(ctx, t, k, pass.Spec{Mode: "exec", Args: args, Stdout: stdout, Stderr: stderr})
	if rep.ExitCode != 0 {
		tail, _ := os.ReadFile(stderr)
		if len(tail) > 4096 {
			tail = tail[len(tail)-4096:]
		}
		t.Fatalf("%s exited %d:\n%s", strings.Join(args, " "), rep.ExitCode, tail)
	}
	return rep
}

// childRSS is the child's own peak RSS, or 0 when it cannot be told from
// the starter's high-water mark (see pass.Report.FloorRSS).
func childRSS(t *testing.T, rep pass.Report) float64 {
	if rep.ChildMaxRSS <= rep.FloorRSS {
		t.Logf("child maxrss %d B not above its starter's VmHWM %d B: not reported", rep.ChildMaxRSS, rep.FloorRSS)
		return 0
	}
	return float64(rep.ChildMaxRSS)
}

// processScan runs `cgroupcleand scan --json` over tr and checks that its
// document lists every pod.
func processScan(ctx context.Context, t *testing.T, k knobs, cfgFile string, pods int) (sec, rss float64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "scan.json")
	rep := execChild(ctx, t, k, k.cli("scan", "--json", "--config", cfgFile), out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Scan struct {
			Plan struct {
				RuntimeError string `json:"runtime_error"`
				Summary      struct {
					Pods, Remove int
				} `json:"summary"`
			} `json:"plan"`
		} `json:"scan"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("scan --json output: %v", err)
	}
	if p := doc.Scan.Plan; p.Summary.Pods != pods || p.RuntimeError != "" {
		t.Fatalf("scan --json saw %d pods (runtime error %q), want %d", p.Summary.Pods, p.RuntimeError, pods)
	}
	return time.Duration(rep.WallNS).Seconds(), childRSS(t, rep)
}

// processClean runs `cgroupcleand clean` over tr and checks that every pod
// went and the QoS dirs stayed. It returns the directories removed.
func processClean(ctx context.Context, t *testing.T, k knobs, tr *tree, cfgFile string) (sec, rss float64, dirs int) {
	t.Helper()
	before := tr.dirs()
	rep := execChild(ctx, t, k, testbed.PrivateLockArgv(k.cli("clean", "--config", cfgFile)...), "")
	qos := 2 * len(tr.root.Hierarchies)
	if left, err := tr.remaining(); err != nil || left != qos {
		t.Fatalf("after cgroupcleand clean %d dirs are left under the pod roots (%v), want the %d QoS dirs", left, err, qos)
	}
	return time.Duration(rep.WallNS).Seconds(), childRSS(t, rep), before
}

// daemonSteady runs `cgroupcleand run` (interval 1s, no jitter) until it
// has done passes+1 passes, and measures its CPU over the last passes
// (the first warms its caches) and its VmHWM after them. Pass ends are
// read from the sd_notify STATUS lines it sends to a socket of ours.
func daemonSteady(ctx context.Context, t *testing.T, k knobs, cfg config.Config, passes int) (cpu, user, sys, rss float64) {
	t.Helper()
	cfg.Daemon.Interval = config.Duration{Duration: time.Second}
	cfg.Daemon.Jitter = 0
	// The memcg watchdog is a loop of its own (a probe a minute, not one
	// per pass); on v1 each probe walks the machine's whole memory
	// hierarchy, whatever the pod count, and over a few 1 s passes one
	// probe would read as most of their CPU. BenchmarkProbe and the memcg
	// row measure it.
	cfg.Memcg.Mode = "off"
	cfgFile := writeConfig(t, cfg)
	dir, err := os.MkdirTemp("", "cgclean-notify-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := listenUnixgram(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(conn)
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	argv := testbed.PrivateLockArgv(k.cli("run", "--config", cfgFile)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	var cpu0, user0, sys0 time.Duration
	buf := make([]byte, 4096)
	deadline := time.Now().Add(time.Duration(passes+1)*10*time.Second + time.Minute)
	for n := 0; n < passes+1; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("daemon: %d of %d passes seen in time\n%s", n, passes+1, log)
		}
		_ = unix.SetsockoptTimeval(conn, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
		m, _, err := unix.Recvfrom(conn, buf, 0)
		if err != nil {
			continue // timeout: check the deadline
		}
		msg := string(buf[:m])
		if !strings.Contains(msg, "STATUS=pass ") {
			continue
		}
		if strings.Contains(msg, "FAILED") {
			t.Fatalf("daemon pass failed: %s", msg)
		}
		n++
		if n == 1 {
			if cpu0, user0, sys0, err = threadCPU(pid); err != nil {
				t.Fatal(err)
			}
		}
	}
	cpu1, user1, sys1, err := threadCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := procHWM(pid)
	if err != nil {
		t.Fatal(err)
	}
	n := time.Duration(passes)
	return ((cpu1 - cpu0) / n).Seconds(), ((user1 - user0) / n).Seconds(), ((sys1 - sys0) / n).Seconds(), float64(hwm)
}

// listenUnixgram binds a datagram socket at path (sd_notify's kind).
func listenUnixgram(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", path, err)
	}
	return fd, nil
}

// threadCPU is a running process's CPU time: on-CPU nanoseconds summed over
// its threads (/proc/<pid>/task/*/schedstat, exact), and the user and sys
// split from /proc/<pid>/stat (clock ticks).
func threadCPU(pid int) (total, user, sys time.Duration, err error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, tk := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, tk.Name()))
		if err != nil {
			continue // thread gone
		}
		f := strings.Fields(string(data))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parse schedstat of %d/%s: %q", pid, tk.Name(), data)
		}
		total += time.Duration(ns)
	}
	user, sys, err = procUserSys(pid)
	return total, user, sys, err
}

// procUserSys is user and sys time from /proc/<pid>/stat (USER_HZ 100).
func procUserSys(pid int) (user, sys time.Duration, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data)[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, data)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, data)
	}
	return time.Duration(ut) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond, nil
}

// procHWM is a running process's VmHWM in bytes (its own mm's high-water
// mark, whoever started it).
func procHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// tbInGoroutine lets testbed helpers that call Fatalf run in a worker
// goroutine: Fatalf records the failure and ends that goroutine only.
type tbInGoroutine struct {
	testing.TB
	mu   *sync.Mutex
	errs *[]string
}

func (g tbInGoroutine) Fatalf(format string, args ...any) {
	g.mu.Lock()
	*g.errs = append(*g.errs, fmt.Sprintf(format, args...))
	g.mu.Unlock()
	runtime.Goexit()
}

// runSandboxes starts n real sandboxes (with `workers` at once), each in
// a pod cgroup of its own under r, and returns their pod UIDs and how long
// it took.
func runSandboxes(ctx context.Context, t *testing.T, r *testbed.CgroupRoot, ctrd *testbed.Containerd, n, workers int) ([]string, time.Duration) {
	t.Helper()
	uids := make([]string, n)
	for i := range uids {
		uids[i] = testbed.RandomUID()
		rel := []string{"kubepods/pod", "kubepods/burstable/pod", "kubepods/besteffort/pod"}[i%3] + uids[i]
		if err := r.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
		next = make(chan int)
	)
	start := time.Now()
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := tbInGoroutine{TB: t, mu: &mu, errs: &errs}
			for i := range next {
				rel := []string{"kubepods/pod", "kubepods/burstable/pod", "kubepods/besteffort/pod"}[i%3] + uids[i]
				ctrd.RunPod(tb, r.Rel(rel), uids[i], "steady-"+uids[i][:8])
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			break
		}
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 || ctx.Err() != nil {
		t.Fatalf("starting %d sandboxes: %v %v", n, ctx.Err(), errs)
	}
	return uids, time.Since(start)
}

// steadyBench measures the daemon in steady state on a node whose pods are
// all live: real sandboxes of a real containerd, each in its pod cgroup
// under the bench's root, kubelet's pod dirs present. Sandboxes are added
// size by size (BENCH_STEADY_SANDBOXES); at each size, BENCH_RUNS daemons
// run BENCH_DAEMON_PASSES+1 passes each.
func steadyBench(ctx context.Context, t *testing.T, k knobs) []SteadyResult {
	r := testbed.NewCgroupRoot(t, "bench-steady")
	ctrd := testbed.StartContainerd(t)
	// Runs before the testbed's own cleanup, which stops the sandboxes one
	// by one within one 30 s deadline: too short for 1,000 of them.
	t.Cleanup(func() { stopSandboxes(t, ctrd, k.sandboxWorkers) })
	var uids []string
	var out []SteadyResult
	for _, n := range k.steadySizes {
		more, took := runSandboxes(ctx, t, r, ctrd, n-len(uids), k.sandboxWorkers)
		uids = append(uids, more...)
		sr := SteadyResult{Sandboxes: n, Passes: k.daemonPasses, Added: len(more), AddTook: took.Seconds(), AddWorkers: k.sandboxWorkers}
		t.Logf("%d sandboxes started in %s (%d at once); %d live", len(more), took, k.sandboxWorkers, len(uids))
		cfg := config.Default()
		cfg.Runtime.Endpoint = ctrd.Endpoint()
		cfg.Cgroup.PodRoot = r.Rel("kubepods")
		cfg.Cgroup.KubeletRoot = kubeletDir(t, uids)
		cfg.Cgroup.Driver = "cgroupfs"
		cfg.Clean.UseSystemd = "never"
		cfg.Log.Format = "json"
		for run := 0; run < k.runs; run++ {
			cpu, user, sys, rss := daemonSteady(ctx, t, k, cfg, k.daemonPasses)
			sr.CPU, sr.User, sr.Sys, sr.RSS = append(sr.CPU, cpu), append(sr.User, user), append(sr.Sys, sys), append(sr.RSS, rss)
			t.Logf("steady daemon, %d sandboxes, run %d: %s CPU per pass (user %s, sys %s), VmHWM %s", n, run+1, Ms(cpu), Ms(user), Ms(sys), MiB(rss))
		}
		out = append(out, sr)
	}
	return out
}

// stopSandboxes stops and removes every sandbox of ctrd, `workers` at once,
// each call with its own deadline.
func stopSandboxes(t *testing.T, ctrd *testbed.Containerd, workers int) {
	rt := ctrd.Runtime()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	res, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		t.Errorf("list sandboxes to stop: %v", err)
		return
	}
	ids := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err == nil {
					_, _ = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
				}
				cancel()
			}
		}()
	}
	start := time.Now()
	for _, sb := range res.GetItems() {
		ids <- sb.GetId()
	}
	close(ids)
	wg.Wait()
	t.Logf("stopped %d sandboxes in %s", len(res.GetItems()), time.Since(start))
}

// cleanSyscalls runs `cgroupcleand clean` once under strace over a fresh
// tree of n pods and counts the cgroup files it opens: on cgroup v2 a pod
// whose cgroup.events says "populated 0" needs no cgroup.procs read, so
// the count of cgroup.procs opens shows whether that shortcut was taken.
// Not timed (strace slows every call).
func cleanSyscalls(ctx context.Context, t *testing.T, k knobs, n int) *SyscallResult {
	t.Helper()
	tr := buildTree(ctx, t, n, k.workers)
	cfg := writeConfig(t, processConfig(tr, kubeletDir(t, nil), k.endpoint))
	trace := filepath.Join(t.TempDir(), "strace.out")
	// strace inside the lock's namespace: it traces cgroupcleand alone.
	args := testbed.PrivateLockArgv(k.strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=openat,openat2,open", "-o", trace, k.binary, "clean", "--config", cfg)
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	qos := 2 * len(tr.root.Hierarchies)
	if left, err := tr.remaining(); err != nil || left != qos {
		t.Fatalf("after cgroupcleand clean under strace %d dirs are left (%v), want the %d QoS dirs", left, err, qos)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	res := &SyscallResult{Pods: n, Dirs: tr.dirs()}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "open") {
			continue
		}
		res.Opens++
		switch {
		case strings.Contains(line, "cgroup.procs") || strings.Contains(line, "cgroup.threads"):
			res.ProcsOpens++
		case strings.Contains(line, "cgroup.events"):
			res.EventsOpens++
		}
	}
	t.Logf("clean of %d pods (%d dirs) under strace: %d opens, %d of cgroup.procs/threads, %d of cgroup.events", n, res.Dirs, res.Opens, res.ProcsOpens, res.EventsOpens)
	res.CRIWrites = criWrites(ctx, t, k, n)
	return res
}

var unixInode = regexp.MustCompile(`UNIX-STREAM:\[(\d+)`)

// criWrites runs one more clean over a fresh tree of n pods under strace
// and counts its writes to the runtime's socket: one or two per CRI call
// (gRPC writes a call's HTTP/2 frames in one write or two).
func criWrites(ctx context.Context, t *testing.T, k knobs, n int) int {
	t.Helper()
	tr := buildTree(ctx, t, n, k.workers)
	cfg := writeConfig(t, processConfig(tr, kubeletDir(t, nil), k.endpoint))
	trace := filepath.Join(t.TempDir(), "strace.out")
	args := testbed.PrivateLockArgv(k.strace, "-f", "-qq", "--seccomp-bpf", "-yy", "-e", "trace=connect,write,writev,sendmsg", "-e", "signal=none", "-s", "0", "-o", trace, k.binary, "clean", "--config", cfg)
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	// connect names the socket's path and its inode; the writes name only
	// the inode ("7<UNIX-STREAM:[123->456]>").
	sock := strings.TrimPrefix(k.endpoint, "unix://")
	conns := map[string]bool{}
	lines := strings.Split(string(data), "\n")
	for _, line := range lines {
		if i := strings.Index(line, "connect("); i >= 0 && strings.Contains(line, sock) {
			if m := unixInode.FindStringSubmatch(line[i:]); m != nil {
				conns[m[1]] = true
			}
		}
	}
	writes := 0
	for _, line := range lines {
		if m := unixInode.FindStringSubmatch(line); m != nil && conns[m[1]] && !strings.Contains(line, "connect(") {
			writes++
		}
	}
	t.Logf("clean of %d pods under strace: %d writes on %d connections to %s", n, writes, len(conns), sock)
	return writes
}
