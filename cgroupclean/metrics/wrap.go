package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
)

// Runtime wraps rt so every ask is timed and its errors counted. A nil rt
// (or nil m) is returned as it is: the engine tells "no runtime" by nil.
func (m *Metrics) Runtime(rt live.Runtime) live.Runtime {
	if m == nil || rt == nil {
		return rt
	}
	return timedRuntime{rt: rt, m: m}
}

type timedRuntime struct {
	rt live.Runtime
	m  *Metrics
}

func (t timedRuntime) Snapshot(ctx context.Context) (live.Snapshot, error) {
	start := time.Now()
	s, err := t.rt.Snapshot(ctx)
	t.m.CRI(time.Since(start), err)
	return s, err
}

// Units wraps u so every stop job is counted by its result. A nil u (or
// nil m) is returned as it is.
func (m *Metrics) Units(u engine.Units) engine.Units {
	if m == nil || u == nil {
		return u
	}
	return countedUnits{u: u, m: m}
}

type countedUnits struct {
	u engine.Units
	m *Metrics
}

func (c countedUnits) Lookup(ctx context.Context, unit string) (bool, string, error) {
	return c.u.Lookup(ctx, unit)
}

func (c countedUnits) Stop(ctx context.Context, unit string) (string, error) {
	detail, err := c.u.Stop(ctx, unit)
	c.m.StopJob(StopResult(err))
	return detail, err
}

// StopResult names a stop job's outcome from the error Stop returned.
func StopResult(err error) string {
	switch {
	case err == nil:
		return StopDone
	case errors.Is(err, sdunit.ErrJobFailed):
		return StopFailed
	case errors.Is(err, sdunit.ErrJobTimeout):
		return StopTimeout
	case errors.Is(err, sdunit.ErrNoSuchUnit):
		return StopNoUnit
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return StopCanceled
	}
	return StopError
}

// Instrument wraps an engine's runtime and systemd connections and counts
// a runtime client that could not be made.
func (m *Metrics) Instrument(e *engine.Engine) {
	if m == nil {
		return
	}
	if e.Runtime == nil && e.RuntimeErr != nil {
		m.CRIDialFailed()
	}
	e.Runtime = m.Runtime(e.Runtime)
	e.Units = m.Units(e.Units)
}

// PassResultOf is the result label of a pass that ran to its end.
func PassResultOf(s *engine.Scan) string {
	if s.Plan.RuntimeError != "" {
		return PassRuntimeUnreachable
	}
	return PassOK
}
