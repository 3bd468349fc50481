package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
)

func cmdClean(args []string, stdout, stderr io.Writer, lockDir string) int {
	fset := newFlagSet("clean", stderr)
	cfgPath, explicit := commonFlags(fset)
	dryRun := fset.Bool("dry-run", false, "print what would be removed, remove nothing")
	asJSON := fset.Bool("json", false, "print one JSON document")
	wait, stateDir := lockFlags(fset)
	if err := fset.Parse(args); err != nil {
		return 2
	}
	stopProfile, ok := startHeapProfile(fset, stderr)
	if !ok {
		return 2
	}
	defer stopProfile()
	cfg, src, err := loadConfig(*cfgPath, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, err := newAuditLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Entries journald did not take wait in a queue for stderr.
	defer logging.Flush(log, 2*time.Second)
	// SIGINT/SIGTERM stop the pass between removals, never inside one.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*dryRun {
		// One cleaner at a time; a dry run changes nothing and needs none.
		lock, ok := takeLock(ctx, &cfg, lockDir, *stateDir, *wait, stderr, "clean")
		if !ok {
			return 1
		}
		defer lock.Release()
	}
	e, closeAll := daemon.NewEngine(ctx, cfg, log)
	defer closeAll()
	s, err := e.Scan(ctx, nil)
	if err != nil {
		fmt.Fprintf(stderr, "cgroupcleand clean: %v\n", err)
		return 1
	}
	if cfg.Memcg.Mode != "off" && !s.NoPodRoot {
		if mon, err := memcg.NewMonitor(s.Hierarchies, "/proc", s.PodRoot, cfg.Memcg, memcg.SystemClock{}); err == nil {
			e.BeforeRemove = mon.BeforeRemove(log)
		}
	}
	engine.LogPlan(log, s, 1, *dryRun)
	e.OnResult = func(r engine.Result) { engine.LogResults(log, []engine.Result{r}, 1, *dryRun) }
	results := e.Apply(ctx, s, *dryRun)
	engine.LogSummary(log, s, results, 1, *dryRun)
	countRuntimeContainers(s)
	if *asJSON {
		if rc := printJSON(stdout, stderr, newScanDoc(src, s, results, nil, *dryRun)); rc != 0 {
			return rc
		}
		return passStatus(s, results)
	}
	printHeader(stdout, src, s)
	if *dryRun {
		fmt.Fprintln(stdout, "\ndry run: nothing is removed")
	}
	if cfg.Clean.Observing() && !*dryRun {
		fmt.Fprintln(stdout, "\nobserve mode (clean.mode): every check runs, nothing is removed")
	}
	fmt.Fprintln(stdout)
	printResults(stdout, results)
	fmt.Fprintf(stdout, "\n%s\n", engine.SummaryLine(s, results))
	return passStatus(s, results)
}

// passStatus is the exit status of scan and clean, in text and JSON
// alike: 1 when the runtime could not be asked (no cgroup could be
// judged, none was removed) or a removal failed (busy, remove-failed,
// kill-failed); 0 otherwise, orphans that a gate or a final check kept
// included.
func passStatus(s *engine.Scan, results []engine.Result) int {
	if _, _, failed := engine.Counts(results); failed > 0 || s.Plan.RuntimeError != "" {
		return 1
	}
	return 0
}
