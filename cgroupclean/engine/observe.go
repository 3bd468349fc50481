package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
)

// Observed is the outcome of an orphan in observe mode ([clean] mode =
// "observe"): it passed every gate and every final check, and act mode
// would have removed it; nothing was changed.
const Observed Outcome = "observed"

// observe is remove's read-only part: everything remove asks before its
// first change, and nothing after. The systemd unit is looked up (its
// cgroup must be exactly the orphan's) and, when processes are left, the
// runtime and kubelet are asked once more, as act mode would before
// ending them. An orphan that passes gets its "would remove" record.
func (e *Engine) observe(ctx context.Context, c checked) *Result {
	it, trees := c.it, c.trees
	r := &Result{Item: it}
	refuse := func(reason decide.Reason, detail string) *Result {
		r.Outcome, r.Reason, r.Detail, r.Took = Refused, reason, detail, time.Since(c.start)
		return r
	}
	if reason, detail := e.checkUnitOwner(ctx, r); reason != "" {
		return refuse(reason, detail)
	}
	if len(trees.Pids) > 0 {
		if reason, detail := e.recheckLive(ctx, it); reason != "" {
			return refuse(reason, detail)
		}
	}
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

// checkUnitOwner is the systemd check before a removal: with a unit
// named for the orphan, systemd must be reachable and the unit, when
// loaded, must own exactly the orphan's cgroup (then r.Unit names it).
// It returns the reason to refuse and its detail, or "".
func (e *Engine) checkUnitOwner(ctx context.Context, r *Result) (decide.Reason, string) {
	it := r.Item
	if it.Unit == "" || e.Config.Clean.UseSystemd == "never" {
		return "", ""
	}
	if e.Units == nil {
		detail := "no connection to systemd"
		if e.UnitsErr != nil {
			detail = e.UnitsErr.Error()
		}
		return decide.SystemdUnreachable, detail
	}
	loaded, cg, err := e.Units.Lookup(ctx, it.Unit)
	if err != nil {
		return decide.SystemdUnreachable, err.Error()
	}
	if loaded && filepath.Clean(cg) != filepath.Clean(it.Path) {
		return decide.UnitNotOwned, fmt.Sprintf("unit %s owns %q, not %q", it.Unit, cg, it.Path)
	}
	if loaded {
		r.Unit = it.Unit
	}
	return "", ""
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
