package relief

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// cadvisorProc is the cAdvisor child: this test binary started again with
// cadvisorRootsEnv set, so its CPU and RSS are its own.
type cadvisorProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startCadvisor starts the child over view (the test's cgroup root, seen
// as the top of every hierarchy) tracking roots (cgroup paths in that view).
func startCadvisor(t *testing.T, view string, roots []string, containerdSock string) *cadvisorProc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cadvisorRootsEnv+"="+strings.Join(roots, ","),
		cadvisorContainerdEnv+"="+containerdSock, cadvisorViewEnv+"="+view)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	logf, err := os.Create(filepath.Join(t.TempDir(), "cadvisor.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &cadvisorProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() { c.stop(); logf.Close() })
	return c
}

func (c *cadvisorProc) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill() // our own child, by its PID
		<-done
	}
}

func (c *cadvisorProc) ask(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatalf("cadvisor child: %v", err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		t.Fatalf("cadvisor child answered %q to %q: %v", line, cmd, err)
	}
	return strings.TrimSpace(line)
}

func (c *cadvisorProc) count(t *testing.T) (tracked, watches int) {
	t.Helper()
	if _, err := fmt.Sscanf(c.ask(t, "count"), "tracked=%d watches=%d", &tracked, &watches); err != nil {
		t.Fatalf("cadvisor count: %v", err)
	}
	return tracked, watches
}

// cpu is the child's CPU time so far: the sum of its threads' time on a
// CPU (/proc/<pid>/task/*/schedstat, in ns: /proc/<pid>/stat counts in
// 10 ms ticks, too coarse for a quiet cAdvisor). Go keeps its threads, so
// none of the time is lost with an exited thread.
func (c *cadvisorProc) cpu(t *testing.T) time.Duration {
	t.Helper()
	cpu, err := procCPU(c.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}

func procCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread is gone
		}
		f := strings.Fields(string(b))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s schedstat %q: %w", task.Name(), b, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// procRSS is VmRSS of pid in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// Window is one measured window of the cAdvisor child.
type Window struct {
	Run    int    `json:"run"`
	Phase  string `json:"phase"`
	Query  bool   `json:"query"`
	Leaked int    `json:"leaked"`
	// CPUPerMin is CPU-seconds per minute over the window.
	CPUPerMin float64 `json:"cpu_per_min"`
	RSS       int64   `json:"rss"`
	Tracked   int     `json:"tracked"`
	Watches   int     `json:"watches"`
}

// Point is one 10-second CPU sample, at seconds from the clean's end.
type Point struct {
	Run       int     `json:"run"`
	T         float64 `json:"t"`
	CPUPerMin float64 `json:"cpu_per_min"`
	at        time.Time
}

// cadvisorRun is one run's record.
type cadvisorRun struct {
	Windows []Window `json:"windows"`
	Points  []Point  `json:"points"`
	CleanS  float64  `json:"clean_s"`
	// cleanEnd is when the clean ended; points are relative to it.
	cleanEnd time.Time
	run      int
	c        *cadvisorProc
}

const sampleEvery = 10 * time.Second

