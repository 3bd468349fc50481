package sdunit

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/godbus/dbus/v5"
)

// Job results systemd sends with JobRemoved (org.freedesktop.systemd1(5)).
const (
	JobDone       = "done"
	JobCanceled   = "canceled"
	JobTimeout    = "timeout" // the job's own JobTimeoutSec, not Stop's timeout
	JobFailed     = "failed"
	JobDependency = "dependency"
	JobSkipped    = "skipped"
)

// followUpTimeout bounds the state read and ResetFailedUnit after the job:
// they are single calls, but a stuck bus must not hang the caller when ctx
// has no deadline.
const followUpTimeout = 10 * time.Second

// StopResult is what one Stop did.
type StopResult struct {
	Unit string
	// ActiveBefore is the unit's ActiveState before the stop. "inactive"
	// means there was nothing to stop: an unknown slice name looks like
	// that, since systemd loads any slice name without a unit file.
	ActiveBefore string
	// JobID is systemd's job id (0 when no job was queued).
	JobID int
	// Result is the stop job's result (JobDone, JobFailed, ...), "" when
	// none arrived.
	Result string
	// ActiveState is the unit's state once the job ended: "inactive", or
	// "failed" when it had to be killed (e.g. processes ignored SIGTERM
	// until TimeoutStopSec). "" when not read.
	ActiveState string
	// ResetFailed lists the units (the stopped one, or units inside a
	// stopped slice) left "failed" that ResetFailedUnit made systemd
	// forget. Empty when none was failed.
	ResetFailed []string
	// Duration is the time the whole call took.
	Duration time.Duration
}

// Stop stops unit with StopUnit in mode "fail" and waits at most timeout
// for the job's result. Mode "fail" never cancels a job systemd already
// has queued for the unit or a unit a slice stop would take along: a
// start kubelet queued for a pod recreated with the same UID wins, and
// Stop returns ErrJobConflict having changed nothing. Stopping a slice
// stops every unit in it. Units left "failed" (the unit itself or, for a
// slice, any unit below it) get ResetFailedUnit: a failed transient unit
// stays listed and marks the whole node "degraded" until someone resets it.
//
// Outcomes:
//   - (Result "done", nil): the unit is stopped; systemd removed its
//     cgroup before it sent the job result. ActiveBefore "inactive" means
//     it was not running (an unknown slice name ends here too).
//   - (Result "done", ActiveState "failed", ResetFailed [unit], nil):
//     stopped, but systemd marked it failed (for example it needed SIGKILL
//     after TimeoutStopSec); the failed state was reset. ResetFailed may
//     also name units inside a stopped slice.
//   - (Result other than "done", error wrapping ErrJobFailed): the job was
//     canceled (a later job replaced it), failed or hit its own
//     JobTimeoutSec; failed units are still reset.
//   - (Result "", error wrapping ErrJobConflict): another job is queued
//     for the unit (or a unit it would stop); nothing was stopped.
//   - (Result "", error wrapping ErrNoSuchUnit): systemd has no such unit;
//     nothing was stopped (a cgroup dir of that name is not systemd's).
//   - (Result "", error wrapping ErrJobTimeout): no result within timeout.
//     The job stays queued in systemd, which ends it on its own timeouts;
//     Lookup later shows where it went.
//   - (Result "", error wrapping ctx.Err()): ctx ended first; a queued job
//     stays queued as above.
//   - (other error): a D-Bus failure of StopUnit, the state read or
//     ResetFailedUnit (for example a masked unit); Result says whether the
//     job itself finished.
//
// timeout must be positive: a job that never ends is an error, not a hang.
func (m *Manager) Stop(ctx context.Context, unit string, timeout time.Duration) (StopResult, error) {
	start := time.Now()
	r := StopResult{Unit: unit}
	if timeout <= 0 {
		return r, fmt.Errorf("stop unit %s: timeout %v is not positive", unit, timeout)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	before, err := m.conn.GetUnitPropertyContext(wctx, unit, "ActiveState")
	if err != nil {
		r.Duration = time.Since(start)
		return r, fmt.Errorf("stop unit %s: read state: %w", unit, waitErr(ctx, wctx, err))
	}
	r.ActiveBefore, _ = before.Value.Value().(string)
	// Read before the stop: once stopped, a slice no longer lists the
	// units it held.
	below := m.unitsBelow(wctx, unit)

	// Buffered: go-systemd's signal loop blocks on a full channel, and a
	// result that arrives after we gave up must not block it.
	ch := make(chan string, 1)
	id, err := m.conn.StopUnitContext(wctx, unit, "fail", ch)
	if err != nil {
		r.Duration = time.Since(start)
		return r, fmt.Errorf("stop unit %s: %w", unit, waitErr(ctx, wctx, mapErr(err)))
	}
	r.JobID = id
	select {
	case r.Result = <-ch:
	case <-wctx.Done():
		r.Duration = time.Since(start)
		return r, fmt.Errorf("stop unit %s: job %d: %w", unit, id, waitErr(ctx, wctx, nil))
	}

	fctx, fcancel := context.WithTimeout(ctx, followUpTimeout)
	defer fcancel()
	err = m.resetFailed(fctx, &r, below)
	r.Duration = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("stop unit %s: %w", unit, err)
	}
	if r.Result != JobDone {
		return r, fmt.Errorf("stop unit %s: job %d result %q: %w", unit, id, r.Result, ErrJobFailed)
	}
	return r, nil
}

