package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/doctor"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/daemon"
)

// cmdDoctor is the read-only node health report. Exit 0 when nothing is
// above ok or info, 1 on a warning or worse (so scripts can gate on it),
// 2 on bad flags or configuration.
func cmdDoctor(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("doctor", stderr)
	cfgPath, explicit := commonFlags(fset)
	asJSON := fset.Bool("json", false, "print one JSON document")
	interval := fset.Duration("interval", 10*time.Second, "time between the two cpu.stat reads of the throttling check")
	inodes := fset.Uint64("inode-threshold", doctor.DefaultInodeThreshold, "writable layer inodes above which a container is flagged")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	stopProfile, ok := startHeapProfile(fset, stderr)
	if !ok {
		return 2
	}
	defer stopProfile()
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "cgroupcleand doctor: unexpected arguments %q\n", fset.Args())
		return 2
	}
	if *interval < 100*time.Millisecond || *interval > 10*time.Minute {
		fmt.Fprintf(stderr, "cgroupcleand doctor: --interval must be from 100ms to 10m, got %s\n", *interval)
		return 2
	}
	if *inodes == 0 {
		fmt.Fprintln(stderr, "cgroupcleand doctor: --inode-threshold must be at least 1")
		return 2
	}
	cfg, _, err := loadConfig(*cfgPath, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := cliLogger(stderr)

	in := doctor.Input{Config: cfg, Interval: *interval, InodeThreshold: *inodes}
	e, closeAll := daemon.NewEngine(ctx, cfg, log)
	defer closeAll()
	in.Scan, in.ScanErr = e.Scan(ctx, nil)
	if client, err := cri.Dial(cfg.Runtime.Endpoint, cfg.Runtime.Timeout.Duration); err != nil {
		in.ContainersErr = err
	} else {
		in.Containers, in.ContainersErr = client.Containers(ctx)
		_ = client.Close()
	}
	if cfg.Clean.UseSystemd != "never" {
		sctx, cancel := context.WithTimeout(ctx, cfg.Runtime.Timeout.Duration)
		m, err := sdunit.Connect(sctx, cfg.Clean.SystemdBus)
		if err != nil {
			in.UnitsErr = fmt.Errorf("systemd (%s bus) not reachable: %w", cfg.Clean.SystemdBus, err)
		} else {
			defer m.Close()
			in.Units = m
		}
		defer cancel()
	}
	rep := doctor.Run(ctx, in)
	if *asJSON {
		if rc := printJSON(stdout, stderr, rep); rc != 0 {
			return rc
		}
	} else if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch rep.Worst() {
	case doctor.Warn, doctor.Critical:
		return 1
	}
	return 0
}
