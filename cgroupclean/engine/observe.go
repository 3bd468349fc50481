package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
)

// Observed is the outcome of an orphan in observe mode ([clean] mode =
// "observe"): it passed every gate and every final check, and act mode
// would have removed it; nothing was changed.
const Observed Outcome = "observed"

// observe is remove's read-only part: everything remove asks before its
// first change, and nothing after. The systemd unit is looked up (its
// cgroup must be exactly the orphan's) and the runtime and kubelet are
// asked once more, as act mode asks them right before its first action.
// An orphan that passes gets its "would remove" record.
func (e *Engine) observe(ctx context.Context, s *Scan, c checked) *Result {
	it, trees := c.it, c.trees
	rm := &removal{e: e, s: s, c: c, trees: trees, asked: c.asked, fresh: true, r: &Result{Item: it}}
	if r := rm.lookUpUnit(ctx); r != nil {
		return r
	}
	if reason, detail := rm.askNow(ctx); reason != "" {
		return rm.refuse(reason, detail)
	}
	r := rm.r
	names, dirs := treeDirs(trees)
	r.Outcome, r.Dirs, r.Took = Observed, dirs, time.Since(c.start)
	if e.Log != nil {
		f := itemFields(it, e.pass(), false)
		f[audit.MessageID], f[audit.Action] = audit.IDWouldRemove, audit.ActionRemove
		f[audit.Hierarchies], f[audit.Dirs] = strings.Join(names, " "), dirs
		f[audit.DurationMS] = r.Took.Milliseconds()
		if r.Unit != "" {
			f[audit.Unit] = r.Unit
		}
		what := ""
		if n := len(trees.Pids); n > 0 {
			f[audit.Processes] = n
			what = fmt.Sprintf(" after killing %d processes", n)
		}
		e.Log.WithFields(f).Infof("observe mode: would remove orphan %s %s%s (%d directories in %d hierarchies)", it.Kind, it.Path, what, dirs, len(names))
	}
	return r
}

// treeDirs names the hierarchies that hold directories of trees and
// counts the directories.
func treeDirs(trees apply.Trees) (names []string, dirs int) {
	for _, h := range trees.ByHierarchy {
		if len(h.Dirs) > 0 {
			names = append(names, h.Hierarchy.Name)
			dirs += len(h.Dirs)
		}
	}
	return names, dirs
}

// ObservedCount is how many results are orphans observe mode would have
// removed.
func ObservedCount(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Outcome == Observed {
			n++
		}
	}
	return n
}
