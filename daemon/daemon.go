// Package daemon is `cgroupcleand run`: the engine's pass on an interval,
// as a systemd Type=notify service (sd_notify(3), spoken through
// github.com/coreos/go-systemd/v22/daemon).
//
// What systemd sees:
//   - READY=1 once the first pass has ended, whatever its outcome (the
//     runtime unreachable or a failed pass included): the daemon is then
//     doing its job, which is to keep trying.
//   - STATUS= the one-line summary of the last pass (systemctl status).
//   - WATCHDOG=1 every WATCHDOG_USEC/2 while the pass loop proves progress
//     (see watchdog.go for the rule).
//   - STOPPING=1 on SIGTERM/SIGINT, after which the removal in flight is
//     finished and Run returns nil.
//
// SIGHUP reloads the configuration between passes; an invalid file is
// logged and the running configuration kept.
package daemon

import (
	"context"
	"fmt"
	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/sirupsen/logrus"
)

// PassResult is what one pass reports to the loop.
type PassResult struct {
	// Summary is the one-line outcome (STATUS=).
	Summary string
	// Sightings is the next pass's count of consecutive passes that saw
	// each orphan (decide.NextSightings).
	Sightings map[string]int
	// Err is set when the pass could not run to its end (discovery or the
	// inventory failed). The next pass starts counting sightings again.
	Err error
}

// PassFunc runs pass number n with cfg. sightings is never nil (nil would
// make decide treat every orphan as confirmed). stage must be called at
// the start of every step that may block (see watchdog.go): the real pass
// calls it around every CRI and systemd call and every removal. ctx ends
// on shutdown; the pass must then finish the removal in flight and return.
type PassFunc func(ctx context.Context, cfg config.Config, n uint64, sightings map[string]int, stage func(string)) PassResult

// Daemon runs passes on an interval. Build it with New, then set the
// optional fields before Run.
type Daemon struct {
	// Load reads the configuration again on SIGHUP.
	Load func() (config.Config, error)
	// ConfigFile names the file in log entries.
	ConfigFile string
	Log        *logrus.Logger
	// Notifier receives sd_notify states; nil sends none.
	Notifier Notifier
	// Watchdog is WATCHDOG_USEC (sd_watchdog_enabled); 0 means systemd
	// runs no watchdog for this service.
	Watchdog time.Duration
	// Reload delivers SIGHUP.
	Reload <-chan os.Signal
	Clock  Clock
	// Rand returns a number in [0, 1) for the jitter.
	Rand func() float64
	// Pass runs one pass; New sets the engine's.
	Pass PassFunc
	// EachPass, when set, runs once after every pass (the memcg watchdog's
	// hook). It is a stage of its own for the watchdog.
	EachPass func(ctx context.Context, cfg config.Config, n uint64)
	// BeforeRemove, when set, gives a hook run right before an orphan's
	// directories are removed in one hierarchy (the memcg watchdog's
	// step 1), chained after the watchdog's own progress mark.
	BeforeRemove func() apply.BeforeRemove
	// Metrics, when set, records every pass (nil records nothing).
	Metrics *metrics.Metrics
	// MemcgSample, when set, gives the memcg watchdog's last probe to the
	// periodic doctor checks (nil: no sample).
	MemcgSample func() *memcg.Sample

	cfg      config.Config
	links    *Links
	dirCache *inventory.DirCache
	hier     []hierarchy.Hierarchy
	hierRoot string
	progress progress
	// note is appended to STATUS= until the next good reload.
	note   string
	doctor doctorChecks
}

// New returns a daemon that runs the engine with cfg, reloading through
// load.
func New(cfg config.Config, load func() (config.Config, error), log *logrus.Logger) *Daemon {
	d := &Daemon{Load: load, Log: log, Clock: realClock{}, Rand: rand.Float64, cfg: cfg, links: &Links{}}
	d.Pass = d.enginePass
	return d
}

// Config returns the configuration in use (after the last good reload).
func (d *Daemon) Config() config.Config { return d.cfg }

// NextDelay is the wait before the next pass: interval stretched or
// shrunk by up to jitter (a share of it), with r in [0, 1), so the nodes
// of a fleet drift apart instead of pulsing together.
func NextDelay(interval time.Duration, jitter, r float64) time.Duration {
	return time.Duration(float64(interval) * (1 + jitter*(2*r-1)))
}

