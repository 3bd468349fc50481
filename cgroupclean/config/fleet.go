package config

import "fmt"

// Clean modes ([clean] mode), the same words as [memcg] mode.
const (
	// ModeAct removes the orphans that pass every gate and final check.
	ModeAct = "act"
	// ModeObserve runs every gate and final check and removes, stops and
	// kills nothing: each orphan act mode would remove is logged and
	// counted instead, so a fleet can be watched before it acts.
	ModeObserve = "observe"
)

// Observing reports whether the clean mode is observe.
func (c Clean) Observing() bool { return c.Mode == ModeObserve }

func (c Clean) validateMode() []FieldError {
	switch c.Mode {
	case ModeAct, ModeObserve:
		return nil
	}
	return []FieldError{{Key: "clean.mode", Msg: fmt.Sprintf("must be act or observe, got %q", c.Mode)}}
}

// Doctor holds the daemon's periodic doctor checks. Keys, defaults and
// validation live together in this file; every key is documented in the
// [doctor] section of config.example.toml.
type Doctor struct {
	// EveryPasses runs the cheap doctor checks every this many passes (0:
	// never). The CFS throttling share is measured between the pass
	// before and the pass of the checks.
	EveryPasses int `toml:"every_passes"`
}

// DefaultDoctorEveryPasses: at the default 5-minute interval, findings
// every 15 minutes, and the throttling share over one 5-minute pass, the
// window of the kubernetes-mixin CPUThrottlingHigh rate.
const DefaultDoctorEveryPasses = 3

// MaxDoctorEveryPasses bounds how stale the findings may get: at the
// default interval, 288 passes are a day.
const MaxDoctorEveryPasses = 288

// DefaultDoctor returns the doctor defaults.
func DefaultDoctor() Doctor { return Doctor{EveryPasses: DefaultDoctorEveryPasses} }
