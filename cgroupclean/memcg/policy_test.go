package memcg

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func smp(dying, live int64, lat time.Duration) Sample {
	return Sample{Dying: dying, Live: live, PodDying: -1, RootLatency: lat}
}

func repeat(s Sample, n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func actCfg() config.Memcg {
	c := config.DefaultMemcg()
	c.Mode = "act"
	return c
}

var (
	v1Env = Env{V2: false, PodRoot: true, Kernel: KernelVersion{Major: 6, Minor: 18}}
	v2Env = Env{V2: true, PodRoot: true, MemoryReclaim: true, Kernel: KernelVersion{Major: 6, Minor: 1}}
	// zombies slow the reads past latency_act; quietZombies are as many
	// with fast reads (kernels where the count costs memory, not latency).
	zombies      = smp(6000, 300, 3*time.Second)
	quietZombies = smp(6000, 300, 50*time.Microsecond)
)

func TestDecideLevels(t *testing.T) {
	observe := actCfg()
	observe.Mode = "observe"
	off := actCfg()
	off.Mode = "off"
	tests := []struct {
		name    string
		cfg     config.Memcg
		env     Env
		samples []Sample
		level   Level
		trigger Trigger
		action  Action
		would   Action
		reason  Reason
	}{
		{name: "healthy", cfg: actCfg(), env: v1Env, samples: repeat(smp(10, 300, 40*time.Microsecond), 5),
			level: LevelOK, action: ActionNone, would: ActionNone, reason: ReasonBelowThreshold},
		{name: "dying above warn only", cfg: actCfg(), env: v1Env, samples: repeat(smp(1500, 1000, 40*time.Microsecond), 5),
			level: LevelWarn, action: ActionNone, would: ActionNone, reason: ReasonBelowThreshold},
		{name: "one sample over act is not enough", cfg: actCfg(), env: v1Env,
			samples: []Sample{smp(10, 300, 0), smp(10, 300, 0), zombies},
			level:   LevelWarn, action: ActionNone, would: ActionNone, reason: ReasonNotConfirmed},
		{name: "two of three confirm samples", cfg: actCfg(), env: v1Env, samples: repeat(zombies, 2),
			level: LevelWarn, action: ActionNone, would: ActionNone, reason: ReasonNotConfirmed},
		{name: "confirmed dying count with slow reads, v1 without opt-in drops caches", cfg: actCfg(), env: v1Env, samples: repeat(zombies, 3),
			level: LevelAct, trigger: TriggerDyingCount, action: ActionDropCaches, would: ActionDropCaches},
		{name: "confirmed dying count with fast reads, v1 without opt-in does nothing", cfg: actCfg(), env: v1Env, samples: repeat(quietZombies, 3),
			level: LevelAct, trigger: TriggerDyingCount, action: ActionNone, would: ActionNone, reason: ReasonLatencyLow},
		{name: "dying ratio", cfg: actCfg(), env: v2Env, samples: repeat(smp(1200, 100, 0), 3),
			level: LevelAct, trigger: TriggerDyingRatio, action: ActionReclaimPodRoot, would: ActionReclaimPodRoot},
		{name: "ratio needs dying_warn", cfg: actCfg(), env: v2Env, samples: repeat(smp(900, 10, 0), 3),
			level: LevelOK, action: ActionNone, would: ActionNone, reason: ReasonBelowThreshold},
		{name: "slow reads with few zombies are contention", cfg: actCfg(), env: v1Env, samples: repeat(smp(20, 300, 3*time.Second), 5),
			level: LevelWarn, action: ActionNone, would: ActionNone, reason: ReasonContention},
		{name: "slow reads with zombies act on latency", cfg: actCfg(), env: v1Env, samples: repeat(smp(1500, 1000, 3*time.Second), 5),
			level: LevelAct, trigger: TriggerLatency, action: ActionDropCaches, would: ActionDropCaches},
		{name: "median ignores one slow read", cfg: actCfg(), env: v1Env,
			samples: []Sample{smp(1500, 1000, time.Millisecond), smp(1500, 1000, 9*time.Second), smp(1500, 1000, time.Millisecond)},
			level:   LevelWarn, action: ActionNone, would: ActionNone, reason: ReasonBelowThreshold},
		{name: "observe never acts", cfg: observe, env: v2Env, samples: repeat(zombies, 3),
			level: LevelAct, trigger: TriggerDyingCount, action: ActionNone, would: ActionReclaimPodRoot, reason: ReasonModeObserve},
		{name: "off", cfg: off, env: v2Env, samples: repeat(zombies, 3),
			level: LevelAct, trigger: TriggerDyingCount, action: ActionNone, would: ActionNone, reason: ReasonModeOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWatchdog(tt.cfg, tt.env, &fakeClock{t0})
			var d Decision
			for _, s := range tt.samples {
				d = w.Observe(s)
			}
			if d.Level != tt.level || d.Trigger != tt.trigger || d.Action != tt.action || d.Would != tt.would || d.Reason != tt.reason {
				t.Errorf("got level=%s trigger=%q action=%s would=%s reason=%q skipped=%v\nwant level=%s trigger=%q action=%s would=%s reason=%q",
					d.Level, d.Trigger, d.Action, d.Would, d.Reason, d.Skipped, tt.level, tt.trigger, tt.action, tt.would, tt.reason)
			}
		})
	}
}