// unitsBelow lists the units inside a slice, recursively (nil for other
// types). It is best effort: the list only widens the reset-failed step.
// SliceOf exists since systemd 248; older managers list the same units in
// RequiredBy.
func (m *Manager) unitsBelow(ctx context.Context, unit string) []string {
	if path.Ext(unit) != ".slice" {
		return nil
	}
	var out []string
	queue := []string{unit}
	for len(queue) > 0 && len(out) < maxUnitsBelow {
		u := queue[0]
		queue = queue[1:]
		var kids []string
		for _, prop := range []string{"SliceOf", "RequiredBy"} {
			p, err := m.conn.GetUnitPropertyContext(ctx, u, prop)
			if err != nil {
				continue
			}
			if kids, _ = p.Value.Value().([]string); kids != nil {
				break
			}
		}
		for _, k := range kids {
			out = append(out, k)
			if path.Ext(k) == ".slice" {
				queue = append(queue, k)
			}
		}
	}
	return out
}

// maxUnitsBelow caps the walk: a pod slice holds a handful of scopes.
const maxUnitsBelow = 1000

// resetFailed reads the state the job left the unit (and the units that
// were below it) in and resets every failed one.
func (m *Manager) resetFailed(ctx context.Context, r *StopResult, below []string) error {
	names := append([]string{r.Unit}, below...)
	st, err := m.conn.ListUnitsByNamesContext(ctx, names)
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	for _, s := range st {
		if s.Name == r.Unit {
			r.ActiveState = s.ActiveState
		}
		if s.ActiveState != "failed" {
			continue
		}
		if err := m.conn.ResetFailedUnitContext(ctx, s.Name); err != nil {
			// Gone in between: nothing left to reset.
			if errors.Is(mapErr(err), ErrNoSuchUnit) {
				continue
			}
			return fmt.Errorf("reset failed state of %s: %w", s.Name, err)
		}
		r.ResetFailed = append(r.ResetFailed, s.Name)
	}
	return nil
}

// waitErr tells the caller's cancellation from Stop's own timeout.
func waitErr(parent, wctx context.Context, err error) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	if wctx.Err() != nil {
		return ErrJobTimeout
	}
	return err
}

// mapErr turns systemd's NoSuchUnit D-Bus error into ErrNoSuchUnit and its
// refusal of a transaction that would cancel a queued job into
// ErrJobConflict, keeping systemd's message.
func mapErr(err error) error {
	var name string
	var de dbus.Error
	var dp *dbus.Error
	switch {
	case errors.As(err, &de):
		name = de.Name
	case errors.As(err, &dp):
		name = dp.Name
	}
	switch name {
	case "org.freedesktop.systemd1.NoSuchUnit":
		return fmt.Errorf("%w: %v", ErrNoSuchUnit, err)
	case "org.freedesktop.systemd1.TransactionIsDestructive":
		return fmt.Errorf("%w: %v", ErrJobConflict, err)
	}
	return err
}
