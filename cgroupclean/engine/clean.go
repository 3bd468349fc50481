package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/sirupsen/logrus"
)

// Outcome is what happened to one planned removal.
type Outcome string

// Outcomes.
const (
	Removed     Outcome = "removed"
	WouldRemove Outcome = "would-remove" // dry run
	Refused     Outcome = "refused"      // a final check said no; nothing was changed
	Failed      Outcome = "failed"       // tried, and the cgroup (or part of it) is still there
)

// Result is the outcome of one planned removal.
type Result struct {
	Item        decide.Item             `json:"item"`
	Outcome     Outcome                 `json:"outcome"`
	Reason      decide.Reason           `json:"reason,omitempty"`
	Detail      string                  `json:"detail,omitempty"`
	UnitStopped string                  `json:"unit_stopped,omitempty"`
	Killed      []int                   `json:"killed_pids,omitempty"`
	Dirs        int                     `json:"removed_dirs"`
	PerHier     []apply.HierarchyResult `json:"hierarchies,omitempty"`
	Took        time.Duration           `json:"took_ns"`
	// ActionID names the audit records of this removal's steps.
	ActionID string `json:"action_id,omitempty"`
	// Unit is the systemd unit that owns the cgroup (systemd said so),
	// not a name guessed from the directory.
	Unit string `json:"unit,omitempty"`
	// Step is the action in flight (kill, stop-unit, remove) when it
	// failed; empty when the failure came between actions.
	Step string `json:"step,omitempty"`
}

// Apply carries out the plan's removals, one cgroup at a time. Before each
// it asks the runtime again (a pod that came back in the meantime is kept;
// if the runtime fails, the rest of the pass is refused), checks kubelet's
// pod dir again and counts the processes again. The removal in flight is
// always finished, even when ctx is cancelled between checks and rmdir:
// ctx is only checked before a removal starts, so no pod is left half
// removed by a shutdown.
//
// The final checks of the next removal run while the current one's
// directories are removed: rmdir mostly waits on the kernel, and the
// checks (reading cgroup.procs in every directory) cost as much again.
// They run at most one removal ahead, and checks older than MaxCheckAge
// when their removal starts (a slow unit stop before them) are redone.
// One answer of the runtime serves the checks that start within
// ShareRuntimeAnswer of it; their age counts from when it was asked.
func (e *Engine) Apply(ctx context.Context, s *Scan, dryRun bool) []Result {
	var results []Result
	add := func(r Result) {
		results = append(results, r)
		if e.OnResult != nil {
			e.OnResult(r)
		}
	}
	removals := decide.Removals(s.Plan)
	if dryRun {
		for _, it := range removals {
			add(Result{Item: it, Outcome: WouldRemove})
		}
		return results
	}
	refuseRest := func(rest []decide.Item, detail string) {
		for _, it := range rest {
			add(Result{Item: it, Outcome: Refused, Reason: decide.RuntimeUnreachableNow, Detail: detail})
		}
	}
	next, stop := e.checkAhead(ctx, s, removals)
	defer stop()
	for i, it := range removals {
		if ctx.Err() != nil {
			refuseRest(removals[i:], "pass stopped: "+ctx.Err().Error())
			break
		}
		c, ok := next()
		if !ok { // the checker saw ctx cancelled
			refuseRest(removals[i:], "pass stopped: "+context.Cause(ctx).Error())
			break
		}
		if c.stale() {
			c = e.check(ctx, s, it, nil)
		}
		r := c.refused
		if r == nil && e.Config.Clean.Observing() {
			r = e.observe(ctx, c)
		}
		if r == nil {
			r = e.remove(ctx, s, c)
		}
		add(*r)
		if r.Reason == decide.RuntimeUnreachableNow {
			refuseRest(removals[i+1:], r.Detail)
			break
		}
	}
	return results
}

// MaxCheckAge is how old the final checks of a removal may be when the
// removal starts. The runtime's answer counts from when it was asked.
const MaxCheckAge = 50 * time.Millisecond

// ShareRuntimeAnswer is for how long one answer of the runtime serves the
// look-ahead checks of the next removals (one question per pod was an
// eighth of a clean pass, and nearly all of it with a slow runtime, whose
// round trip outlasted a shorter window). MaxCheckAge still counts from
// when it was asked, so no removal starts on an answer older than that: a
// removal that would is checked again.
const ShareRuntimeAnswer = MaxCheckAge / 2

// checked is one removal after its final checks: refused, or with the
// trees to remove.
type checked struct {
	it      decide.Item
	start   time.Time // checks began
	at      time.Time // checks ended
	asked   time.Time // the runtime was asked
	trees   apply.Trees
	refused *Result
}

// stale reports whether the checks are too old for their removal to start
// on them: they ended, or the runtime was asked, over MaxCheckAge ago.
func (c checked) stale() bool {
	return time.Since(c.at) > MaxCheckAge || time.Since(c.asked) > MaxCheckAge
}

