package memcg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dropOnce makes a fresh watchdog decide drop_caches and records it as a
// run that did not move the signal (so a backoff is in force too).
func dropOnce(t *testing.T, w *Watchdog) {
	t.Helper()
	var d Decision
	for _, s := range repeat(zombies, 3) {
		d = w.Observe(s)
	}
	if d.Action != ActionDropCaches {
		t.Fatalf("decision %+v, want drop-caches", d)
	}
	w.Record(d, Outcome{Action: ActionDropCaches}, zombies)
}

// dropGate says why the drop step is skipped now (ReasonNone: it would run).
func dropGate(t *testing.T, w *Watchdog) Reason {
	t.Helper()
	var d Decision
	for _, s := range repeat(zombies, 3) {
		d = w.Observe(s)
	}
	if d.Action == ActionDropCaches {
		return ReasonNone
	}
	for _, sk := range d.Skipped {
		if sk.Action == ActionDropCaches {
			return sk.Reason
		}
	}
	t.Fatalf("decision %+v names no drop-caches skip", d)
	return ""
}

// A restart (a new watchdog on the same state dir) keeps the cooldown,
// the backoff and the daily cap of the one before.
func TestLimitsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{t: t0}
	w1 := NewWatchdog(actCfg(), v1Env, clk)
	dropOnce(t, w1)
	if err := w1.SaveLimits(dir); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	fresh := NewWatchdog(actCfg(), v1Env, clk)
	if r := dropGate(t, fresh); r != ReasonNone {
		t.Fatalf("without the file a fresh watchdog is gated by %s: the test proves nothing", r)
	}
	w2 := NewWatchdog(actCfg(), v1Env, clk)
	if err := w2.LoadLimits(dir); err != nil {
		t.Fatal(err)
	}
	if r := dropGate(t, w2); r != ReasonBackoff {
		t.Fatalf("after a restart: %s, want %s", r, ReasonBackoff)
	}
	// Past the doubled cooldown it may run again, from the restored state.
	clk.Advance(2 * actCfg().DropCachesCooldown.Duration)
	if r := dropGate(t, w2); r != ReasonNone {
		t.Fatalf("after the backoff: %s", r)
	}
	// The daily cap counts runs from before the restart.
	cfg := actCfg()
	cfg.DropCachesDailyCap = 1
	w3 := NewWatchdog(cfg, v1Env, clk)
	if err := w3.LoadLimits(dir); err != nil {
		t.Fatal(err)
	}
	if r := dropGate(t, w3); r != ReasonDailyCap {
		t.Fatalf("daily cap after a restart: %s", r)
	}
	// No temporary file is left beside it.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != LimitsFile {
		t.Errorf("state dir holds %v", ents)
	}
}

// A file that cannot be trusted is not used, and the watchdog then acts
// as if every step had just run: nothing happens before a cooldown.
func TestLimitsUnusableFileKeepsLimitsInForce(t *testing.T) {
	future := t0.Add(48 * time.Hour).Format(time.RFC3339)
	for name, content := range map[string]string{
		"not json":        "{\"version\": 1, \"steps\": {",
		"empty":           "",
		"other version":   `{"version": 2, "saved": "2025-03-01T11:00:00Z", "steps": {}}`,
		"saved in future": `{"version": 1, "saved": "` + future + `", "steps": {}}`,
		"run in future":   `{"version": 1, "saved": "2025-03-01T11:00:00Z", "steps": {"drop-caches": {"last": "` + future + `", "failures": 0}}}`,
		"negative":        `{"version": 1, "saved": "2025-03-01T11:00:00Z", "steps": {"drop-caches": {"failures": -1}}}`,
		"unknown step":    `{"version": 1, "saved": "2025-03-01T11:00:00Z", "steps": {"reboot": {"failures": 0}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, LimitsFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{t: t0}
			w := NewWatchdog(actCfg(), v2Env, clk)
			err := w.LoadLimits(dir)
			if !errors.Is(err, ErrLimitsUnusable) || !strings.Contains(err.Error(), LimitsFile) {
				t.Fatalf("LoadLimits: %v, want ErrLimitsUnusable naming the file", err)
			}
			t.Logf("%v", err)
			var d Decision
			for _, s := range repeat(smp(1200, 100, 3*time.Second), 3) {
				d = w.Observe(s)
			}
			if d.Action != ActionNone || len(d.Skipped) != 2 || d.Skipped[0].Reason != ReasonCooldown || d.Skipped[1].Reason != ReasonCooldown {
				t.Fatalf("decision %+v, want both steps in cooldown", d)
			}
			clk.Advance(actCfg().ReclaimCooldown.Duration)
			if d = w.Decide(); d.Action != ActionReclaimPodRoot {
				t.Fatalf("after the cooldown: %+v", d)
			}
		})
	}
}

// A missing file is a first start; a monitor rebuilt on reload takes the
// limits over (CopyLimits).
func TestLimitsMissingFileAndCopy(t *testing.T) {
	clk := &fakeClock{t: t0}
	w := NewWatchdog(actCfg(), v1Env, clk)
	if err := w.LoadLimits(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	dropOnce(t, w)
	cfg := actCfg()
	cfg.DyingWarn = 900 // a reload with other settings
	w2 := NewWatchdog(cfg, v1Env, clk)
	w2.CopyLimits(w)
	if r := dropGate(t, w2); r != ReasonBackoff {
		t.Fatalf("after the copy: %s", r)
	}
}
