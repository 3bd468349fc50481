package memcg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/sirupsen/logrus"
)

// Monitor ties the probe, the watchdog and the executor together for the
// daemon and for `scan`: one Tick per probe_interval.
type Monitor struct {
	Probe    *Probe
	Watchdog *Watchdog
	Executor *Executor
	// Observer, when set, is told every sample and action (metrics).
	Observer Observer
	cfg      config.Memcg
	// stateDir, when set, is where the limits are saved after an action.
	stateDir string
}

// KeepLimitsIn loads the watchdog's limits from dir (see
// Watchdog.LoadLimits) and saves them there after every action. A file
// that could not be used is replaced at once by the cautious state
// LoadLimits fell back to; the returned error says why it was not used.
func (m *Monitor) KeepLimitsIn(dir string) error {
	m.stateDir = dir
	err := m.Watchdog.LoadLimits(dir)
	if errors.Is(err, ErrLimitsUnusable) {
		if serr := m.Watchdog.SaveLimits(dir); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}

// SaveLimitsIn saves the limits in dir after every action, without
// reading it first ("" saves nowhere).
func (m *Monitor) SaveLimitsIn(dir string) { m.stateDir = dir }

// Observer is told what the monitor read and did; it must not block.
type Observer interface {
	MemcgSample(Sample)
	MemcgAction(Decision, Outcome)
	MemcgPrevent(freed int64, took time.Duration, err error)
}

// NewMonitor finds the memory controller among hs and builds a monitor.
// podRoot is the pod cgroup root ("" when there is none).
func NewMonitor(hs []hierarchy.Hierarchy, procRoot, podRoot string, cfg config.Memcg, clock Clock) (*Monitor, error) {
	root, v2, err := Locate(hs)
	if err != nil {
		return nil, err
	}
	paths := Paths{ProcRoot: procRoot, MemoryRoot: root, V2: v2, PodRoot: podRoot}
	probe, err := NewProbe(paths, cfg.StatTimeout.Duration)
	if err != nil {
		return nil, err
	}
	return &Monitor{
		Probe:    probe,
		Watchdog: NewWatchdog(cfg, probe.Env(), clock),
		Executor: NewExecutor(paths, cfg, DropCachesPath),
		cfg:      cfg,
	}, nil
}

// Tick samples, logs the health, and in mode "act" takes the action the
// watchdog decides, measures its effect and logs it.
func (m *Monitor) Tick(ctx context.Context, log logrus.FieldLogger) (Decision, error) {
	s, err := m.Probe.Sample(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("memcg probe: %w", err)
	}
	if m.Observer != nil {
		m.Observer.MemcgSample(s)
	}
	d := m.Watchdog.Observe(s)
	LogHealth(log, d)
	if d.Action == ActionNone {
		return d, nil
	}
	o := m.Executor.Apply(ctx, d)
	if m.Observer != nil {
		m.Observer.MemcgAction(d, o)
	}
	after, err := m.Probe.Sample(ctx)
	if err != nil {
		after = s
	}
	LogAction(log, d, o, m.Watchdog.Record(d, o, after))
	if m.stateDir != "" {
		if err := m.Watchdog.SaveLimits(m.stateDir); err != nil {
			log.WithError(err).Error("memcg limits not saved: a restart would forget this action's cooldown")
		}
	}
	return d, nil
}

// Assess takes the confirm_samples samples a decision needs, back to back,
// and returns what the watchdog would do, acting on nothing: for `scan`.
func (m *Monitor) Assess(ctx context.Context) (Decision, error) {
	var d Decision
	for i := 0; i < m.cfg.ConfirmSamples; i++ {
		s, err := m.Probe.Sample(ctx)
		if err != nil {
			return Decision{}, fmt.Errorf("memcg probe: %w", err)
		}
		d = m.Watchdog.Observe(s)
	}
	return d, nil
}

// BeforeRemove is step 1, to run right before the directories of an
// orphan are removed in one hierarchy: in the memory hierarchy it reclaims
// the cgroup's charges so it is freed at once instead of lingering as a
// dying memcg. It does nothing unless the watchdog allows it (mode "act",
// prevent_on_remove on).
func (m *Monitor) BeforeRemove(log logrus.FieldLogger) func(h hierarchy.Hierarchy, dir string) {
	if ok, _ := m.Watchdog.PreventOnRemove(); !ok {
		return nil
	}
	memRoot := m.Probe.Paths().MemoryRoot
	v2 := m.Probe.Paths().V2
	return func(h hierarchy.Hierarchy, dir string) {
		if h.Mountpoint != memRoot {
			return
		}
		start := time.Now()
		freed, err := PreventZombie(context.Background(), memRoot, dir, v2, m.cfg.PreventTimeout.Duration)
		LogPrevent(log, dir, freed, time.Since(start), err)
		if m.Observer != nil {
			m.Observer.MemcgPrevent(freed, time.Since(start), err)
		}
	}
}