// checkAhead checks the removals in order in a goroutine, one ahead of
// the caller: next returns the next one's checks (false once ctx is
// cancelled or after a refusal for an unreachable runtime, when the
// checker stops). stop ends the goroutine and waits for it.
func (e *Engine) checkAhead(ctx context.Context, s *Scan, removals []decide.Item) (next func() (checked, bool), stop func()) {
	out := make(chan checked) // unbuffered: at most one check ahead
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		shared := &runtimeAnswer{}
		for _, it := range removals {
			if ctx.Err() != nil {
				return
			}
			c := e.check(ctx, s, it, shared)
			select {
			case out <- c:
			case <-quit:
				return
			}
			if c.refused != nil && c.refused.Reason == decide.RuntimeUnreachableNow {
				return
			}
		}
	}()
	next = func() (checked, bool) {
		c, ok := <-out
		return c, ok
	}
	stop = func() {
		close(quit)
		<-done
	}
	return next, stop
}

// runtimeAnswer is one answer of the runtime and when it was asked.
type runtimeAnswer struct {
	snap  live.Snapshot
	asked time.Time
}

// check runs the final checks of one removal, as close to its rmdir as
// they can be: the runtime, kubelet, and the processes in its trees.
// shared, when not nil, is the last answer of the runtime, used when it was
// asked less than ShareRuntimeAnswer ago and replaced otherwise.
func (e *Engine) check(ctx context.Context, s *Scan, it decide.Item, shared *runtimeAnswer) checked {
	c := checked{it: it, start: time.Now()}
	refuse := func(reason decide.Reason, detail string) checked {
		c.at = time.Now()
		c.refused = &Result{Item: it, Outcome: Refused, Reason: reason, Detail: detail, Took: c.at.Sub(c.start)}
		return c
	}
	var ans runtimeAnswer
	if shared != nil && !shared.asked.IsZero() && c.start.Sub(shared.asked) < ShareRuntimeAnswer {
		ans = *shared
	} else {
		ans.asked = time.Now()
		snap, err := e.snapshot(ctx)
		if err != nil {
			c.asked = ans.asked
			return refuse(decide.RuntimeUnreachableNow, err.Error())
		}
		ans.snap = snap
		if shared != nil {
			*shared = ans
		}
	}
	c.asked = ans.asked
	if reason, detail := e.recheckLiveIn(ans.snap, it); reason != "" {
		return refuse(reason, detail)
	}
	// One walk per hierarchy gives both the processes and the directories
	// to remove.
	trees, err := apply.ReadTreesKnown(s.Hierarchies, it.Path, childNames(it))
	if err != nil {
		return refuse(decide.ProcessCheckFailed, err.Error())
	}
	if trees.Absent() {
		return refuse(decide.GoneSinceScan, "no hierarchy has it any more")
	}
	if pids := trees.Pids; len(pids) > 0 && it.Action != decide.KillRemove {
		return refuse(decide.ProcessesAppeared, fmt.Sprintf("%d processes: %v", len(pids), pids))
	}
	c.trees, c.at = trees, time.Now()
	return c
}