func TestDecideSteps(t *testing.T) {
	v1OptIn := actCfg()
	v1OptIn.V1ForceEmptyPodRoot = true
	noDrop := actCfg()
	noDrop.DropCaches = false
	pressured := zombies
	pressured.IOPSI = &PSI{Some: PSILine{Avg10: 42}}
	calm := zombies
	calm.MemoryPSI = &PSI{Some: PSILine{Avg10: 3}}
	tests := []struct {
		name    string
		cfg     config.Memcg
		env     Env
		sample  Sample
		action  Action
		reason  Reason
		skipped []Skip
	}{
		{name: "v2 targeted reclaim first", cfg: actCfg(), env: v2Env, sample: zombies, action: ActionReclaimPodRoot},
		{name: "v2 kernel without memory.reclaim", cfg: actCfg(), env: Env{V2: true, PodRoot: true}, sample: zombies,
			action: ActionDropCaches, skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonNoMemoryReclaim}}},
		{name: "v1 has no targeted tool", cfg: actCfg(), env: v1Env, sample: zombies,
			action: ActionDropCaches, skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}}},
		{name: "v1 opt-in force_empty at pod root", cfg: v1OptIn, env: v1Env, sample: zombies, action: ActionReclaimPodRoot},
		{name: "no pod root", cfg: v1OptIn, env: Env{Kernel: v1Env.Kernel}, sample: zombies,
			action: ActionDropCaches, skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonNoPodRoot}}},
		{name: "everything off", cfg: noDrop, env: v1Env, sample: zombies, action: ActionNone, reason: ReasonDisabled,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}, {Action: ActionDropCaches, Reason: ReasonDisabled}}},
		{name: "io pressure high", cfg: actCfg(), env: v1Env, sample: pressured, action: ActionNone, reason: ReasonPressureHigh,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}, {Action: ActionDropCaches, Reason: ReasonPressureHigh}}},
		{name: "pressure low", cfg: actCfg(), env: v1Env, sample: calm, action: ActionDropCaches,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}}},
		// A count alone, reads fast: targeted reclaim where there is a tool,
		// never a global drop.
		{name: "count alone, v2: targeted reclaim", cfg: actCfg(), env: v2Env, sample: quietZombies, action: ActionReclaimPodRoot},
		{name: "count alone, v1 opt-in: force_empty at the pod root", cfg: v1OptIn, env: v1Env, sample: quietZombies, action: ActionReclaimPodRoot},
		{name: "count alone, v1 without opt-in: no drop", cfg: actCfg(), env: v1Env, sample: quietZombies, action: ActionNone, reason: ReasonLatencyLow,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}, {Action: ActionDropCaches, Reason: ReasonLatencyLow}}},
		{name: "count alone, v2 without memory.reclaim: no drop", cfg: actCfg(), env: Env{V2: true, PodRoot: true}, sample: quietZombies, action: ActionNone, reason: ReasonLatencyLow,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonNoMemoryReclaim}, {Action: ActionDropCaches, Reason: ReasonLatencyLow}}},
		{name: "ratio alone, no pod root: no drop", cfg: actCfg(), env: Env{Kernel: v1Env.Kernel}, sample: smp(1200, 100, 0), action: ActionNone, reason: ReasonLatencyLow,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonNoPodRoot}, {Action: ActionDropCaches, Reason: ReasonLatencyLow}}},
		{name: "reads just under latency_act: no drop", cfg: actCfg(), env: v1Env, sample: smp(6000, 300, actCfg().LatencyAct.Duration-time.Millisecond), action: ActionNone, reason: ReasonLatencyLow,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}, {Action: ActionDropCaches, Reason: ReasonLatencyLow}}},
		{name: "reads at latency_act: drop", cfg: actCfg(), env: v1Env, sample: smp(6000, 300, actCfg().LatencyAct.Duration), action: ActionDropCaches,
			skipped: []Skip{{Action: ActionReclaimPodRoot, Reason: ReasonV1NoTargeted}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWatchdog(tt.cfg, tt.env, &fakeClock{t0})
			var d Decision
			for range 3 {
				d = w.Observe(tt.sample)
			}
			if d.Action != tt.action || d.Reason != tt.reason || !sameSkips(d.Skipped, tt.skipped) {
				t.Errorf("got action=%s reason=%q skipped=%v, want %s %q %v", d.Action, d.Reason, d.Skipped, tt.action, tt.reason, tt.skipped)
			}
		})
	}
}

