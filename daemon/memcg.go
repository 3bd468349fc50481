package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/sirupsen/logrus"
)

// MemcgLoop runs the memcg health watchdog every memcg.probe_interval,
// beside the passes: a slow memory.stat read must not delay a pass, nor a
// pass the probe. Configure (after every pass, so after a reload too)
// rebuilds the monitor when its settings changed.
type MemcgLoop struct {
	Log      logrus.FieldLogger
	ProcRoot string
	// StateDir, when set, keeps the watchdog's limits (cooldowns, daily
	// cap, backoff) in a file there across restarts; fixed at start, a
	// reload does not move it.
	StateDir string
	// Observer, when set, is given to every monitor (metrics).
	Observer memcg.Observer

	mu      sync.Mutex
	key     memcgKey
	mon     *memcg.Monitor
	changed chan struct{}
	// last is the monitor's last sample (nil while none runs).
	last *memcg.Sample
}

type memcgKey struct {
	cfg       config.Memcg
	mountRoot string
	podRoot   string
}

// NewMemcgLoop returns a loop with no monitor until Configure.
func NewMemcgLoop(log logrus.FieldLogger) *MemcgLoop {
	return &MemcgLoop{Log: log, ProcRoot: "/proc", changed: make(chan struct{}, 1)}
}

// Configure builds (or drops, with mode "off") the monitor for cfg. Its
// history (window, cooldowns, backoff) is kept while the settings stay; a
// monitor rebuilt for new settings takes over the limits of the one before
// (or, first, of the state file).
func (m *MemcgLoop) Configure(ctx context.Context, cfg config.Config, _ uint64) {
	key := memcgKey{cfg: cfg.Memcg, mountRoot: cfg.Cgroup.MountRoot, podRoot: cfg.Cgroup.PodRoot}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == key && (m.mon != nil || cfg.Memcg.Mode == "off") {
		return
	}
	prev := m.mon
	m.key, m.mon, m.last = key, nil, nil
	defer m.notify()
	if cfg.Memcg.Mode == "off" {
		return
	}
	hs, err := hierarchy.Discover(cfg.Cgroup.MountRoot)
	if err != nil {
		m.Log.WithError(err).Warn("memcg watchdog not started")
		return
	}
	podRoot := cfg.Cgroup.PodRoot
	if podRoot == "" {
		podRoot, _ = inventory.DetectPodRoot(hs)
	}
	mon, err := memcg.NewMonitor(hs, m.ProcRoot, podRoot, cfg.Memcg, memcg.SystemClock{})
	if err != nil {
		m.Log.WithError(err).Warn("memcg watchdog not started")
		return
	}
	switch {
	case prev != nil:
		mon.Watchdog.CopyLimits(prev.Watchdog)
		mon.SaveLimitsIn(m.StateDir)
	case m.StateDir != "":
		if err := mon.KeepLimitsIn(m.StateDir); err != nil {
			m.Log.WithError(err).Warn("memcg limits file not used: every step waits its cooldown from now")
		}
	}
	mon.Observer = keepSample{m}
	m.mon = mon
}

func (m *MemcgLoop) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// BeforeRemove is the monitor's step-1 hook for the engine (nil when none).
func (m *MemcgLoop) BeforeRemove() apply.BeforeRemove {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mon == nil {
		return nil
	}
	return m.mon.BeforeRemove(m.Log)
}

// Run ticks the monitor every probe_interval until ctx ends.
func (m *MemcgLoop) Run(ctx context.Context) {
	for {
		m.mu.Lock()
		mon, every := m.mon, m.key.cfg.ProbeInterval.Duration
		m.mu.Unlock()
		if mon != nil {
			if _, err := mon.Tick(ctx, m.Log); err != nil {
				m.Log.WithError(err).Warn("memcg probe failed")
			}
		}
		if every <= 0 {
			every = time.Minute
		}
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
		case <-time.After(every):
		}
	}
}

// LastSample is the monitor's last probe reading, nil when the watchdog
// is off or has not probed yet (the daemon's doctor checks read it).
func (m *MemcgLoop) LastSample() *memcg.Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// keepSample keeps each sample for LastSample and passes everything on to
// the loop's Observer.
type keepSample struct{ m *MemcgLoop }

func (k keepSample) MemcgSample(s memcg.Sample) {
	k.m.mu.Lock()
	k.m.last = &s
	k.m.mu.Unlock()
	if k.m.Observer != nil {
		k.m.Observer.MemcgSample(s)
	}
}

func (k keepSample) MemcgAction(d memcg.Decision, o memcg.Outcome) {
	if k.m.Observer != nil {
		k.m.Observer.MemcgAction(d, o)
	}
}

func (k keepSample) MemcgPrevent(freed int64, took time.Duration, err error) {
	if k.m.Observer != nil {
		k.m.Observer.MemcgPrevent(freed, took, err)
	}
}
