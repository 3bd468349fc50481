package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestAB compares binaries on the whole-process rows, interleaved in one
// session on the same trees: BENCH_AB=binA,binB[,...], BENCH_SIZES (first
// size only), BENCH_RUNS, BENCH_AB_ROWS (scan,clean,daemon; default all).
// Clean rows alternate the binaries with find -delete, each on a fresh
// tree. It logs figures only; results.md is `make bench`'s.
func TestAB(t *testing.T) {
	bins := os.Getenv("BENCH_AB")
	if bins == "" {
		t.Skip("BENCH_AB=binA,binB not set")
	}
	testbed.RequireRoot(t)
	k, err := knobsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	rows := os.Getenv("BENCH_AB_ROWS")
	if rows == "" {
		rows = "scan,clean,daemon"
	}
	ctx := context.Background()
	k.benchpass = buildBenchpass(ctx, t)
	ctrd := startBenchContainerd(t)
	k.endpoint = ctrd.Endpoint()
	var binaries []string
	for _, b := range strings.Split(bins, ",") {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		binaries = append(binaries, abs)
	}
	n := k.sizes[0]
	kubelet := kubeletDir(t, nil)
	if strings.Contains(rows, "scan") || strings.Contains(rows, "daemon") {
		a := buildTree(ctx, t, n, k.workers)
		procCfg := writeConfig(t, processConfig(a, kubelet, k.endpoint))
		for run := 0; run < k.runs; run++ {
			if strings.Contains(rows, "scan") {
				find := runFind(ctx, t, a.podRoots(), "-type", "d")
				for _, b := range binaries {
					k.binary = b
					sec, rss := processScan(ctx, t, k, procCfg, n)
					t.Logf("scan --json %s: %.3f s (%.2fx find %.3f s), peak RSS %.1f MiB", filepath.Base(b), sec, sec/find, find, rss/(1<<20))
				}
			}
			if strings.Contains(rows, "daemon") {
				dcfg := config.Default()
				dcfg.Runtime.Endpoint = k.endpoint
				dcfg.Cgroup.PodRoot, dcfg.Cgroup.KubeletRoot, dcfg.Cgroup.Driver = a.root.Rel("kubepods"), kubelet, "cgroupfs"
				dcfg.Clean.UseSystemd = "never"
				dcfg.Log.Format = "json"
				for _, b := range binaries {
					k.binary = b
					cpu, _, _, rss := daemonSteady(ctx, t, k, dcfg, k.daemonPasses)
					t.Logf("daemon %s: %.1f ms CPU per pass, VmHWM %.1f MiB", filepath.Base(b), cpu*1000, rss/(1<<20))
				}
			}
		}
	}
	if strings.Contains(rows, "clean") {
		for run := 0; run < k.runs; run++ {
			tr := buildTree(ctx, t, n, k.workers)
			fd := runFind(ctx, t, tr.podRoots(), "-depth", "-mindepth", "1", "-type", "d", "-delete")
			findRate := float64(tr.dirs()+2*len(tr.root.Hierarchies)) / fd
			for _, b := range binaries {
				k.binary = b
				tr := buildTree(ctx, t, n, k.workers)
				cfg := writeConfig(t, processConfig(tr, kubelet, k.endpoint))
				sec, rss, dirs := processClean(ctx, t, k, tr, cfg)
				t.Logf("clean %s: %d dirs in %.3f s, rate %.2fx find (%.3f s), peak RSS %.1f MiB", filepath.Base(b), dirs, sec, float64(dirs)/sec/findRate, fd, rss/(1<<20))
			}
		}
	}
}
