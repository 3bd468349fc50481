package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/sirupsen/logrus"
)

// fakeClock moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // closed and replaced on every After
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitTimers blocks until n timers are pending (real time bound).
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		got, ch := len(c.waiters), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited for %d timers, have %d", n, got)
		}
	}
}

// fakeNotifier records sd_notify states.
type fakeNotifier struct{ ch chan string }

func (n *fakeNotifier) Notify(s string) error { n.ch <- s; return nil }

// next returns the next state that is not a watchdog ping.
func (n *fakeNotifier) next(t *testing.T) string {
	t.Helper()
	for {
		select {
		case s := <-n.ch:
			if s != "WATCHDOG=1" {
				return s
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no sd_notify state within 5s")
		}
	}
}

type passCall struct {
	cfg       config.Config
	n         uint64
	sightings map[string]int
	at        time.Time
}

type harness struct {
	d      *Daemon
	clock  *fakeClock
	notes  *fakeNotifier
	calls  chan passCall
	hup    chan os.Signal
	log    *bytes.Buffer
	cancel context.CancelFunc
	done   chan error
}

func testConfig(interval time.Duration, jitter float64) config.Config {
	c := config.Default()
	c.Daemon.Interval = config.Duration{Duration: interval}
	c.Daemon.Jitter = jitter
	return c
}

// start runs a daemon whose passes are pass (which records its calls).
func start(t *testing.T, cfg config.Config, watchdog time.Duration, pass PassFunc, load func() (config.Config, error)) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(), notes: &fakeNotifier{ch: make(chan string, 100)}, calls: make(chan passCall, 100),
		hup: make(chan os.Signal, 1), log: &bytes.Buffer{}, done: make(chan error, 1)}
	l := logrus.New()
	l.SetOutput(&syncWriter{w: h.log})
	l.SetLevel(logrus.DebugLevel)
	h.d = New(cfg, load, l)
	h.d.Clock, h.d.Notifier, h.d.Watchdog, h.d.Reload = h.clock, h.notes, watchdog, h.hup
	h.d.Rand = func() float64 { return 1 } // the longest delay: interval*(1+jitter)
	h.d.Pass = func(ctx context.Context, c config.Config, n uint64, s map[string]int, stage func(string)) PassResult {
		h.calls <- passCall{cfg: c, n: n, sightings: s, at: h.clock.Now()}
		return pass(ctx, c, n, s, stage)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) call(t *testing.T) passCall {
	t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no pass within 5s")
	}
	return passCall{}
}

