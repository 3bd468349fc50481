package config

import (
	"fmt"
	"time"
)

// Memcg holds the settings of the memcg health watchdog. Owned by the memcg
// work: keys, defaults and validation live together in this file; every key
// is documented in the [memcg] section of config.example.toml.
type Memcg struct {
	// Mode is off (no probe), observe (log and export, never act) or act.
	Mode string `toml:"mode"`
	// ProbeInterval is how often the signals are read.
	ProbeInterval Duration `toml:"probe_interval"`
	// StatTimeout bounds one memory.stat read; a read still running after
	// it counts as at least that slow.
	StatTimeout Duration `toml:"stat_timeout"`
	// Window is how many samples the latency median and the dying-count
	// confirmation look at.
	Window int `toml:"window"`
	// ConfirmSamples is how many consecutive samples must cross a threshold
	// before it counts: never act on one sample.
	ConfirmSamples int `toml:"confirm_samples"`

	LatencyWarn   Duration `toml:"latency_warn"`
	LatencyAct    Duration `toml:"latency_act"`
	DyingWarn     int      `toml:"dying_warn"`
	DyingAct      int      `toml:"dying_act"`
	DyingRatioAct float64  `toml:"dying_ratio_act"`

	// Step 1: reclaim an orphan's memory cgroup just before its rmdir.
	PreventOnRemove bool     `toml:"prevent_on_remove"`
	PreventTimeout  Duration `toml:"prevent_timeout"`

	// Step 2: targeted reclaim at the pod root.
	ReclaimPodRoot       bool     `toml:"reclaim_pod_root"`
	V1ForceEmptyPodRoot  bool     `toml:"v1_force_empty_pod_root"`
	ReclaimStepBytes     int64    `toml:"reclaim_step_bytes"`
	ReclaimMaxBytes      int64    `toml:"reclaim_max_bytes"`
	ReclaimTimeout       Duration `toml:"reclaim_timeout"`
	ReclaimCooldown      Duration `toml:"reclaim_cooldown"`
	ReclaimSwappinessOff bool     `toml:"reclaim_swappiness_zero"`

	// Step 3: global drop_caches.
	DropCaches         bool     `toml:"drop_caches"`
	DropCachesValue    int      `toml:"drop_caches_value"`
	DropCachesCooldown Duration `toml:"drop_caches_cooldown"`
	DropCachesDailyCap int      `toml:"drop_caches_daily_cap"`
	PressureMax        float64  `toml:"pressure_max"`

	// An action that did not move the signal waits cooldown*2^n, at most
	// BackoffMax.
	BackoffMax Duration `toml:"backoff_max"`
	// MinEffect is the share by which the dying count must fall for an
	// action to count as effective.
	MinEffect float64 `toml:"min_effect"`
}

// DefaultMemcg returns the watchdog defaults.
func DefaultMemcg() Memcg {
	return Memcg{
		Mode:                 "observe",
		ProbeInterval:        Duration{time.Minute},
		StatTimeout:          Duration{10 * time.Second},
		Window:               5,
		ConfirmSamples:       3,
		LatencyWarn:          Duration{100 * time.Millisecond},
		LatencyAct:           Duration{time.Second},
		DyingWarn:            1000,
		DyingAct:             5000,
		DyingRatioAct:        5,
		PreventOnRemove:      true,
		PreventTimeout:       Duration{5 * time.Second},
		ReclaimPodRoot:       true,
		V1ForceEmptyPodRoot:  false,
		ReclaimStepBytes:     64 << 20,
		ReclaimMaxBytes:      1 << 30,
		ReclaimTimeout:       Duration{30 * time.Second},
		ReclaimCooldown:      Duration{15 * time.Minute},
		ReclaimSwappinessOff: true,
		DropCaches:           true,
		DropCachesValue:      0,
		DropCachesCooldown:   Duration{time.Hour},
		DropCachesDailyCap:   4,
		PressureMax:          10,
		BackoffMax:           Duration{24 * time.Hour},
		MinEffect:            0.1,
	}
}

func (m Memcg) validate() []FieldError {
	var errs []FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: "memcg." + key, Msg: fmt.Sprintf(format, args...)})
	}
	switch m.Mode {
	case "off", "observe", "act":
	default:
		bad("mode", "must be off, observe or act, got %s", quote(m.Mode))
	}
	if m.ConfirmSamples > m.Window {
		bad("confirm_samples", "must not be above window (%d), got %d", m.Window, m.ConfirmSamples)
	}
	if m.LatencyAct.Duration < m.LatencyWarn.Duration {
		bad("latency_act", "must not be below latency_warn (%s), got %s", m.LatencyWarn.Duration, m.LatencyAct.Duration)
	}
	if m.DyingAct < m.DyingWarn {
		bad("dying_act", "must not be below dying_warn (%d), got %d", m.DyingWarn, m.DyingAct)
	}
	if m.ReclaimMaxBytes < m.ReclaimStepBytes {
		bad("reclaim_max_bytes", "must not be below reclaim_step_bytes (%d), got %d", m.ReclaimStepBytes, m.ReclaimMaxBytes)
	}
	return errs
}

// Floors and ceilings of the watchdog's rate limits: below them a
// probe, a reclaim or a cache drop could repeat without rest.
const (
	MinProbeInterval      = 10 * time.Second
	MinReclaimCooldown    = time.Minute
	MinDropCachesCooldown = 10 * time.Minute
	MaxDropCachesDailyCap = 24
	MaxDyingRatioAct      = 1000
)

func quote(s string) string { return "\"" + s + "\"" }