// measure runs one window: query on or off, CPU sampled every 10 s.
func (r *cadvisorRun) measure(t *testing.T, k knobs, phase string, query bool, leaked int) Window {
	t.Helper()
	r.c.ask(t, map[bool]string{true: "query on", false: "query off"}[query])
	start := time.Now()
	cpu0 := r.c.cpu(t)
	last, lastCPU := start, cpu0
	for time.Since(start) < k.window {
		time.Sleep(min(sampleEvery, k.window-time.Since(start)))
		now, cpu := time.Now(), r.c.cpu(t)
		r.point(now, cpu-lastCPU, now.Sub(last))
		last, lastCPU = now, cpu
	}
	rss, err := procRSS(r.c.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tracked, watches := r.c.count(t)
	w := Window{Run: r.run, Phase: phase, Query: query, Leaked: leaked,
		CPUPerMin: perMin(lastCPU-cpu0, last.Sub(start)), RSS: rss, Tracked: tracked, Watches: watches}
	t.Logf("run %d %-22s query=%-5v leaked=%-5d cpu %.2f s/min rss %.0f MiB tracked %d watches %d",
		w.Run, phase, query, leaked, w.CPUPerMin, float64(rss)/(1<<20), tracked, watches)
	r.Windows = append(r.Windows, w)
	return w
}

func (r *cadvisorRun) point(now time.Time, cpu, over time.Duration) {
	r.Points = append(r.Points, Point{Run: r.run, CPUPerMin: perMin(cpu, over), at: now})
}

// fixPoints sets every point's time relative to the clean's end.
func (r *cadvisorRun) fixPoints() {
	for i := range r.Points {
		r.Points[i].T = r.Points[i].at.Sub(r.cleanEnd).Seconds()
	}
}

func perMin(cpu, over time.Duration) float64 {
	if over <= 0 {
		return 0
	}
	return cpu.Seconds() * float64(time.Minute) / float64(over)
}

// binConfig is the configuration of bin/cgroupcleand over the tree: the
// test's containerd, kubelet root and pod root, cgroupfs; min_age 0 (the
// leaks are seconds old) and, for one clean, every limit and mass guard
// opened so one pass removes every leak. Every other gate, and the final
// re-checks before each removal, stay as shipped.
func binConfig(t *testing.T, podRoot, kubeletRoot, endpoint string, openLimits bool) config.Config {
	cfg := config.Default()
	cfg.Runtime.Endpoint = endpoint
	cfg.Cgroup.PodRoot = podRoot
	cfg.Cgroup.KubeletRoot = kubeletRoot
	cfg.Cgroup.Driver = "cgroupfs"
	cfg.Clean.UseSystemd = "never"
	cfg.Clean.MinAge = config.Duration{}
	if openLimits {
		cfg.Clean.ConfirmPasses = 1
		cfg.Clean.MaxRemovalShare = 1
		cfg.Clean.MaxRemovalsPerPass = 1 << 30
		cfg.Clean.MassGuardMinPods = 1 << 30
	}
	cfg.Log.Format, cfg.Log.Level = "json", "info"
	cfg.Daemon.StateDir = filepath.Join(t.TempDir(), "state")
	return cfg
}

func writeConfig(t *testing.T, cfg config.Config) string {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("relief config: %v", err)
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

// runClean runs `cgroupcleand clean` once and returns its wall time.
func runClean(ctx context.Context, t *testing.T, binary, cfgFile string) time.Duration {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "clean", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		tail := out.Bytes()
		if len(tail) > 4096 {
			tail = tail[len(tail)-4096:]
		}
		t.Fatalf("cgroupcleand clean: %v\n%s", err, tail)
	}
	return took
}

// TestCadvisorRelief: cAdvisor's manager as kubelet runs it, over live
// pods (real containerd sandboxes) and then whole-pod leaks added in steps;
// one `cgroupcleand clean`; the same windows after. Each run starts a
// fresh cAdvisor; the live pods stay across runs and must be intact.
func TestCadvisorRelief(t *testing.T) {
	testbed.RequireRoot(t)
	k := getKnobs(t)
	ctx := context.Background()
	start := time.Now()
	r, kubelet, cd, live, liveDirs := newNode(t, "relief", k.podRoot, k.live)
	t.Logf("%d live pods (real sandboxes) in %s: %d cgroup dirs", len(live), time.Since(start).Round(time.Second), len(liveDirs))
	cfgFile := writeConfig(t, binConfig(t, r.Rel(k.podRoot), kubelet, cd.Endpoint(), true))
	// In the child's view the test root is the top: the pod root is
	// /kubepods, as on a node with the cgroupfs driver.
	roots := []string{"/" + k.podRoot}

	var runs []*cadvisorRun
	for run := 1; run <= k.runs; run++ {
		cr := &cadvisorRun{run: run, c: startCadvisor(t, r.Name, roots, cd.Socket)}
		time.Sleep(20 * time.Second) // the first discovery and housekeeping
		cr.measure(t, k, "live", false, 0)
		cr.measure(t, k, "live", true, 0)
		leaked := 0
		for i, n := range k.leaks {
			leakedPods(ctx, t, r, k.podRoot, n-leaked)
			leaked = n
			time.Sleep(sampleEvery) // cAdvisor sees them by inotify
			cr.measure(t, k, "leaked", false, leaked)
			if i == len(k.leaks)-1 {
				cr.measure(t, k, "leaked", true, leaked)
			}
		}
		cr.CleanS = runClean(ctx, t, k.binary, cfgFile).Seconds()
		cr.cleanEnd = time.Now()
		if gone := missing(liveDirs); len(gone) > 0 {
			t.Fatalf("run %d: the clean removed %d live pod dirs, first %s", run, len(gone), gone[0])
		}
		if left := leftover(r, k.podRoot, liveDirs); left != 0 {
			t.Fatalf("run %d: %d leaked dirs left after the clean", run, left)
		}
		t.Logf("run %d: clean of %d leaked pods took %.2f s", run, leaked, cr.CleanS)
		cr.measure(t, k, "after-clean", false, 0)
		cr.measure(t, k, "after-clean", true, 0)
		cr.c.stop()
		cr.fixPoints()
		runs = append(runs, cr)
	}
	writeJSON(t, filepath.Join(k.out, "relief-cadvisor.json"), runs)
	if err := plotCPU(runs, filepath.Join(k.out, "relief-cadvisor.png")); err != nil {
		t.Fatalf("plot: %v", err)
	}
	rep := summarize(runs, k)
	writeFile(t, filepath.Join(k.out, "relief-cadvisor.md"), rep)
	t.Log("\n" + rep)
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