func (h *harness) noCall(t *testing.T) {
	t.Helper()
	select {
	case c := <-h.calls:
		t.Fatalf("unexpected pass %d at %s", c.n, c.at)
	case <-time.After(50 * time.Millisecond):
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (h *harness) logText() string {
	w := h.d.Log.Out.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

// orphansPass reports every path in paths orphaned, as decide.NextSightings would.
func orphansPass(paths ...string) PassFunc {
	return func(_ context.Context, _ config.Config, n uint64, s map[string]int, _ func(string)) PassResult {
		next := map[string]int{}
		for _, p := range paths {
			next[p] = s[p] + 1
		}
		return PassResult{Summary: fmt.Sprintf("summary %d", n), Sightings: next}
	}
}

func TestNextDelay(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		jitter   float64
		r        float64
		want     time.Duration
	}{
		{time.Minute, 0, 0.9, time.Minute},
		{time.Minute, 0.1, 0.5, time.Minute},
		{time.Minute, 0.1, 0, 54 * time.Second},
		{time.Minute, 0.1, 1, 66 * time.Second},
		{time.Minute, 0.5, 0, 30 * time.Second},
		{5 * time.Minute, 0.5, 0.75, 375 * time.Second},
	} {
		if got := NextDelay(tc.interval, tc.jitter, tc.r); got != tc.want {
			t.Errorf("NextDelay(%s, %g, %g) = %s, want %s", tc.interval, tc.jitter, tc.r, got, tc.want)
		}
	}
}

// The first pass runs at once and READY=1 comes with its STATUS; later
// passes follow the jittered interval; sightings go from pass to pass,
// starting from an empty (never nil) map.
func TestScheduleReadySightings(t *testing.T) {
	h := start(t, testConfig(time.Minute, 0.1), 0, orphansPass("/kubepods/poda"), nil)
	c1 := h.call(t)
	if c1.n != 1 || c1.sightings == nil || len(c1.sightings) != 0 {
		t.Fatalf("first pass: n=%d sightings=%v (want 1, empty non-nil)", c1.n, c1.sightings)
	}
	if s := h.notes.next(t); !strings.HasPrefix(s, "READY=1\nSTATUS=pass 1 at 12:00:00: summary 1") {
		t.Fatalf("first state %q", s)
	}
	h.clock.waitTimers(t, 1)
	h.clock.Advance(65 * time.Second) // Rand 1: 66s
	h.noCall(t)
	h.clock.Advance(time.Second)
	c2 := h.call(t)
	if c2.n != 2 || c2.sightings["/kubepods/poda"] != 1 || c2.at.Sub(c1.at) != 66*time.Second {
		t.Fatalf("second pass: n=%d sightings=%v after %s", c2.n, c2.sightings, c2.at.Sub(c1.at))
	}
	if s := h.notes.next(t); !strings.HasPrefix(s, "STATUS=pass 2 at 12:01:06: summary 2") {
		t.Fatalf("second state %q (READY must be sent once)", s)
	}
	h.clock.waitTimers(t, 1)
	h.clock.Advance(66 * time.Second)
	if c3 := h.call(t); c3.sightings["/kubepods/poda"] != 2 {
		t.Fatalf("third pass sightings %v", c3.sightings)
	}
}

// A pass that fails still makes the service READY (it is running and will
// retry), shows the failure in STATUS, and the next pass counts sightings
// from zero again.
func TestFailedPass(t *testing.T) {
	fail := true
	var mu sync.Mutex
	pass := func(ctx context.Context, c config.Config, n uint64, s map[string]int, st func(string)) PassResult {
		mu.Lock()
		defer mu.Unlock()
		if fail && n == 2 {
			return PassResult{Err: errors.New("read pod cgroups: boom\nsecond line")}
		}
		return orphansPass("/p")(ctx, c, n, s, st)
	}
	h := start(t, testConfig(time.Second, 0), 0, pass, nil)
	h.call(t)
	h.notes.next(t)
	h.clock.waitTimers(t, 1)
	h.clock.Advance(time.Second)
	h.call(t)
	if s := h.notes.next(t); s != "STATUS=pass 2 at 12:00:01: FAILED: read pod cgroups: boom; second line [act mode]" {
		t.Fatalf("state after failed pass %q", s)
	}
	h.clock.waitTimers(t, 1)
	h.clock.Advance(time.Second)
	if c := h.call(t); len(c.sightings) != 0 {
		t.Fatalf("sightings survived a failed pass: %v", c.sightings)
	}
	if !strings.Contains(h.logText(), "pass 2 failed") {
		t.Errorf("failure not logged:\n%s", h.logText())
	}
}

func TestFirstPassFailureStillReady(t *testing.T) {
	h := start(t, testConfig(time.Second, 0), 0, func(context.Context, config.Config, uint64, map[string]int, func(string)) PassResult {
		return PassResult{Err: errors.New("no cgroup hierarchy mounted")}
	}, nil)
	h.call(t)
	if s := h.notes.next(t); !strings.HasPrefix(s, "READY=1\nSTATUS=pass 1") || !strings.Contains(s, "FAILED: no cgroup hierarchy") {
		t.Fatalf("state %q", s)
	}
}

// SIGHUP with a good file swaps the config for the next pass; with a bad
// one the old config stays, the error is logged with MESSAGE_ID and REASON,
// and STATUS says so until a good reload.
func TestReload(t *testing.T) {
	var mu sync.Mutex
	next := testConfig(2*time.Second, 0)
	var loadErr error
	load := func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, loadErr
	}
	h := start(t, testConfig(time.Second, 0), 0, orphansPass(), load)
	h.call(t)
	h.notes.next(t)

	// Bad file: kept.
	mu.Lock()
	loadErr = &config.Errors{File: "x.toml", List: []config.FieldError{{Key: "daemon.interval", Line: 3, Msg: "must be at least 1s"}}}
	mu.Unlock()
	h.hup <- os.Interrupt
	if s := h.notes.next(t); !strings.Contains(s, "config reload failed") {
		t.Fatalf("STATUS after bad reload %q", s)
	}
	if l := h.logText(); !strings.Contains(l, "MESSAGE_ID=5c7e9a1b3d5f4e8a9b2d4f6a8c0e2d31") || !strings.Contains(l, "REASON=invalid") ||
		!strings.Contains(l, "daemon.interval (line 3)") {
		t.Fatalf("bad reload log:\n%s", l)
	}
	h.clock.waitTimers(t, 1)
	h.clock.Advance(time.Second)
	if c := h.call(t); c.cfg.Daemon.Interval.Duration != time.Second {
		t.Fatalf("pass after bad reload ran with interval %s", c.cfg.Daemon.Interval.Duration)
	}
	if s := h.notes.next(t); !strings.Contains(s, "config reload failed") {
		t.Fatalf("STATUS lost the failed reload note: %q", s)
	}

	// Good file: used from the next pass on, note cleared.
	mu.Lock()
	loadErr = nil
	mu.Unlock()
	h.hup <- os.Interrupt
	if s := h.notes.next(t); strings.Contains(s, "reload failed") {
		t.Fatalf("STATUS after good reload %q", s)
	}
	h.clock.waitTimers(t, 1)
	h.clock.Advance(time.Second)
	if c := h.call(t); c.cfg.Daemon.Interval.Duration != 2*time.Second {
		t.Fatalf("pass after good reload has interval %s", c.cfg.Daemon.Interval.Duration)
	}
	h.notes.next(t)
	h.clock.waitTimers(t, 1)
	h.clock.Advance(time.Second)
	h.noCall(t)
	h.clock.Advance(time.Second)
	h.call(t)
	if l := h.logText(); !strings.Contains(l, "REASON=applied") {
		t.Fatalf("good reload not logged:\n%s", l)
	}
}

// Shutdown during a pass: the pass sees ctx end, finishes its removal in
// flight, and only then does Run send STOPPING=1 and return nil.
func TestStopWaitsForPassInFlight(t *testing.T) {
	inPass, release := make(chan struct{}), make(chan struct{})
	finished := false
	h := start(t, testConfig(time.Second, 0), 0, func(ctx context.Context, _ config.Config, _ uint64, s map[string]int, _ func(string)) PassResult {
		close(inPass)
		<-ctx.Done()
		<-release // the removal in flight
		finished = true
		return PassResult{Summary: "stopped"}
	}, nil)
	h.call(t)
	<-inPass
	h.cancel()
	select {
	case err := <-h.done:
		t.Fatalf("Run returned %v with a removal in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-h.done:
		if err != nil || !finished {
			t.Fatalf("Run = %v, pass finished %v", err, finished)
		}
		h.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := h.notes.next(t); s != "STOPPING=1" {
		t.Fatalf("state %q, want STOPPING=1", s)
	}
}

func TestStopWhileIdle(t *testing.T) {
	h := start(t, testConfig(time.Minute, 0), 0, orphansPass(), nil)
	h.call(t)
	h.notes.next(t)
	h.clock.waitTimers(t, 1)
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
		h.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := h.notes.next(t); s != "STOPPING=1" {
		t.Fatalf("state %q", s)
	}
}

// The watchdog rule as a table: the pinger pings while the loop's promise
// holds and stops once a stage overruns WatchdogSec.
func TestProgressCheck(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	w := 2 * time.Second
	for _, tc := range []struct {
		name  string
		set   func(d *Daemon)
		at    time.Duration
		ok    bool
		stage string
	}{
		{"stage just begun", func(d *Daemon) { d.stage("cri", t0) }, 0, true, "cri"},
		{"stage within limit", func(d *Daemon) { d.stage("cri", t0) }, w - time.Millisecond, true, "cri"},
		{"stage overran", func(d *Daemon) { d.stage("cri", t0) }, w, false, "cri"},
		{"idle, next pass in 5m", func(d *Daemon) { d.idle(t0.Add(5 * time.Minute)) }, 5 * time.Minute, true, "idle"},
		{"idle, timer never fired", func(d *Daemon) { d.idle(t0.Add(5 * time.Minute)) }, 5*time.Minute + w, false, "idle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock()
			c.now = t0
			d := &Daemon{Watchdog: w, Clock: c}
			tc.set(d)
			ok, stage, _, stalled := d.progress.check(t0.Add(tc.at))
			if ok != tc.ok || stage != tc.stage || stalled == ok {
				t.Fatalf("check = %v %q stalled=%v, want %v %q", ok, stage, stalled, tc.ok, tc.stage)
			}
			if !ok {
				if _, _, _, again := d.progress.check(t0.Add(tc.at)); again {
					t.Error("a stall is reported once, not at every tick")
				}
			}
		})
	}
}

// The pinger with the loop: pings every W/2 while idle and while stages
// move; a stage that hangs past W stops them (and is logged once); pings
// come back once it moves on.
func TestWatchdogStopsOnStall(t *testing.T) {
	const w = 2 * time.Second
	inCRI, unblock := make(chan struct{}), make(chan struct{})
	pass := func(ctx context.Context, _ config.Config, n uint64, s map[string]int, stage func(string)) PassResult {
		if n == 2 {
			stage("cri")
			close(inCRI)
			<-unblock
			stage("after-cri")
		}
		return PassResult{Summary: "ok", Sightings: map[string]int{}}
	}
	h := start(t, testConfig(10*time.Second, 0), w, pass, nil)
	h.call(t)
	if s := h.notes.next(t); !strings.HasPrefix(s, "READY=1") {
		t.Fatal(s)
	}
	pings := func() int {
		n := 0
		for {
			select {
			case s := <-h.notes.ch:
				if s == "WATCHDOG=1" {
					n++
				}
			default:
				return n
			}
		}
	}
	// step moves the clock by W/2 and waits until the pinger is waiting again.
	step := func() {
		h.clock.waitTimers(t, 2) // pinger + loop (or pinger alone in a pass)
		h.clock.Advance(w / 2)
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 4; i++ { // idle: 4s, next pass at 10s
		step()
	}
	if n := pings(); n != 4 {
		t.Fatalf("idle: %d pings in 4 ticks, want 4", n)
	}
	for i := 0; i < 12; i++ { // reach the pass at 10s
		if h.clock.Now().Sub(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)) >= 10*time.Second {
			break
		}
		step()
	}
	<-inCRI
	h.call(t)
	pings()
	stallStart := h.clock.Now()
	got := 0
	for i := 0; i < 6; i++ { // 3s into the hung stage
		h.clock.waitTimers(t, 1)
		h.clock.Advance(w / 2)
		time.Sleep(20 * time.Millisecond)
		got += pings()
		if h.clock.Now().Sub(stallStart) >= w && got > 0 && i > 2 {
			break
		}
	}
	// Ticks at +1s pings (stage 1s old); +2s and later do not.
	if got != 1 {
		t.Fatalf("hung stage: %d pings, want 1 (only before WatchdogSec passed)", got)
	}
	if c := strings.Count(h.logText(), "withholding the watchdog ping"); c != 1 {
		t.Fatalf("stall logged %d times:\n%s", c, h.logText())
	}
	if !strings.Contains(h.logText(), "STAGE=cri") {
		t.Fatalf("stall log does not name the stage:\n%s", h.logText())
	}
	close(unblock)
	if s := h.notes.next(t); !strings.HasPrefix(s, "STATUS=pass 2") {
		t.Fatal(s)
	}
	h.clock.waitTimers(t, 2)
	h.clock.Advance(w / 2)
	time.Sleep(20 * time.Millisecond)
	if n := pings(); n != 1 {
		t.Fatalf("after the stage moved on: %d pings, want 1", n)
	}
}

// TestStartWarnsAboutKubeletRoot: a kubelet_root without kubelet's pods/
// turns every pod the runtime does not list into "kept": the daemon says
// so at start and on reload, naming the key to set, and is quiet once the
// directory is there.
func TestStartWarnsAboutKubeletRoot(t *testing.T) {
	cfg := testConfig(time.Minute, 0)
	cfg.Cgroup.KubeletRoot = t.TempDir()
	h := start(t, cfg, 0, orphansPass(), func() (config.Config, error) { return cfg, nil })
	h.call(t)
	h.notes.next(t)
	warned := func() int { return strings.Count(h.logText(), "kubelet state unknown") }
	if l := h.logText(); warned() != 1 || !strings.Contains(l, "cgroup.kubelet_root") || !strings.Contains(l, "level=warning") {
		t.Fatalf("start log:\n%s", l)
	}
	h.hup <- os.Interrupt
	h.notes.next(t)
	if warned() != 2 {
		t.Fatalf("no warning on reload:\n%s", h.logText())
	}
	if err := os.Mkdir(filepath.Join(cfg.Cgroup.KubeletRoot, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.hup <- os.Interrupt
	h.notes.next(t)
	if warned() != 2 {
		t.Fatalf("warned with pods/ there:\n%s", h.logText())
	}
}
