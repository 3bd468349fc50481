package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
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
