package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
)

// cmdRun is the service: exit 0 after SIGTERM/SIGINT, 2 when the
// configuration or the logger cannot be set up at start.
func cmdRun(args []string, stdout, stderr io.Writer, lockDir string) int {
	fset := newFlagSet("run", stderr)
	cfgPath, explicit := commonFlags(fset)
	wait, stateDir := lockFlags(fset)
	if err := fset.Parse(args); err != nil {
		return 2
	}
	stopProfile, ok := startHeapProfile(fset, stderr)
	if !ok {
		return 2
	}
	defer stopProfile()
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "cgroupcleand run: unexpected arguments %q\n", fset.Args())
		return 2
	}
	path, isExplicit := *cfgPath, explicit()
	load := func() (config.Config, error) {
		cfg, _, err := loadConfig(path, isExplicit)
		return cfg, err
	}
	cfg, src, err := loadConfig(path, isExplicit)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, err := logging.New(cfg.Log.Format, cfg.Log.Level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "cgroupcleand run: %v\n", err)
		return 2
	}
	// Entries journald did not take wait in a queue for stderr.
	defer logging.Flush(log, 2*time.Second)

	// SIGTERM/SIGINT end the loop between removals (engine.Apply finishes
	// the one in flight). SIGHUP reloads.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lock, ok := takeLock(ctx, &cfg, lockDir, *stateDir, *wait, stderr, "run")
	if !ok {
		return 1
	}
	defer lock.Release()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	m := metrics.New(version)
	stopMetrics := daemon.ServeMetrics(cfg, m, log)
	defer stopMetrics()

	d := daemon.New(cfg, load, log)
	d.ConfigFile, d.Reload, d.Metrics = src, hup, m
	if os.Getenv("NOTIFY_SOCKET") != "" {
		d.Notifier = daemon.SystemdNotifier{}
		wd, err := daemon.WatchdogFromEnv()
		if err != nil {
			log.WithField(audit.Error, err.Error()).Warn("ignoring the watchdog settings systemd passed")
		}
		d.Watchdog = wd
	}
	mc := daemon.NewMemcgLoop(log)
	// Only the lock's holder writes the limits.
	mc.StateDir = cfg.Daemon.StateDir
	mc.Observer = m
	mc.Configure(ctx, cfg, 0)
	d.EachPass, d.BeforeRemove = mc.Configure, mc.BeforeRemove
	d.MemcgSample = mc.LastSample
	go mc.Run(ctx)
	if err := d.Run(ctx); err != nil {
		log.WithField(audit.Error, err.Error()).Error("cgroupcleand stopped on an error")
		return 1
	}
	return 0
}
