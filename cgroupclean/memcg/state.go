package memcg

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// LimitsFile is the file in the state directory that keeps the watchdog's
// limits (cooldowns, daily cap, backoff) across restarts and reloads: a
// daemon in a crash loop must not turn into a drop_caches loop.
const LimitsFile = "memcg-limits.json"

// limitsVersion is the file format; another version is not read.
const limitsVersion = 1

// clockSkew is how far in the future a saved time may be before the file
// is taken for wrong (a clock set back, a file from another machine).
const clockSkew = 5 * time.Minute

type limitsDoc struct {
	Version int                  `json:"version"`
	Saved   time.Time            `json:"saved"`
	Steps   map[Action]limitStep `json:"steps"`
}

type limitStep struct {
	Last     time.Time   `json:"last,omitzero"`
	Failures int         `json:"failures"`
	Runs     []time.Time `json:"runs,omitempty"`
}

// ErrLimitsUnusable says the limits file could not be trusted; the
// watchdog then acts as if every step had just run (see LoadLimits).
var ErrLimitsUnusable = errors.New("memcg limits file unusable")

// LoadLimits restores the watchdog's limits from dir/LimitsFile. A missing
// file is a first start: no history, nil. A file that cannot be read,
// parsed or trusted (another version, negative counts, times in the
// future) is not used: every step is taken to have run just now, so its
// cooldown is in force from now on (the cautious choice: at worst an
// action comes one cooldown late), and the error, wrapping
// ErrLimitsUnusable, says why; the caller logs it and saves the new state.
func (w *Watchdog) LoadLimits(dir string) error {
	path := filepath.Join(dir, LimitsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	now := w.clock.Now()
	if err == nil {
		var doc limitsDoc
		if err = json.Unmarshal(data, &doc); err == nil {
			err = w.restore(doc, now)
		}
	}
	if err != nil {
		w.limitsInForce(now)
		return fmt.Errorf("%s: %w: %v; every step waits its cooldown from now", path, ErrLimitsUnusable, err)
	}
	return nil
}

func (w *Watchdog) restore(doc limitsDoc, now time.Time) error {
	if doc.Version != limitsVersion {
		return fmt.Errorf("version %d, want %d", doc.Version, limitsVersion)
	}
	future := func(t time.Time) bool { return t.After(now.Add(clockSkew)) }
	if future(doc.Saved) {
		return fmt.Errorf("saved at %s, in the future", doc.Saved.Format(time.RFC3339))
	}
	steps := map[Action]*stepState{}
	for a, s := range doc.Steps {
		if _, ok := w.steps[a]; !ok {
			return fmt.Errorf("unknown step %q", a)
		}
		if s.Failures < 0 || s.Failures > 64 {
			return fmt.Errorf("step %s: failures %d", a, s.Failures)
		}
		if future(s.Last) {
			return fmt.Errorf("step %s: last run %s, in the future", a, s.Last.Format(time.RFC3339))
		}
		for _, r := range s.Runs {
			if future(r) {
				return fmt.Errorf("step %s: run at %s, in the future", a, r.Format(time.RFC3339))
			}
		}
		steps[a] = &stepState{last: s.Last, failures: s.Failures, runs: s.Runs}
	}
	for a, st := range steps {
		w.steps[a] = st
	}
	return nil
}

// limitsInForce makes every step look as if it had just run.
func (w *Watchdog) limitsInForce(now time.Time) {
	for a := range w.steps {
		w.steps[a] = &stepState{last: now, runs: []time.Time{now}}
	}
	w.steps[ActionReclaimPodRoot].runs = nil
}

// SaveLimits writes the limits to dir/LimitsFile atomically: a temporary
// file, fsync, rename over the old one, fsync of the directory. A crash
// leaves the old file or the new one, never a torn one.
func (w *Watchdog) SaveLimits(dir string) error {
	doc := limitsDoc{Version: limitsVersion, Saved: w.clock.Now(), Steps: map[Action]limitStep{}}
	for a, st := range w.steps {
		doc.Steps[a] = limitStep{Last: st.last, Failures: st.failures, Runs: st.runs}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("save memcg limits: %w", err)
	}
	if err := writeAtomic(dir, LimitsFile, append(data, '\n')); err != nil {
		return fmt.Errorf("save memcg limits: %w", err)
	}
	return nil
}

// CopyLimits takes over another watchdog's limits (the monitor rebuilt on
// a reload keeps them).
func (w *Watchdog) CopyLimits(from *Watchdog) {
	for a, st := range from.steps {
		if _, ok := w.steps[a]; ok {
			c := *st
			c.runs = append([]time.Time(nil), st.runs...)
			w.steps[a] = &c
		}
	}
}

func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Fsync(int(d.Fd())); err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}
