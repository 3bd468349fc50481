package memcg

import (
	"fmt"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/sirupsen/logrus"
)

// Health is the summary of one pass, for `scan` and the health log entry.
type Health struct {
	Time time.Time
	Mode string
	// Dying, Live: see Sample. PodDying is -1 when not known.
	Dying, Live, PodDying  int64
	LatencyP50, LatencyMax time.Duration
	LatencyCensored        bool
	Level                  Level
	Trigger                Trigger
	// Would is what act mode does on this window.
	Would Action
	// Reason says why nothing is done (or why observe mode only logs).
	Reason    Reason
	Kernel    string
	Meminfo   Meminfo
	MemoryPSI *PSI
	IOPSI     *PSI
}

// String is the one-line summary printed by `scan`.
func (h Health) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "memcg: dying=%d live=%d", h.Dying, h.Live)
	if h.PodDying >= 0 {
		fmt.Fprintf(&b, " pod-dying=%d", h.PodDying)
	}
	gte := ""
	if h.LatencyCensored {
		gte = ">="
	}
	fmt.Fprintf(&b, " latency p50=%s%s max=%s%s level=%s", gte, RoundDuration(h.LatencyP50), gte, RoundDuration(h.LatencyMax), h.Level)
	if h.Trigger != TriggerNone {
		fmt.Fprintf(&b, " trigger=%s", h.Trigger)
	}
	fmt.Fprintf(&b, " would: %s", h.Would)
	if h.Reason != ReasonNone {
		fmt.Fprintf(&b, " (%s)", h.Reason)
	}
	return b.String()
}

// RoundDuration trims a measured duration to the digits worth reading in a
// log line or report: ms above 1 s, 10 µs above 1 ms, else µs.
func RoundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Log fields not (yet) in cgroupclean/audit: the effect measured after an
// action.
const (
	FieldDyingAfter   = "MEMCG_DYING_AFTER"
	FieldLatencyAfter = "MEMCG_STAT_LATENCY_AFTER_US"
	FieldLive         = "MEMCG_LIVE"
	FieldEffect       = "MEMCG_EFFECT"
	FieldNextAllowed  = "MEMCG_NEXT_ALLOWED"
	FieldSlab         = "MEMCG_SLAB_BYTES"
	FieldPercpu       = "MEMCG_PERCPU_BYTES"
	FieldCached       = "MEMCG_CACHED_BYTES"
	FieldKernel       = "MEMCG_KERNEL"
	FieldDetail       = "MEMCG_ACTION_DETAIL"
)

// LogHealth writes the health entry of one pass: info when ok, warning
// otherwise.
func LogHealth(log logrus.FieldLogger, d Decision) {
	f := logrus.Fields{
		audit.MessageID:    audit.IDMemcgHealth,
		audit.MemcgDying:   d.Dying,
		FieldLive:          d.Live,
		audit.MemcgLatency: d.LatencyP50.Microseconds(),
		audit.Action:       string(d.Would),
		FieldSlab:          d.Meminfo.Slab,
		FieldPercpu:        d.Meminfo.Percpu,
		FieldCached:        d.Meminfo.Cached,
		FieldKernel:        d.Kernel,
	}
	if d.Trigger != TriggerNone {
		f[audit.MemcgTrigger] = string(d.Trigger)
	}
	if d.Reason != ReasonNone {
		f[audit.Reason] = string(d.Reason)
	}
	e := log.WithFields(f)
	if d.Level == LevelOK {
		e.Info(d.Health.String())
		return
	}
	e.Warn(d.Health.String())
}

// LogAction writes the journal entry of an action: its trigger values,
// what it did, how long it took and the effect measured afterwards.
func LogAction(log logrus.FieldLogger, d Decision, o Outcome, e Effect) {
	act := audit.ActionReclaim
	if o.Action == ActionDropCaches {
		act = audit.ActionDrop
	}
	effect := "no-effect"
	if e.Moved {
		effect = "moved"
	}
	f := logrus.Fields{
		audit.MessageID:    audit.IDMemcgAction,
		audit.Action:       act,
		audit.MemcgTrigger: string(d.Trigger),
		audit.MemcgDying:   e.DyingBefore,
		audit.MemcgLatency: e.LatencyBefore.Microseconds(),
		audit.MemcgFreed:   o.FreedBytes,
		audit.DurationMS:   o.Duration.Milliseconds(),
		FieldDyingAfter:    e.DyingAfter,
		FieldLatencyAfter:  e.LatencyAfter.Microseconds(),
		FieldEffect:        effect,
		FieldDetail:        o.Detail,
		FieldNextAllowed:   e.NextAllowed.Format(time.RFC3339),
	}
	if o.Target != "" {
		f[audit.CgroupPath] = o.Target
	}
	msg := fmt.Sprintf("memcg %s (%s): dying %d -> %d, latency %s -> %s, freed %d bytes in %s, %s",
		o.Action, d.Trigger, e.DyingBefore, e.DyingAfter, RoundDuration(e.LatencyBefore), RoundDuration(e.LatencyAfter), o.FreedBytes, RoundDuration(o.Duration), effect)
	if o.Err != nil {
		f[audit.Error] = o.Err.Error()
		log.WithFields(f).Error(msg)
		return
	}
	log.WithFields(f).Info(msg)
}

// LogPrevent writes the entry of step 1 for one orphan's memory cgroup.
func LogPrevent(log logrus.FieldLogger, dir string, freed int64, took time.Duration, err error) {
	f := logrus.Fields{
		audit.MessageID:    audit.IDMemcgAction,
		audit.Action:       audit.ActionReclaim,
		audit.MemcgTrigger: "prevent-on-remove",
		audit.CgroupPath:   dir,
		audit.MemcgFreed:   freed,
		audit.DurationMS:   took.Milliseconds(),
	}
	if err != nil {
		f[audit.Error] = err.Error()
		log.WithFields(f).Warnf("memcg reclaim before rmdir of %s failed after %s: %v", dir, RoundDuration(took), err)
		return
	}
	log.WithFields(f).Infof("memcg reclaim before rmdir of %s: freed %d bytes in %s", dir, freed, RoundDuration(took))
}