// remove carries out one checked removal: the systemd ownership check,
// the runtime and kubelet asked once more when processes are left (they
// are about to be ended), the unit stop (mode "fail": refused while
// another job is queued), the kill of what is left (opt-in), then the rmdir
// leaf-first in every hierarchy. Everything that can refuse runs before
// anything is stopped or killed: a refused removal changed nothing.
func (e *Engine) remove(ctx context.Context, s *Scan, c checked) *Result {
	it, trees := c.it, c.trees
	r := &Result{Item: it, ActionID: newActionID()}
	rec := actionLog{log: e.Log, pass: e.pass()}
	refuse := func(reason decide.Reason, detail string) *Result {
		r.Outcome, r.Reason, r.Detail, r.Took = Refused, reason, detail, time.Since(c.start)
		return r
	}
	fail := func(reason decide.Reason, err error) *Result {
		r.Outcome, r.Reason, r.Detail, r.Took = Failed, reason, err.Error(), time.Since(c.start)
		return r
	}
	// From here on the removal runs to its end even if ctx is cancelled.
	ctx = context.WithoutCancel(ctx)
	stopUnit := false
	if it.Unit != "" && e.Config.Clean.UseSystemd != "never" {
		if e.Units == nil {
			detail := "no connection to systemd"
			if e.UnitsErr != nil {
				detail = e.UnitsErr.Error()
			}
			return refuse(decide.SystemdUnreachable, detail)
		}
		loaded, cg, err := e.Units.Lookup(ctx, it.Unit)
		if err != nil {
			return refuse(decide.SystemdUnreachable, err.Error())
		}
		if loaded && filepath.Clean(cg) != filepath.Clean(it.Path) {
			return refuse(decide.UnitNotOwned, fmt.Sprintf("unit %s owns %q, not %q", it.Unit, cg, it.Path))
		}
		stopUnit = loaded
		if loaded {
			r.Unit = it.Unit
		}
	}
	if len(trees.Pids) > 0 {
		// Ending processes cannot be undone: the runtime and kubelet are
		// asked again right before, after the systemd lookup.
		if reason, detail := e.recheckLive(ctx, it); reason != "" {
			return refuse(reason, detail)
		}
	}
	if stopUnit {
		// The stop is the last step that can refuse (a queued job), so it
		// comes before the kill; it ends the unit's processes itself.
		rec.intent(r, audit.ActionStop, "stopping unit "+it.Unit, nil)
		detail, err := e.Units.Stop(ctx, it.Unit)
		if errors.Is(err, sdunit.ErrJobConflict) {
			return refuse(decide.UnitJobPending, err.Error())
		}
		if err != nil {
			return fail(decide.RemoveFailed, fmt.Errorf("stop unit %s: %w", it.Unit, err))
		}
		if n := len(trees.Pids); n > 0 {
			detail += fmt.Sprintf(", %d processes were inside", n)
		}
		r.UnitStopped = it.Unit + " (" + detail + ")"
		rec.unitStopped(r)
		// systemd removed the unit's own directories.
		if trees, err = apply.ReadTrees(s.Hierarchies, it.Path); err != nil {
			return fail(decide.RemoveFailed, err)
		}
	}
	if len(trees.Pids) > 0 {
		rec.intent(r, audit.ActionKill, fmt.Sprintf("killing %d processes in orphan %s %s", len(trees.Pids), it.Kind, it.Path), logrus.Fields{audit.Pids: trees.Pids})
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kr, err := apply.KillAll(kctx, s.Hierarchies, it.Path)
		cancel()
		r.Killed = kr.Pids
		if err != nil {
			return fail(decide.KillFailed, err)
		}
		rec.killed(r)
		var rerr error
		if trees, rerr = apply.ReadTrees(s.Hierarchies, it.Path); rerr != nil {
			return fail(decide.RemoveFailed, rerr)
		}
	}
	rec.removeIntent(r, trees)
	per, err := apply.Remove(trees, e.BeforeRemove)
	r.PerHier = per
	for _, h := range per {
		r.Dirs += h.Removed
	}
	if err != nil {
		if errors.Is(err, apply.ErrBusy) {
			return fail(decide.Busy, err)
		}
		return fail(decide.RemoveFailed, err)
	}
	r.Outcome, r.Took = Removed, time.Since(c.start)
	return r
}

// recheckLive asks the runtime and kubelet again whether the item is live:
// the reason to refuse and its detail, or "" when neither claims it.
func (e *Engine) recheckLive(ctx context.Context, it decide.Item) (decide.Reason, string) {
	snap, err := e.snapshot(ctx)
	if err != nil {
		return decide.RuntimeUnreachableNow, err.Error()
	}
	return e.recheckLiveIn(snap, it)
}

// recheckLiveIn is recheckLive with the runtime's answer given.
func (e *Engine) recheckLiveIn(snap live.Snapshot, it decide.Item) (decide.Reason, string) {
	if why := listedNow(snap, it); why != "" {
		return decide.RuntimeListsNow, why
	}
	if it.Kind == decide.PodKind {
		tracked, err := live.KubeletTracks(e.Config.Cgroup.KubeletRoot, it.PodUID)
		if err != nil {
			return decide.KubeletStateUnknown, err.Error()
		}
		if tracked {
			return decide.KubeletTracksNow, filepath.Join(e.Config.Cgroup.KubeletRoot, "pods", it.PodUID) + " exists"
		}
	}
	return "", ""
}

// childNames are the base names of the item's container cgroups.
func childNames(it decide.Item) []string {
	var out []string
	for _, c := range it.Children {
		out = append(out, filepath.Base(c.Path))
	}
	return out
}

// listedNow says why the runtime's fresh answer makes the item live, or "".
func listedNow(snap live.Snapshot, it decide.Item) string {
	ids := map[string]bool{}
	for _, c := range it.Children {
		ids[c.ContainerID] = true
	}
	if it.ContainerID != "" {
		ids[it.ContainerID] = true
	}
	for _, sb := range snap.Sandboxes {
		if it.Kind == decide.PodKind && sb.PodUID == it.PodUID {
			return "sandbox " + sb.ID + " of pod " + it.PodUID + " is listed now"
		}
		if ids[sb.ID] {
			return "sandbox " + sb.ID + " is listed now"
		}
	}
	for _, c := range snap.Containers {
		if ids[c.ID] || ids[c.SandboxID] {
			return "container " + c.ID + " is listed now"
		}
	}
	return ""
}
