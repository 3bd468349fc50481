package daemon

import (
	"context"
	"fmt"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/sirupsen/logrus"
)

// Links holds the connections a pass needs, the CRI client and the
// systemd D-Bus connection, open from one pass to the next. A connection
// is made when a pass needs it and none is open for the same settings;
// Drop* closes one after it failed, so the next pass dials afresh.
type Links struct {
	// Hierarchies, when set, are given to every engine (the daemon keeps
	// them for several passes); nil makes the engine read mountinfo.
	Hierarchies []hierarchy.Hierarchy

	runtime    *cri.Client
	runtimeKey string
	units      *sdunit.Manager
	unitsKey   string
}

// NewEngine is the one-shot form (scan, clean): an engine on fresh
// connections, and the function that closes them.
func NewEngine(ctx context.Context, cfg config.Config, log logrus.FieldLogger) (*engine.Engine, func()) {
	l := &Links{}
	return l.Engine(ctx, cfg, log, nil), l.Close
}

// Engine returns an engine for cfg on the kept connections. A connection
// that cannot be made is recorded in the engine (RuntimeErr, UnitsErr),
// not returned: the pass then keeps everything that needed it, with the
// reason. stage, when set, is called before every CRI and systemd call
// and every rmdir (the watchdog's proof of progress).
func (l *Links) Engine(ctx context.Context, cfg config.Config, log logrus.FieldLogger, stage func(string)) *engine.Engine {
	if stage == nil {
		stage = func(string) {}
	}
	e := &engine.Engine{Config: cfg, Log: log, Hierarchies: l.Hierarchies}
	if ll, ok := log.(*logrus.Logger); ok {
		// No action whose intent record the journal (or the log output)
		// did not take.
		e.Intents = logging.Intents(ll)
	}
	if key := fmt.Sprint(cfg.Runtime.Endpoint, cfg.Runtime.Timeout.Duration); l.runtime == nil || l.runtimeKey != key {
		l.DropRuntime()
		client, err := cri.Dial(cfg.Runtime.Endpoint, cfg.Runtime.Timeout.Duration)
		if err != nil {
			e.RuntimeErr = err
		} else {
			l.runtime, l.runtimeKey = client, key
		}
	}
	if l.runtime != nil {
		e.Runtime = stagedRuntime{rt: l.runtime, stage: stage}
	}
	if !wantSystemd(e) {
		l.DropUnits()
		return e
	}
	if key := cfg.Clean.SystemdBus; l.units == nil || l.unitsKey != key {
		l.DropUnits()
		stage("systemd-connect")
		// The connection lives until Close, not until ctx ends: a stop
		// in flight at shutdown still needs it.
		m, err := sdunit.Connect(context.WithoutCancel(ctx), cfg.Clean.SystemdBus)
		if err != nil {
			e.UnitsErr = fmt.Errorf("connect to systemd (%s bus): %w", cfg.Clean.SystemdBus, err)
			return e
		}
		l.units, l.unitsKey = m, key
	}
	e.Units = stagedUnits{u: engine.SystemdUnits(l.units, cfg.Clean.UnitStopTimeout.Duration), stage: stage}
	e.BeforeRemove = func(h hierarchy.Hierarchy, dir string) { stage("rmdir " + h.Name) }
	return e
}

// DropRuntime closes the CRI client.
func (l *Links) DropRuntime() {
	if l.runtime != nil {
		_ = l.runtime.Close()
	}
	l.runtime, l.runtimeKey = nil, ""
}

// DropUnits closes the systemd connection.
func (l *Links) DropUnits() {
	if l.units != nil {
		l.units.Close()
	}
	l.units, l.unitsKey = nil, ""
}

// Close closes every connection.
func (l *Links) Close() {
	l.DropRuntime()
	l.DropUnits()
}

func wantSystemd(e *engine.Engine) bool {
	switch e.Config.Clean.UseSystemd {
	case "never":
		return false
	case "always":
		return true
	}
	_, _, driver, err := e.Discover()
	return err == nil && driver == names.Systemd
}

// stagedRuntime and stagedUnits mark every call as a stage of its own.
type stagedRuntime struct {
	rt    live.Runtime
	stage func(string)
}

func (s stagedRuntime) Snapshot(ctx context.Context) (live.Snapshot, error) {
	s.stage("cri")
	defer s.stage("after-cri")
	return s.rt.Snapshot(ctx)
}