func sameSkips(a, b []Skip) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Action != b[i].Action || a[i].Reason != b[i].Reason {
			return false
		}
	}
	return true
}

// step is one pass of a scenario: advance the clock, observe, check, and
// (when the watchdog acts) record an outcome with a sample taken after.
type step struct {
	advance time.Duration
	sample  Sample
	action  Action
	reason  Reason // a step skipped for this reason

	until time.Duration
	after *Sample // effect sample when acting
	err   error
}

func runScenario(t *testing.T, cfg config.Memcg, env Env, steps []step) {
	t.Helper()
	clk := &fakeClock{t0}
	w := NewWatchdog(cfg, env, clk)
	var elapsed time.Duration
	for i, st := range steps {
		clk.Advance(st.advance)
		elapsed += st.advance
		d := w.Observe(st.sample)
		if d.Action != st.action {
			t.Fatalf("step %d (+%s): action %s, want %s (reason %q, skipped %v)", i, elapsed, d.Action, st.action, d.Reason, d.Skipped)
		}
		if st.reason != ReasonNone {
			k := slices.IndexFunc(d.Skipped, func(s Skip) bool { return s.Reason == st.reason })
			if k < 0 {
				t.Fatalf("step %d (+%s): skipped %v, want reason %q", i, elapsed, d.Skipped, st.reason)
			}
			if st.until != 0 {
				if got := d.Skipped[k].Until; !got.Equal(t0.Add(st.until)) {
					t.Fatalf("step %d: until %s, want t0+%s", i, got.Sub(t0), st.until)
				}
			}
		}
		if d.Action != ActionNone {
			after := st.sample
			if st.after != nil {
				after = *st.after
			}
			w.Record(d, Outcome{Action: d.Action, Err: st.err}, after)
		}
	}
}

func scenarioCfg() config.Memcg {
	c := actCfg()
	c.Window, c.ConfirmSamples = 3, 1
	c.DropCachesCooldown = config.Duration{Duration: time.Hour}
	c.DropCachesDailyCap = 2
	c.ReclaimCooldown = config.Duration{Duration: 15 * time.Minute}
	c.BackoffMax = config.Duration{Duration: time.Hour}
	return c
}

