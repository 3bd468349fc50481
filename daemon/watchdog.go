package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/sirupsen/logrus"
)

// The watchdog rule. systemd's watchdog (WatchdogSec=, sd_watchdog_enabled(3))
// only helps if WATCHDOG=1 means "the work is moving", not "the process
// exists". So the pass loop makes a promise at every step, and a separate
// pinger sends WATCHDOG=1 (every WATCHDOG_USEC/2) only while the promise
// holds:
//
//   - idle between passes, the loop promises to start the next pass by its
//     scheduled time plus WatchdogSec;
//   - in a pass, every stage (each CRI call, each systemd call, each
//     removal, the per-pass hook) promises to end, or reach the next stage,
//     within WatchdogSec of its start.
//
// A stage that overruns (a CRI call or a D-Bus job that hangs, a cgroupfs
// read stuck in the kernel) stops the pings; systemd then kills the service
// (WatchdogSignal, SIGABRT by default: the Go runtime dumps every
// goroutine's stack, so the log shows where it hung) and Restart=on-failure
// starts a fresh one. A hung stage is killed 1.5 to 2 WatchdogSec after it
// began. Every legitimate stage must therefore fit in WatchdogSec:
// runtime.timeout and clean.unit_stop_timeout must be shorter (the daemon
// warns when they are not). The watchdog is armed by systemd only after
// READY=1; until then TimeoutStartSec= bounds the first pass.

// progress is the loop's current promise.
type progress struct {
	mu       sync.Mutex
	stage    string
	since    time.Time
	deadline time.Time
	withheld bool // a stall was logged and pings are held back
}

// stage records that the loop entered stage s at now.
func (d *Daemon) stage(s string, now time.Time) {
	d.progress.set(s, now, now.Add(d.stallLimit()))
}

// idle records that the loop waits for the pass due at next.
func (d *Daemon) idle(next time.Time) {
	d.progress.set("idle", d.Clock.Now(), next.Add(d.stallLimit()))
}

// stallLimit is how long one stage may run: WatchdogSec, or a large value
// without a watchdog (the promise is then only informative).
func (d *Daemon) stallLimit() time.Duration {
	if d.Watchdog > 0 {
		return d.Watchdog
	}
	return 24 * time.Hour
}

func (p *progress) set(stage string, now, deadline time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage, p.since, p.deadline = stage, now, deadline
}

// check reports whether the promise holds at now; stalled is true only
// the first time it is found broken (so the stall is logged once).
func (p *progress) check(now time.Time) (ok bool, stage string, since time.Time, stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.deadline) {
		p.withheld = false
		return true, p.stage, p.since, false
	}
	first := !p.withheld
	p.withheld = true
	return false, p.stage, p.since, first
}

// pinger sends WATCHDOG=1 every Watchdog/2 while the loop keeps its
// promise, until ctx ends.
func (d *Daemon) pinger(ctx context.Context) {
	every := d.Watchdog / 2
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.Clock.After(every):
		}
		now := d.Clock.Now()
		ok, stage, since, stalled := d.progress.check(now)
		if ok {
			d.notify("WATCHDOG=1")
			continue
		}
		if stalled {
			d.Log.WithFields(logrus.Fields{"STAGE": stage, audit.DurationMS: now.Sub(since).Milliseconds()}).
				Errorf("pass stalled in stage %q for %s (limit %s): withholding the watchdog ping so systemd restarts the service",
					stage, now.Sub(since).Round(time.Millisecond), d.stallLimit())
		}
	}
}

// warnWatchdog says when a setting lets a legitimate stage outlast the
// watchdog, which would then kill a daemon that was only waiting.
func (d *Daemon) warnWatchdog(cfg config.Config) {
	if d.Watchdog <= 0 {
		return
	}
	for _, l := range []struct {
		key string
		v   time.Duration
	}{
		{"runtime.timeout", cfg.Runtime.Timeout.Duration},
		{"clean.unit_stop_timeout", cfg.Clean.UnitStopTimeout.Duration},
	} {
		if l.v >= d.Watchdog {
			d.Log.WithField(audit.ConfigFile, d.ConfigFile).Warnf("%s = %s is not shorter than WatchdogSec (%s): a call that takes that long is treated as hung and the service restarted", l.key, l.v, d.Watchdog)
		}
	}
}
