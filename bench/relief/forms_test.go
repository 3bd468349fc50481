package relief

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// TestCadvisorLeakForms measures the leak forms besides whole pods, over
// the same live pods, one run each (RELIEF_RUNS is not used):
//   - leaked container dirs inside live pods: kubelet leaves these (it
//     removes whole pod cgroups only); one clean removes them;
//   - leaked dirs outside the pod root: cAdvisor does not track them but
//     watches and rescans them; nothing of ours removes them (the test
//     does), the rows give their cost;
//   - whole-pod leaks under the daemon with its shipped limits (50
//     removals a pass, share and mass guards, confirm_passes 2), at a
//     15 s interval with min_age 0 (the leaks are seconds old): how many
//     passes until cAdvisor is back, and so how long at the shipped
//     5-minute interval after the shipped 10-minute min_age.
func TestCadvisorLeakForms(t *testing.T) {
	testbed.RequireRoot(t)
	k := getKnobs(t)
	ctx := context.Background()
	r, kubelet, cd, live, liveDirs := newNode(t, "relief-forms", k.podRoot, k.live)
	qosDirs := 2 * len(r.Hierarchies)
	cleanCfg := writeConfig(t, binConfig(t, r.Rel(k.podRoot), kubelet, cd.Endpoint(), true))
	cr := &cadvisorRun{run: 1, c: startCadvisor(t, r.Name, []string{"/" + k.podRoot}, cd.Socket)}
	time.Sleep(20 * time.Second)
	var notes []string
	note := func(format string, a ...any) {
		notes = append(notes, fmt.Sprintf(format, a...))
		t.Logf(format, a...)
	}
	checkLive := func(what string) {
		if gone := missing(liveDirs); len(gone) > 0 {
			t.Fatalf("%s removed %d live pod dirs, first %s", what, len(gone), gone[0])
		}
	}
	cr.measure(t, k, "live", false, 0)

	// Container dirs inside live pods.
	per := max(1, k.inPods/len(live))
	inPods := make([]pod, len(live))
	for i, p := range live {
		inPods[i] = pod{UID: p.UID, Rel: p.Rel}
		for range per {
			inPods[i].Ctrs = append(inPods[i].Ctrs, hexID())
		}
	}
	mkdirPods(ctx, t, r, inPods, false)
	time.Sleep(sampleEvery)
	cr.measure(t, k, "container dirs in live pods", false, per*len(live))
	took := runClean(ctx, t, k.binary, cleanCfg)
	checkLive("the clean of container dirs")
	if left := leftover(r, k.podRoot, liveDirs); left != 0 {
		t.Fatalf("%d leaked container dirs left after the clean", left)
	}
	note("clean of %d leaked container dirs in %d live pods: %.2f s", per*len(live), len(live), took.Seconds())
	cr.measure(t, k, "after clean (container dirs), minute 1", false, 0)
	cr.measure(t, k, "after clean (container dirs), minute 2", false, 0)

	// Dirs outside the pod root: made and removed by the test.
	const outside = "leaked-outside"
	for _, q := range []string{"burstable", "besteffort"} {
		if err := r.Mkdir(outside + "/" + q); err != nil {
			t.Fatal(err)
		}
	}
	outPods := leakedPods(ctx, t, r, outside, k.outside)
	time.Sleep(sampleEvery)
	cr.measure(t, k, "outside the pod root", false, len(outPods))
	if err := removeUnder(r, outside); err != nil {
		t.Fatal(err)
	}
	cr.measure(t, k, "outside removed", false, 0)

	// The daemon with its shipped limits.
	n := k.leaks[len(k.leaks)-1]
	leakedPods(ctx, t, r, k.podRoot, n)
	time.Sleep(sampleEvery)
	cr.measure(t, k, "leaked (daemon)", false, n)
	cfg := binConfig(t, r.Rel(k.podRoot), kubelet, cd.Endpoint(), false)
	cfg.Daemon.Interval = config.Duration{Duration: 15 * time.Second}
	cfg.Daemon.Jitter = 0
	passes, left := runDaemon(ctx, t, k.binary, writeConfig(t, cfg), r, k.podRoot, qosDirs+len(liveDirs), n, 4*time.Minute, 15*time.Second)
	checkLive("the daemon")
	note("daemon, shipped limits at a 15 s interval: leaked pods left every 15 s: %v (of %d)", passes, n)
	cr.measure(t, k, "daemon after 4 min", false, left)
	if left > 0 {
		runClean(ctx, t, k.binary, cleanCfg)
		checkLive("the last clean")
	}
	// When the relief arrives: the minutes after the last removal.
	for m := 1; m <= 3; m++ {
		cr.measure(t, k, fmt.Sprintf("after the last clean, minute %d", m), false, 0)
	}
	cr.c.stop()
	writeJSON(t, filepath.Join(k.out, "relief-forms.json"), cr)
	var b strings.Builder
	b.WriteString("| phase | leaked | cAdvisor CPU s/min | RSS | tracked cgroups | inotify watches |\n|---|---:|---|---|---|---|\n")
	for _, w := range cr.Windows {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.0f MiB | %d | %d |\n", w.Phase, w.Leaked, w.CPUPerMin, float64(w.RSS)/(1<<20), w.Tracked, w.Watches)
	}
	b.WriteString("\n")
	for _, n := range notes {
		b.WriteString(n + "\n\n")
	}
	writeFile(t, filepath.Join(k.out, "relief-forms.md"), b.String())
	t.Log("\n" + b.String())
}

// removeUnder removes rel (relative to r) and everything below it in every
// hierarchy, leaf-first: the test's own dirs.
func removeUnder(r *testbed.CgroupRoot, rel string) error {
	for _, h := range r.Hierarchies {
		top := h.Path(r.Rel(rel))
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil {
				return fmt.Errorf("rmdir %s: %w", dirs[i], err)
			}
		}
	}
	return nil
}

// runDaemon runs `cgroupcleand run` for at most d, and returns the leaked
// pods left (dirs under the pod root beyond keep, divided by the dirs per
// pod) every step, and the pods left at the end. It stops early when none
// is left.
func runDaemon(ctx context.Context, t *testing.T, binary, cfgFile string, r *testbed.CgroupRoot, podRoot string, keep, pods int, d, step time.Duration) ([]int, int) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, binary, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(unix.SIGTERM) // our own child, by its PID
		_ = cmd.Wait()
	}()
	perPod := 3 * len(r.Hierarchies)
	left := func() int { return (countDirs(r, podRoot) - keep + perPod - 1) / perPod }
	trace := []int{left()}
	for start := time.Now(); time.Since(start) < d && trace[len(trace)-1] > 0; {
		time.Sleep(step)
		trace = append(trace, left())
	}
	return trace, trace[len(trace)-1]
}