func TestDropCachesCooldownAndDailyCap(t *testing.T) {
	healed := smp(100, 300, 0)
	runScenario(t, scenarioCfg(), v1Env, []step{
		{sample: zombies, action: ActionDropCaches, reason: ReasonV1NoTargeted, after: &healed},
		{advance: 30 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonCooldown, until: time.Hour},
		{advance: 30 * time.Minute, sample: zombies, action: ActionDropCaches, after: &healed},
		{advance: 2 * time.Hour, sample: zombies, action: ActionNone, reason: ReasonDailyCap, until: 24 * time.Hour},
		{advance: 20 * time.Hour, sample: zombies, action: ActionNone, reason: ReasonDailyCap, until: 24 * time.Hour},
		{advance: 2 * time.Hour, sample: zombies, action: ActionDropCaches, after: &healed},
	})
}

func TestBackoffWhenSignalDoesNotMove(t *testing.T) {
	cfg := scenarioCfg()
	cfg.DropCaches = false // watch step 2 alone
	healed := smp(100, 300, 0)
	runScenario(t, cfg, v2Env, []step{
		// Does not move: wait 2 x 15m.
		{sample: zombies, action: ActionReclaimPodRoot},
		{advance: 20 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonBackoff, until: 30 * time.Minute},
		// Fails again at +30m: wait 4 x 15m = 1h (backoff_max).
		{advance: 10 * time.Minute, sample: zombies, action: ActionReclaimPodRoot},
		{advance: 59 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonBackoff, until: 90 * time.Minute},
		// Third failure: capped at backoff_max (1h), not 2h.
		{advance: time.Minute, sample: zombies, action: ActionReclaimPodRoot, err: errors.New("EBUSY")},
		{advance: 59 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonBackoff, until: 150 * time.Minute},
		// Works: the backoff resets to the plain cooldown.
		{advance: time.Minute, sample: zombies, action: ActionReclaimPodRoot, after: &healed},
		{advance: 14 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonCooldown, until: 165 * time.Minute},
		{advance: time.Minute, sample: zombies, action: ActionReclaimPodRoot, after: &healed},
	})
}

func TestEscalatesWhenTargetedReclaimBacksOff(t *testing.T) {
	healed := smp(100, 300, 0)
	runScenario(t, scenarioCfg(), v2Env, []step{
		{sample: zombies, action: ActionReclaimPodRoot},
		// Step 2 backs off; step 3 is next in order of harm.
		{advance: 5 * time.Minute, sample: zombies, action: ActionDropCaches, after: &healed},
		// Both waiting: the last resort's reason decides.
		{advance: 5 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonCooldown},
	})
}

// A count alone never escalates to a global drop, however long targeted
// reclaim backs off; once the reads turn slow, the drop is allowed.
func TestCountAloneDoesNotEscalate(t *testing.T) {
	runScenario(t, scenarioCfg(), v2Env, []step{
		{sample: quietZombies, action: ActionReclaimPodRoot},
		{advance: 5 * time.Minute, sample: quietZombies, action: ActionNone, reason: ReasonLatencyLow},
		{advance: 5 * time.Minute, sample: quietZombies, action: ActionNone, reason: ReasonBackoff},
		// The window's median turns slow on the second slow sample.
		{advance: 5 * time.Minute, sample: zombies, action: ActionNone, reason: ReasonLatencyLow},
		{advance: time.Minute, sample: zombies, action: ActionDropCaches},
	})
}