type stagedUnits struct {
	u     engine.Units
	stage func(string)
}

func (s stagedUnits) Lookup(ctx context.Context, unit string) (bool, string, error) {
	s.stage("systemd-lookup " + unit)
	defer s.stage("after-systemd")
	return s.u.Lookup(ctx, unit)
}

func (s stagedUnits) Stop(ctx context.Context, unit string) (string, error) {
	s.stage("systemd-stop " + unit)
	defer s.stage("after-systemd")
	return s.u.Stop(ctx, unit)
}

// enginePass is the real pass: scan with the sightings, log the plan,
// apply, log the results and the summary.
func (d *Daemon) enginePass(ctx context.Context, cfg config.Config, n uint64, sightings map[string]int, stage func(string)) PassResult {
	log := d.Log.WithField(audit.Pass, n)
	start := time.Now()
	stage("connect")
	// Mounts rarely change: mountinfo is parsed again every 10 passes (and
	// when mount_root changes), not every pass.
	if d.hier == nil || d.hierRoot != cfg.Cgroup.MountRoot || n%10 == 0 {
		d.hier, d.hierRoot = nil, cfg.Cgroup.MountRoot
		if hs, err := hierarchy.Discover(cfg.Cgroup.MountRoot); err == nil && len(hs) > 0 {
			d.hier = hs
		}
	}
	d.links.Hierarchies = d.hier
	e := d.links.Engine(ctx, cfg, d.Log, stage)
	d.Metrics.Instrument(e)
	e.Now, e.Pass = d.Clock.Now, n
	if d.dirCache == nil {
		d.dirCache = &inventory.DirCache{}
	}
	e.DirCache = d.dirCache
	if d.BeforeRemove != nil {
		if hook := d.BeforeRemove(); hook != nil {
			// mark is nil without systemd (cgroupfs driver, use_systemd
			// = "never", systemd unreachable).
			mark := e.BeforeRemove
			e.BeforeRemove = func(h hierarchy.Hierarchy, dir string) {
				if mark != nil {
					mark(h, dir)
				}
				hook(h, dir)
			}
		}
	}
	stage("scan")
	s, err := e.Scan(ctx, sightings)
	if err != nil {
		d.Metrics.PassDone(metrics.PassFailed, time.Since(start), time.Now())
		return PassResult{Err: fmt.Errorf("scan: %w", err)}
	}
	if ctx.Err() != nil {
		// Stopped while scanning: the plan saw a cancelled runtime call,
		// not an unreachable runtime; nothing was changed.
		log.Info("pass stopped during the scan: nothing removed")
		return PassResult{Summary: "stopped during the scan", Err: ctx.Err()}
	}
	engine.LogPlan(d.Log, s, n, false)
	d.Metrics.Scanned(s)
	e.OnResult = func(r engine.Result) {
		engine.LogResults(d.Log, []engine.Result{r}, n, false)
		d.Metrics.Result(r, s.Driver)
	}
	stage("apply")
	results := e.Apply(ctx, s, false)
	stage("report")
	engine.LogSummary(d.Log, s, results, n, false)
	d.Metrics.PassDone(metrics.PassResultOf(s), time.Since(start), time.Now())
	if s.Plan.RuntimeError != "" {
		// A fresh client next pass: a stalled connection is not reused.
		d.links.DropRuntime()
	}
	d.runDoctor(ctx, cfg, n, s, stage)
	for _, r := range results {
		if r.Reason == decide.SystemdUnreachable || (r.Outcome == engine.Failed && r.Item.Unit != "" && r.UnitStopped == "") {
			d.links.DropUnits()
			break
		}
	}
	return PassResult{Summary: engine.SummaryLine(s, results), Sightings: decide.NextSightings(s.Plan, sightings)}
}

// warnKubeletRoot says at start and on reload when kubelet's state is not
// where cgroup.kubelet_root says: every pass would then keep every pod the
// runtime does not list (kubelet-state-unknown) and remove none of them.
func (d *Daemon) warnKubeletRoot(cfg config.Config) {
	if err := live.CheckKubeletRoot(cfg.Cgroup.KubeletRoot); err != nil {
		d.Log.WithFields(logrus.Fields{audit.ConfigFile: d.ConfigFile, audit.Error: err.Error()}).Warnf("kubelet state unknown: %v", err)
	}
}
