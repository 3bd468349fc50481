package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/sirupsen/logrus"
)

func cmdScan(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("scan", stderr)
	cfgPath, explicit := commonFlags(fset)
	asJSON := fset.Bool("json", false, "print one JSON document")
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
	log := cliLogger(stderr)
	ctx := context.Background()
	e, closeAll := daemon.NewEngine(ctx, cfg, log)
	defer closeAll()
	s, err := e.Scan(ctx, nil)
	if err != nil {
		fmt.Fprintf(stderr, "cgroupcleand scan: %v\n", err)
		return 1
	}
	var other []otherDir
	if *asJSON {
		// Of the inventory the document prints only other_dirs: its pod
		// and container records go now, and the memcg walk and the JSON
		// run without them (at 10,000 pods 3.8 MiB of 13 MiB live).
		other, s.Inventory = otherDirs(s), nil
	}
	health := memcgHealth(ctx, cfg, s, log)
	countRuntimeContainers(s)
	if *asJSON {
		doc := newScanDoc(src, s, nil, health, false)
		doc.OtherDirs = other
		if rc := printJSON(stdout, stderr, doc); rc != 0 {
			return rc
		}
		return passStatus(s, nil)
	}
	printScan(stdout, src, s)
	if health != nil {
		fmt.Fprintf(stdout, "%s\n", health.Health.String())
	}
	return passStatus(s, nil)
}

// memcgHealth is what the memcg watchdog sees and would do, acting on
// nothing; nil when the watchdog is off or cannot run here (logged).
func memcgHealth(ctx context.Context, cfg config.Config, s *engine.Scan, log logrus.FieldLogger) *memcg.Decision {
	if cfg.Memcg.Mode == "off" {
		return nil
	}
	mon, err := memcg.NewMonitor(s.Hierarchies, "/proc", s.PodRoot, cfg.Memcg, memcg.SystemClock{})
	if err != nil {
		log.Warnf("memcg health: %v", err)
		return nil
	}
	// One sample, observed confirm_samples times (what Assess would see if
	// the state held): scan acts on nothing, samples taken back to back
	// read the same state again, and on v1 each is a walk of the machine's
	// whole memory hierarchy (30,000-60,000 cgroups on a busy host).
	sample, err := mon.Probe.Sample(ctx)
	if err != nil {
		log.Warnf("memcg health: %v", err)
		return nil
	}
	var d memcg.Decision
	for range max(cfg.Memcg.ConfirmSamples, 1) {
		d = mon.Watchdog.Observe(sample)
	}
	return &d
}

func printJSON(stdout, stderr io.Writer, v any) int {
	if err := writeIndentedJSON(stdout, v); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// cliLogger logs warnings and errors to stderr for one-shot commands; the
// audit trail of every decision is the daemon's job.
func cliLogger(stderr io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(stderr)
	l.SetLevel(logrus.WarnLevel)
	return l
}
