package memcg

import (
	"slices"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

// Action is what the watchdog does in one pass (step 1, prevention, runs at
// removal time instead: see Watchdog.PreventOnRemove).
type Action string

// Actions, in order of least harm.
const (
	ActionNone Action = "none"
	// ActionReclaimPodRoot is step 2: v2 memory.reclaim at the pod root,
	// or v1 memory.force_empty there when the operator opted in.
	ActionReclaimPodRoot Action = "reclaim-pod-root"
	// ActionDropCaches is step 3: a global write to drop_caches, only when
	// memory.stat reads are slow (latency_act), never on a count alone.
	ActionDropCaches Action = "drop-caches"
)

// Reason names why the watchdog did not act (or not with a given step).
// It is a log field and a metric label, so values never change.
type Reason string

// Reasons.
const (
	ReasonNone            Reason = ""
	ReasonModeOff         Reason = "mode-off"
	ReasonModeObserve     Reason = "mode-observe"
	ReasonBelowThreshold  Reason = "below-threshold"
	ReasonNotConfirmed    Reason = "not-confirmed"
	ReasonContention      Reason = "contention-not-zombies"
	ReasonCooldown        Reason = "cooldown"
	ReasonDailyCap        Reason = "daily-cap"
	ReasonBackoff         Reason = "backoff"
	ReasonPressureHigh    Reason = "pressure-high"
	ReasonV1NoTargeted    Reason = "v1-no-targeted-tool"
	ReasonNoPodRoot       Reason = "no-pod-root"
	ReasonNoMemoryReclaim Reason = "no-memory-reclaim"
	ReasonDisabled        Reason = "disabled"
	ReasonNoSamples       Reason = "no-samples"
	// ReasonLatencyLow: a global drop needs slow memory.stat reads; a
	// dying count alone may only trigger targeted reclaim.
	ReasonLatencyLow Reason = "latency-below-act"
)

// Trigger names the signal that crossed its act threshold.
type Trigger string

// Triggers.
const (
	TriggerNone       Trigger = ""
	TriggerDyingCount Trigger = "dying-count"
	TriggerDyingRatio Trigger = "dying-ratio"
	TriggerLatency    Trigger = "latency"
)

// Level is the health level.
type Level string

// Levels.
const (
	LevelOK   Level = "ok"
	LevelWarn Level = "warn"
	LevelAct  Level = "act"
)

// Clock is injected so tests drive cooldowns and caps.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Env is what the node offers, found once at start.
type Env struct {
	V2 bool
	// PodRoot is true when a pod root is known (step 2 has a target).
	PodRoot bool
	// MemoryReclaim is true when the pod root has memory.reclaim (v2,
	// kernel 5.19+).
	MemoryReclaim bool
	Kernel        KernelVersion
}

// Skip is one step the watchdog did not take, and why.
type Skip struct {
	Action Action
	Reason Reason
	// Until is when the step can run again (cooldown, backoff, cap), zero
	// when the reason is not about time.
	Until time.Time
}

// Decision is the outcome of one pass: what to do and the values behind
// it. Action is ActionNone unless mode is act; Would is what act mode would
// do, so observe mode and `scan` can say it.
type Decision struct {
	Health
	Action Action
	// DropValue is the value to write to drop_caches.
	DropValue int
	Skipped   []Skip
}

// Watchdog is the pure decision: samples, config and clock in, decision
// out. It keeps the sample window and the action history; it touches no
// file. Not safe for concurrent use.
type Watchdog struct {
	cfg   config.Memcg
	env   Env
	clock Clock

	samples []Sample
	steps   map[Action]*stepState
}

type stepState struct {
	last     time.Time
	failures int         // consecutive runs that did not move the signal
	runs     []time.Time // for the daily cap
}

// NewWatchdog returns a watchdog with no history.
func NewWatchdog(cfg config.Memcg, env Env, clock Clock) *Watchdog {
	return &Watchdog{cfg: cfg, env: env, clock: clock, steps: map[Action]*stepState{
		ActionReclaimPodRoot: {}, ActionDropCaches: {},
	}}
}

// PreventOnRemove reports whether step 1 runs: the caller reclaims an
// orphan's memory cgroup (PreventZombie) before its rmdir. It is cheap and
// touches only a cgroup about to be removed, so it needs no threshold.
func (w *Watchdog) PreventOnRemove() (bool, Reason) {
	switch {
	case w.cfg.Mode == "off":
		return false, ReasonModeOff
	case w.cfg.Mode != "act":
		return false, ReasonModeObserve
	case !w.cfg.PreventOnRemove:
		return false, ReasonDisabled
	}
	return true, ReasonNone
}

// DropValue is the drop_caches value used: the configured one, or 1 on
// 5.9+ (page cache pins zombies there) and 2 before (slab pinned them).
func (w *Watchdog) DropValue() int {
	if w.cfg.DropCachesValue != 0 {
		return w.cfg.DropCachesValue
	}
	if w.env.Kernel.AtLeast(5, 9) {
		return 1
	}
	return 2
}

// Observe adds a sample to the window and decides.
func (w *Watchdog) Observe(s Sample) Decision {
	w.samples = append(w.samples, s)
	if n := len(w.samples) - w.cfg.Window; n > 0 {
		w.samples = slices.Delete(w.samples, 0, n)
	}
	return w.Decide()
}

// Decide decides on the current window without adding a sample.
func (w *Watchdog) Decide() Decision {
	now := w.clock.Now()
	d := Decision{Health: w.health(now), Action: ActionNone, DropValue: w.DropValue()}
	if w.cfg.Mode == "off" {
		d.Reason = ReasonModeOff
		return d
	}
	if d.Level != LevelAct {
		return d
	}
	for _, a := range []Action{ActionReclaimPodRoot, ActionDropCaches} {
		if r, until := w.gate(a, now, d.Health); r != ReasonNone {
			d.Skipped = append(d.Skipped, Skip{Action: a, Reason: r, Until: until})
			continue
		}
		d.Would = a
		break
	}
	switch {
	case d.Would == ActionNone:
		// The last resort's reason is the one that decided.
		d.Reason = d.Skipped[len(d.Skipped)-1].Reason
	case w.cfg.Mode != "act":
		d.Reason = ReasonModeObserve
	default:
		d.Action = d.Would
	}
	return d
}

// health classifies the window.
func (w *Watchdog) health(now time.Time) Health {
	h := Health{Time: now, Mode: w.cfg.Mode, Level: LevelOK, Would: ActionNone, Kernel: w.env.Kernel.String(), PodDying: -1}
	if len(w.samples) == 0 {
		h.Reason = ReasonNoSamples
		return h
	}
	last := w.samples[len(w.samples)-1]
	h.Dying, h.Live, h.PodDying = last.Dying, last.Live, last.PodDying
	h.Meminfo, h.MemoryPSI, h.IOPSI = last.Meminfo, last.MemoryPSI, last.IOPSI
	lat := make([]time.Duration, 0, len(w.samples))
	for _, s := range w.samples {
		lat = append(lat, s.Latency())
		h.LatencyCensored = h.LatencyCensored || s.LatencyCensored
	}
	slices.Sort(lat)
	h.LatencyP50, h.LatencyMax = median(lat), lat[len(lat)-1]

	// Confirmed: every one of the last ConfirmSamples samples crossed.
	confirmed := len(w.samples) >= w.cfg.ConfirmSamples
	minDying := last.Dying
	for _, s := range w.samples[max(0, len(w.samples)-w.cfg.ConfirmSamples):] {
		minDying = min(minDying, s.Dying)
	}
	ratioCrossed := func(dying, live int64) bool {
		return w.cfg.DyingRatioAct > 0 && dying >= int64(w.cfg.DyingWarn) && float64(dying) >= w.cfg.DyingRatioAct*float64(max(live, 1))
	}
	dyingWarn := last.Dying >= int64(w.cfg.DyingWarn)
	dyingAct := last.Dying >= int64(w.cfg.DyingAct) || ratioCrossed(last.Dying, last.Live)
	latWarn := h.LatencyP50 >= w.cfg.LatencyWarn.Duration
	latAct := h.LatencyP50 >= w.cfg.LatencyAct.Duration

	switch {
	case dyingAct || (latAct && dyingWarn):
		if !confirmed || minDying < int64(w.cfg.DyingWarn) {
			h.Level, h.Reason = LevelWarn, ReasonNotConfirmed
			return h
		}
		switch {
		case minDying >= int64(w.cfg.DyingAct):
			h.Trigger = TriggerDyingCount
		case ratioCrossed(minDying, last.Live):
			h.Trigger = TriggerDyingRatio
		case latAct:
			h.Trigger = TriggerLatency
		default:
			h.Level, h.Reason = LevelWarn, ReasonNotConfirmed
			return h
		}
		h.Level = LevelAct
	case latWarn && !dyingWarn:
		// Slow reads with few zombies: stats-flush contention on 5.2+
		// kernels. Dropping caches would not help.
		h.Level, h.Reason = LevelWarn, ReasonContention
	case latWarn || dyingWarn:
		h.Level, h.Reason = LevelWarn, ReasonBelowThreshold
	default:
		h.Reason = ReasonBelowThreshold
	}
	return h
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// gate runs one step's checks in order; the first "no" is its reason.
func (w *Watchdog) gate(a Action, now time.Time, h Health) (Reason, time.Time) {
	st := w.steps[a]
	switch a {
	case ActionReclaimPodRoot:
		switch {
		case !w.cfg.ReclaimPodRoot:
			return ReasonDisabled, time.Time{}
		case !w.env.PodRoot:
			return ReasonNoPodRoot, time.Time{}
		case !w.env.V2 && !w.cfg.V1ForceEmptyPodRoot:
			return ReasonV1NoTargeted, time.Time{}
		case w.env.V2 && !w.env.MemoryReclaim:
			return ReasonNoMemoryReclaim, time.Time{}
		}
		return w.timeGate(st, w.cfg.ReclaimCooldown.Duration, now)
	case ActionDropCaches:
		if !w.cfg.DropCaches {
			return ReasonDisabled, time.Time{}
		}
		// Zombies that do not slow the reads cost kernel memory, not
		// latency: not worth emptying every cache on the node.
		if h.LatencyP50 < w.cfg.LatencyAct.Duration {
			return ReasonLatencyLow, time.Time{}
		}
		st.runs = slices.DeleteFunc(st.runs, func(t time.Time) bool { return !t.After(now.Add(-24 * time.Hour)) })
		if len(st.runs) >= w.cfg.DropCachesDailyCap {
			until := now
			if len(st.runs) > 0 {
				until = st.runs[0].Add(24 * time.Hour)
			}
			return ReasonDailyCap, until
		}
		if r, until := w.timeGate(st, w.cfg.DropCachesCooldown.Duration, now); r != ReasonNone {
			return r, until
		}
		if w.pressureHigh() {
			return ReasonPressureHigh, time.Time{}
		}
	}
	return ReasonNone, time.Time{}
}

// timeGate applies the cooldown, doubled for every run in a row that did
// not move the signal, capped at backoff_max.
func (w *Watchdog) timeGate(st *stepState, cooldown time.Duration, now time.Time) (Reason, time.Time) {
	if st.last.IsZero() {
		return ReasonNone, time.Time{}
	}
	wait := backoff(cooldown, st.failures, w.cfg.BackoffMax.Duration)
	until := st.last.Add(wait)
	if now.Before(until) {
		if st.failures > 0 {
			return ReasonBackoff, until
		}
		return ReasonCooldown, until
	}
	return ReasonNone, time.Time{}
}

func backoff(base time.Duration, failures int, maxWait time.Duration) time.Duration {
	wait := base
	for i := 0; i < failures && wait < maxWait; i++ {
		wait *= 2
	}
	return max(base, min(wait, maxWait))
}

// pressureHigh: memory or IO "some" avg10 above pressure_max. Without PSI
// the gate is open: the cooldown and the daily cap still hold.
func (w *Watchdog) pressureHigh() bool {
	if len(w.samples) == 0 {
		return false
	}
	s := w.samples[len(w.samples)-1]
	for _, p := range []*PSI{s.MemoryPSI, s.IOPSI} {
		if p != nil && p.Some.Avg10 > w.cfg.PressureMax {
			return true
		}
	}
	return false
}

// Effect is an action's measured result.
type Effect struct {
	DyingBefore, DyingAfter     int64
	LatencyBefore, LatencyAfter time.Duration
	FreedBytes                  int64
	// Moved is true when the signal that triggered fell by min_effect.
	Moved bool
	// NextAllowed is when the step may run again.
	NextAllowed time.Time
}

// Record notes that d's action ran with outcome o, and measures its effect
// on a sample taken after it. An action that failed or did not move the
// signal backs off exponentially; one that moved it resets the backoff.
func (w *Watchdog) Record(d Decision, o Outcome, after Sample) Effect {
	now := w.clock.Now()
	e := Effect{
		DyingBefore: d.Dying, DyingAfter: after.Dying,
		LatencyBefore: d.LatencyP50, LatencyAfter: after.Latency(),
		FreedBytes: o.FreedBytes,
	}
	keep := 1 - w.cfg.MinEffect
	dyingMoved := float64(after.Dying) <= float64(d.Dying)*keep && after.Dying < d.Dying
	latMoved := float64(after.Latency()) <= float64(d.LatencyP50)*keep
	switch d.Trigger {
	case TriggerLatency:
		e.Moved = latMoved || dyingMoved
	default:
		e.Moved = dyingMoved
	}
	if o.Err != nil && o.FreedBytes == 0 {
		e.Moved = false
	}
	st, ok := w.steps[o.Action]
	if !ok {
		return e
	}
	st.last = now
	if o.Action == ActionDropCaches {
		st.runs = append(st.runs, now)
	}
	if e.Moved {
		st.failures = 0
	} else {
		st.failures++
	}
	cooldown := w.cfg.ReclaimCooldown.Duration
	if o.Action == ActionDropCaches {
		cooldown = w.cfg.DropCachesCooldown.Duration
	}
	e.NextAllowed = now.Add(backoff(cooldown, st.failures, w.cfg.BackoffMax.Duration))
	// A sample taken after the action replaces the window's view of it.
	w.samples = append(w.samples, after)
	if n := len(w.samples) - w.cfg.Window; n > 0 {
		w.samples = slices.Delete(w.samples, 0, n)
	}
	return e
}