// Run loops until ctx ends: a pass right away, then one every
// daemon.interval (with jitter). It returns nil after a clean stop.
func (d *Daemon) Run(ctx context.Context) error {
	if d.Clock == nil {
		d.Clock = realClock{}
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	if d.links == nil {
		d.links = &Links{}
	}
	if d.Pass == nil {
		d.Pass = d.enginePass
	}
	defer d.links.Close()
	d.warnWatchdog(d.cfg)
	d.warnKubeletRoot(d.cfg)
	d.Metrics.CleanMode(d.cfg.Clean.Mode)
	pingerDone := make(chan struct{})
	pctx, stopPinger := context.WithCancel(context.Background())
	if d.Watchdog > 0 && d.Notifier != nil {
		go func() { defer close(pingerDone); d.pinger(pctx) }()
	} else {
		close(pingerDone)
	}
	defer func() { stopPinger(); <-pingerDone }()

	d.Log.WithFields(logrus.Fields{audit.ConfigFile: d.ConfigFile, "WATCHDOG_SEC": d.Watchdog.Seconds()}).
		Infof("cgroupcleand running: a pass every %s (jitter %g), clean mode %s", d.cfg.Daemon.Interval.Duration, d.cfg.Daemon.Jitter, d.cfg.Clean.Mode)
	sightings := map[string]int{}
	ready := false
	for n := uint64(1); ; n++ {
		d.stage("pass", d.Clock.Now())
		res := d.runPass(ctx, n, sightings)
		sightings = res.Sightings
		if sightings == nil || res.Err != nil {
			sightings = map[string]int{}
		}
		if ctx.Err() != nil {
			return d.stop()
		}
		passAt := d.Clock.Now()
		state := "STATUS=" + d.status(n, passAt, res)
		if !ready {
			state = "READY=1\n" + state
			ready = true
		}
		d.notify(state)

		next := d.Clock.Now().Add(NextDelay(d.cfg.Daemon.Interval.Duration, d.cfg.Daemon.Jitter, d.Rand()))
	wait:
		for {
			d.idle(next)
			select {
			case <-ctx.Done():
				return d.stop()
			case <-d.Reload:
				d.reload()
				d.notify("STATUS=" + d.status(n, passAt, res))
			case <-d.Clock.After(next.Sub(d.Clock.Now())):
				break wait
			}
		}
	}
}

func (d *Daemon) runPass(ctx context.Context, n uint64, sightings map[string]int) PassResult {
	start := d.Clock.Now()
	stage := func(s string) { d.stage(s, d.Clock.Now()) }
	res := d.Pass(ctx, d.cfg, n, sightings, stage)
	if res.Err != nil && ctx.Err() == nil {
		d.Log.WithFields(logrus.Fields{audit.Pass: n, audit.Error: res.Err.Error()}).Errorf("pass %d failed: %v", n, res.Err)
	}
	if d.EachPass != nil && ctx.Err() == nil {
		stage("each-pass")
		d.EachPass(ctx, d.cfg, n)
	}
	d.Log.WithFields(logrus.Fields{audit.Pass: n, audit.DurationMS: d.Clock.Now().Sub(start).Milliseconds()}).Debug("pass done")
	return res
}

func (d *Daemon) status(n uint64, at time.Time, res PassResult) string {
	s := res.Summary
	if res.Err != nil {
		s = "FAILED: " + res.Err.Error()
	}
	line := fmt.Sprintf("pass %d at %s: %s [%s mode]", n, at.Format("15:04:05"), s, d.cfg.Clean.Mode)
	if d.note != "" {
		line += " [" + d.note + "]"
	}
	return oneLine(line)
}

// oneLine keeps STATUS= to one line: a multi-line error (config.Errors)
// would otherwise end the assignment early.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n  ", "; ")
	return strings.ReplaceAll(s, "\n", "; ")
}

func (d *Daemon) reload() {
	d.stage("reload", d.Clock.Now())
	cfg, err := d.Load()
	if err != nil {
		d.note = "config reload failed at " + d.Clock.Now().Format("15:04:05") + ", running the previous config"
		d.Log.WithFields(logrus.Fields{
			audit.MessageID: audit.IDConfigReloaded, audit.ConfigFile: d.ConfigFile,
			audit.Reason: "invalid", audit.Error: err.Error(),
		}).Errorf("config reload failed, keeping the running configuration: %v", err)
		return
	}
	d.note = ""
	// Action records stay on at every level (logging.SetLevel).
	_ = logging.SetLevel(d.Log, cfg.Log.Level)
	if cfg.Metrics.Listen != d.cfg.Metrics.Listen {
		d.Log.WithField(audit.ConfigFile, d.ConfigFile).Warnf("metrics.listen changed to %q: takes effect at the next restart", cfg.Metrics.Listen)
	}
	if cfg.Log.Format != d.cfg.Log.Format {
		d.Log.WithField(audit.ConfigFile, d.ConfigFile).Warnf("log.format changed to %s: takes effect at the next restart", cfg.Log.Format)
	}
	if cfg.Clean.Mode != d.cfg.Clean.Mode {
		d.Log.WithFields(logrus.Fields{audit.ConfigFile: d.ConfigFile, "CLEAN_MODE": cfg.Clean.Mode}).
			Warnf("clean.mode changed from %s to %s", d.cfg.Clean.Mode, cfg.Clean.Mode)
	}
	d.Metrics.CleanMode(cfg.Clean.Mode)
	d.cfg = cfg
	// New settings may name another endpoint or bus; fresh connections
	// also recover from a runtime that was restarted meanwhile.
	d.links.Close()
	d.warnWatchdog(cfg)
	d.warnKubeletRoot(cfg)
	d.Log.WithFields(logrus.Fields{
		audit.MessageID: audit.IDConfigReloaded, audit.ConfigFile: d.ConfigFile, audit.Reason: "applied",
	}).Infof("config reloaded: a pass every %s, confirm_passes %d, min_age %s, clean mode %s",
		cfg.Daemon.Interval.Duration, cfg.Clean.ConfirmPasses, cfg.Clean.MinAge.Duration, cfg.Clean.Mode)
}

func (d *Daemon) stop() error {
	d.notify("STOPPING=1")
	d.Log.Info("cgroupcleand stopping")
	return nil
}

func (d *Daemon) notify(state string) {
	if d.Notifier == nil {
		return
	}
	if err := d.Notifier.Notify(state); err != nil {
		d.Log.WithField(audit.Error, err.Error()).Warn("sd_notify failed")
	}
}
