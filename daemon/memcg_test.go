package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// TestMemcgLoopProbesThisMachine runs the watchdog loop on this machine's
// real memory controller in observe mode: it must log a health entry every
// probe_interval, never act, and stop with its context.
func TestMemcgLoopProbesThisMachine(t *testing.T) {
	testbed.RequireRoot(t)
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	cfg := config.Default()
	cfg.Memcg.ProbeInterval = config.Duration{Duration: 30 * time.Millisecond}
	m := NewMemcgLoop(log)
	m.Configure(context.Background(), cfg, 1)
	if m.BeforeRemove() != nil {
		t.Fatal("observe mode must not reclaim before removal")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	count := func(id string) int {
		n := 0
		for _, e := range hook.AllEntries() {
			if e.Data[audit.MessageID] == id {
				n++
			}
		}
		return n
	}
	// A probe walks the memory hierarchy: on a busy machine a tick takes
	// longer than the interval, so wait for three ticks, not a fixed time.
	for deadline := time.Now().Add(20 * time.Second); count(audit.IDMemcgHealth) < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
	health, actions := 0, 0
	for _, e := range hook.AllEntries() {
		switch e.Data[audit.MessageID] {
		case audit.IDMemcgHealth:
			health++
			if _, ok := e.Data[audit.MemcgDying]; !ok {
				t.Fatalf("health entry without %s: %v", audit.MemcgDying, e.Data)
			}
		case audit.IDMemcgAction:
			actions++
		}
	}
	if health < 3 {
		t.Fatalf("%d health entries, want at least 3", health)
	}
	if actions != 0 {
		t.Fatalf("observe mode acted %d times", actions)
	}

	// act mode turns step 1 on; off drops the monitor.
	cfg.Memcg.Mode = "act"
	m.Configure(context.Background(), cfg, 2)
	if m.BeforeRemove() == nil {
		t.Fatal("act mode with prevent_on_remove must give a hook")
	}
	cfg.Memcg.Mode = "off"
	m.Configure(context.Background(), cfg, 3)
	if m.BeforeRemove() != nil || m.mon != nil {
		t.Fatal("mode off must drop the monitor")
	}
}

// dropSkip is why the loop's watchdog would not drop caches now, on an
// act-level window of samples ("" when it would).
func dropSkip(t *testing.T, m *MemcgLoop) memcg.Reason {
	t.Helper()
	m.mu.Lock()
	mon := m.mon
	m.mu.Unlock()
	if mon == nil {
		t.Fatal("no monitor")
	}
	var d memcg.Decision
	for range 3 {
		// Slow reads: a count alone never drops caches.
		d = mon.Watchdog.Observe(memcg.Sample{Dying: 6000, Live: 300, PodDying: -1, RootLatency: 3 * time.Second})
	}
	for _, s := range d.Skipped {
		if s.Action == memcg.ActionDropCaches {
			return s.Reason
		}
	}
	if d.Would != memcg.ActionDropCaches {
		t.Fatalf("decision %+v", d)
	}
	return ""
}

// The drop_caches cooldown of a daemon before this one (its state file)
// holds after a restart and after a reload that rebuilds the monitor; a
// corrupt file keeps every step in cooldown and is replaced.
func TestMemcgLimitsKeptOverRestartAndReload(t *testing.T) {
	testbed.RequireRoot(t)
	log, hook := test.NewNullLogger()
	cfg := config.Default()
	cfg.Memcg.Mode = "act"
	dir := t.TempDir()

	// Without a file the drop would run: the test can tell.
	fresh := NewMemcgLoop(log)
	fresh.StateDir = t.TempDir()
	fresh.Configure(context.Background(), cfg, 0)
	if r := dropSkip(t, fresh); r != "" {
		t.Fatalf("a fresh watchdog skips the drop (%s): the test proves nothing", r)
	}

	// The previous daemon dropped caches a minute ago.
	prev := memcg.NewWatchdog(cfg.Memcg, memcg.Env{}, memcg.SystemClock{})
	prev.Record(memcg.Decision{}, memcg.Outcome{Action: memcg.ActionDropCaches}, memcg.Sample{})
	if err := prev.SaveLimits(dir); err != nil {
		t.Fatal(err)
	}
	m := NewMemcgLoop(log)
	m.StateDir = dir
	m.Configure(context.Background(), cfg, 0)
	if r := dropSkip(t, m); r != memcg.ReasonBackoff {
		t.Fatalf("after a restart: %q, want %s", r, memcg.ReasonBackoff)
	}
	reloaded := cfg
	reloaded.Memcg.DyingWarn = 900
	m.Configure(context.Background(), reloaded, 1)
	if r := dropSkip(t, m); r != memcg.ReasonBackoff {
		t.Fatalf("after a reload: %q, want %s", r, memcg.ReasonBackoff)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, memcg.LimitsFile), []byte("{garbage"), 0o600))
	c := NewMemcgLoop(log)
	c.StateDir = dir
	c.Configure(context.Background(), cfg, 0)
	if r := dropSkip(t, c); r != memcg.ReasonCooldown {
		t.Fatalf("with a corrupt file: %q, want %s", r, memcg.ReasonCooldown)
	}
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && strings.Contains(e.Message, "memcg limits file not used"))
	}
	if !warned {
		t.Error("the corrupt file was not reported")
	}
	w := memcg.NewWatchdog(cfg.Memcg, memcg.Env{}, memcg.SystemClock{})
	if err := w.LoadLimits(dir); err != nil {
		t.Errorf("the corrupt file was not replaced by a good one: %v", err)
	}
}
