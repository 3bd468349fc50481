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
	// Observer, when set, is given to every monitor (metrics).
	Observer memcg.Observer

	mu      sync.Mutex
	key     memcgKey
	mon     *memcg.Monitor
	changed chan struct{}
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
// history (window, cooldowns, backoff) is kept while the settings stay.
func (m *MemcgLoop) Configure(ctx context.Context, cfg config.Config, _ uint64) {
	key := memcgKey{cfg: cfg.Memcg, mountRoot: cfg.Cgroup.MountRoot, podRoot: cfg.Cgroup.PodRoot}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == key && (m.mon != nil || cfg.Memcg.Mode == "off") {
		return
	}
	m.key, m.mon = key, nil
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
	mon.Observer = m.Observer
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