func TestDropValue(t *testing.T) {
	tests := []struct {
		kernel KernelVersion
		cfg    int
		want   int
	}{
		{KernelVersion{Major: 6, Minor: 18}, 0, 1},
		{KernelVersion{Major: 5, Minor: 9}, 0, 1},
		{KernelVersion{Major: 5, Minor: 8}, 0, 2},
		{KernelVersion{Major: 4, Minor: 18}, 0, 2},
		{KernelVersion{Major: 6, Minor: 18}, 3, 3},
	}
	for _, tt := range tests {
		cfg := actCfg()
		cfg.DropCachesValue = tt.cfg
		w := NewWatchdog(cfg, Env{Kernel: tt.kernel}, &fakeClock{t0})
		if got := w.DropValue(); got != tt.want {
			t.Errorf("kernel %s value %d: got %d, want %d", tt.kernel, tt.cfg, got, tt.want)
		}
	}
}

func TestPreventOnRemove(t *testing.T) {
	tests := []struct {
		mode    string
		enabled bool
		want    bool
		reason  Reason
	}{
		{"act", true, true, ReasonNone},
		{"act", false, false, ReasonDisabled},
		{"observe", true, false, ReasonModeObserve},
		{"off", true, false, ReasonModeOff},
	}
	for _, tt := range tests {
		cfg := actCfg()
		cfg.Mode, cfg.PreventOnRemove = tt.mode, tt.enabled
		ok, r := NewWatchdog(cfg, v1Env, &fakeClock{t0}).PreventOnRemove()
		if ok != tt.want || r != tt.reason {
			t.Errorf("mode %s enabled %v: got %v %q", tt.mode, tt.enabled, ok, r)
		}
	}
}

func TestRecordEffect(t *testing.T) {
	tests := []struct {
		name    string
		trigger []Sample
		after   Sample
		moved   bool
	}{
		{name: "dying fell", trigger: repeat(zombies, 3), after: smp(5000, 300, 0), moved: true},
		{name: "dying fell by less than min_effect", trigger: repeat(zombies, 3), after: smp(5800, 300, 0), moved: false},
		{name: "latency trigger, latency fell", trigger: repeat(smp(1500, 1000, 3*time.Second), 3), after: smp(1500, 1000, time.Millisecond), moved: true},
		{name: "latency trigger, nothing fell", trigger: repeat(smp(1500, 1000, 3*time.Second), 3), after: smp(1500, 1000, 3*time.Second), moved: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t0}
			w := NewWatchdog(actCfg(), v2Env, clk)
			var d Decision
			for _, s := range tt.trigger {
				d = w.Observe(s)
			}
			if d.Action == ActionNone {
				t.Fatalf("no action: %+v", d)
			}
			e := w.Record(d, Outcome{Action: d.Action, FreedBytes: 4096}, tt.after)
			if e.Moved != tt.moved || e.DyingBefore != d.Dying || e.DyingAfter != tt.after.Dying || e.FreedBytes != 4096 {
				t.Errorf("effect %+v, want moved=%v", e, tt.moved)
			}
			wantNext := t0.Add(15 * time.Minute)
			if !tt.moved {
				wantNext = t0.Add(30 * time.Minute)
			}
			if !e.NextAllowed.Equal(wantNext) {
				t.Errorf("next allowed t0+%s, want t0+%s", e.NextAllowed.Sub(t0), wantNext.Sub(t0))
			}
		})
	}
}

func TestHealthString(t *testing.T) {
	cfg := actCfg()
	cfg.Mode = "observe"
	w := NewWatchdog(cfg, v2Env, &fakeClock{t0})
	var d Decision
	for _, lat := range []time.Duration{40 * time.Microsecond, 46 * time.Microsecond, 9 * time.Millisecond} {
		s := zombies
		s.RootLatency, s.PodDying = lat, 5900
		d = w.Observe(s)
	}
	got := d.Health.String()
	want := "memcg: dying=6000 live=300 pod-dying=5900 latency p50=46µs max=9ms level=act trigger=dying-count would: reclaim-pod-root (mode-observe)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if s := NewWatchdog(cfg, v2Env, &fakeClock{t0}).Decide().String(); !strings.Contains(s, "(no-samples)") {
		t.Errorf("empty watchdog: %s", s)
	}
}
