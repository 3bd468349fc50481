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
		if c.stale(e.clock()) {
			c = e.check(ctx, s, it, nil)
		}
		r := c.refused
		if r == nil && e.Config.Clean.Observing() {
			r = e.observe(ctx, s, c)
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
func (c checked) stale(now time.Time) bool {
	return now.Sub(c.at) > MaxCheckAge || now.Sub(c.asked) > MaxCheckAge
}

// checkAhead checks the removals in order in a goroutine, one ahead of
// the caller: next returns the next one's checks (false once ctx is
// cancelled or after a refusal for an unreachable runtime, when the
// checker stops). stop ends the goroutine and waits for it.
func (e *Engine) checkAhead(ctx context.Context, s *Scan, removals []decide.Item) (next func() (checked, bool), stop func()) {
	if e.sequentialChecks {
		i := 0
		next = func() (checked, bool) {
			if ctx.Err() != nil || i == len(removals) {
				return checked{}, false
			}
			i++
			return e.check(ctx, s, removals[i-1], nil), true
		}
		return next, func() {}
	}
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
	c := checked{it: it, start: e.clock()}
	refuse := func(reason decide.Reason, detail string) checked {
		c.at = e.clock()
		if c.asked.IsZero() {
			c.asked = c.start
		}
		c.refused = &Result{Item: it, Outcome: Refused, Reason: reason, Detail: detail, Took: c.at.Sub(c.start)}
		return c
	}
	// The trees are read before the runtime and kubelet are asked, so
	// that nothing but the removal's own steps comes between their answer
	// and the rmdir; they are judged after the answers, so that a pod
	// listed again is kept as such, not for its new sandbox's processes.
	trees, treesErr := e.cgroups().ReadTrees(s.Hierarchies, it.Path, childNames(it))
	var ans runtimeAnswer
	if shared != nil && !shared.asked.IsZero() && e.clock().Sub(shared.asked) < ShareRuntimeAnswer {
		ans = *shared
	} else {
		ans.asked = e.clock()
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
	if treesErr != nil {
		return refuse(decide.ProcessCheckFailed, treesErr.Error())
	}
	if trees.Absent() {
		return refuse(decide.GoneSinceScan, "no hierarchy has it any more")
	}
	if pids := trees.Pids; len(pids) > 0 && it.Action != decide.KillRemove {
		return refuse(decide.ProcessesAppeared, fmt.Sprintf("%d processes: %v", len(pids), pids))
	}
	c.trees, c.at = trees, e.clock()
	return c
}

// UnitLookupTimeout bounds one question to systemd about a unit.
const UnitLookupTimeout = 10 * time.Second

// askAttempts is how many times the runtime and kubelet are asked before
// an action for answers fresh enough to act on.
const askAttempts = 3

// removal is one checked removal carried out as explicit steps (look up
// the unit, stop it, kill what is left, rmdir), each checking its own
// precondition when it runs. Every step that acts writes its intent
// first, and acts only if the audit sink took it; every unit stop and
// every kill is preceded, with nothing else in between, by a "not listed"
// from the runtime and kubelet at most MaxCheckAge old.
type removal struct {
	e     *Engine
	s     *Scan
	c     checked
	r     *Result
	rec   actionLog
	trees apply.Trees
	unit  bool // systemd owns the cgroup: stop the unit
	// asked is when the runtime was last asked; fresh is false once
	// anything but an intent record happened since.
	asked time.Time
	fresh bool
}

// remove carries out one checked removal: the systemd ownership check,
// the unit stop (mode "fail": refused while another job is queued), the
// kill of what is left (KillRemove only), then the rmdir leaf-first in
// every hierarchy. A refusal at any step leaves the steps after it undone.
func (e *Engine) remove(ctx context.Context, s *Scan, c checked) *Result {
	rm := &removal{e: e, s: s, c: c, trees: c.trees, asked: c.asked, fresh: true,
		r: &Result{Item: c.it, ActionID: newActionID()}, rec: actionLog{log: e.Log, pass: e.pass(), sink: e.Intents}}
	// From here on the removal runs to its end even if ctx is cancelled.
	ctx = context.WithoutCancel(ctx)
	for _, step := range []func(context.Context) *Result{rm.lookUpUnit, rm.stopUnit, rm.kill, rm.rmdir} {
		if r := step(ctx); r != nil {
			return r
		}
	}
	rm.r.Outcome, rm.r.Took = Removed, e.clock().Sub(c.start)
	return rm.r
}

func (rm *removal) refuse(reason decide.Reason, detail string) *Result {
	r := rm.r
	r.Outcome, r.Reason, r.Detail, r.Took = Refused, reason, detail, rm.e.clock().Sub(rm.c.start)
	return r
}

func (rm *removal) fail(reason decide.Reason, err error) *Result {
	r := rm.r
	r.Outcome, r.Reason, r.Detail, r.Took = Failed, reason, err.Error(), rm.e.clock().Sub(rm.c.start)
	return r
}

// lookUpUnit asks systemd which unit owns the cgroup (with the systemd
// driver): only a unit whose ControlGroup is exactly this path is stopped.
func (rm *removal) lookUpUnit(ctx context.Context) *Result {
	e, it := rm.e, rm.c.it
	if it.Unit == "" || e.Config.Clean.UseSystemd == "never" {
		return nil
	}
	if e.Units == nil {
		detail := "no connection to systemd"
		if e.UnitsErr != nil {
			detail = e.UnitsErr.Error()
		}
		return rm.refuse(decide.SystemdUnreachable, detail)
	}
	lctx, cancel := context.WithTimeout(ctx, UnitLookupTimeout)
	loaded, cg, err := e.Units.Lookup(lctx, it.Unit)
	cancel()
	rm.fresh = false
	if err != nil {
		return rm.refuse(decide.SystemdUnreachable, err.Error())
	}
	if loaded && filepath.Clean(cg) != filepath.Clean(it.Path) {
		return rm.refuse(decide.UnitNotOwned, fmt.Sprintf("unit %s owns %q, not %q", it.Unit, cg, it.Path))
	}
	rm.unit = loaded
	if loaded {
		rm.r.Unit = it.Unit
	}
	return nil
}

// stopUnit stops the unit that owns the cgroup. StopUnit on a slice ends
// every process inside: the runtime and kubelet are asked right before.
func (rm *removal) stopUnit(ctx context.Context) *Result {
	if !rm.unit {
		return nil
	}
	e, it, r := rm.e, rm.c.it, rm.r
	if err := rm.rec.intent(r, audit.ActionStop, "stopping unit "+it.Unit, nil); err != nil {
		return rm.refuse(decide.AuditUnavailable, err.Error())
	}
	if reason, detail := rm.askNow(ctx); reason != "" {
		return rm.refuse(reason, detail)
	}
	detail, err := e.Units.Stop(ctx, it.Unit)
	rm.fresh = false
	if errors.Is(err, sdunit.ErrJobConflict) {
		return rm.refuse(decide.UnitJobPending, err.Error())
	}
	if err != nil {
		return rm.fail(decide.RemoveFailed, fmt.Errorf("stop unit %s: %w", it.Unit, err))
	}
	if n := len(rm.trees.Pids); n > 0 {
		detail += fmt.Sprintf(", %d processes were inside", n)
	}
	r.UnitStopped = it.Unit + " (" + detail + ")"
	rm.rec.unitStopped(r)
	// systemd removed the unit's own directories; processes may have
	// entered since the checks.
	if rm.trees, err = e.cgroups().ReadTrees(rm.s.Hierarchies, it.Path, nil); err != nil {
		return rm.fail(decide.RemoveFailed, err)
	}
	return nil
}

// kill ends the processes left, for KillRemove items only: any other
// item with processes is kept. The runtime and kubelet are asked once
// the cgroup is frozen, right before the first signal.
func (rm *removal) kill(ctx context.Context) *Result {
	e, it, r := rm.e, rm.c.it, rm.r
	pids := rm.trees.Pids
	if len(pids) == 0 {
		return nil
	}
	if it.Action != decide.KillRemove {
		return rm.refuse(decide.ProcessesAppeared, fmt.Sprintf("%d processes: %v", len(pids), pids))
	}
	if err := rm.rec.intent(r, audit.ActionKill, fmt.Sprintf("killing %d processes in orphan %s %s", len(pids), it.Kind, it.Path), logrus.Fields{audit.Pids: pids}); err != nil {
		return rm.refuse(decide.AuditUnavailable, err.Error())
	}
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	kr, err := e.cgroups().KillAll(kctx, rm.s.Hierarchies, it.Path, func() error {
		if reason, detail := rm.askNow(ctx); reason != "" {
			return &refusal{reason: reason, detail: detail}
		}
		return nil
	})
	cancel()
	rm.fresh = false
	r.Killed = kr.Pids
	var ref *refusal
	if errors.As(err, &ref) {
		return rm.refuse(ref.reason, ref.detail)
	}
	if err != nil {
		return rm.fail(decide.KillFailed, err)
	}
	rm.rec.killed(r)
	if rm.trees, err = e.cgroups().ReadTrees(rm.s.Hierarchies, it.Path, nil); err != nil {
		return rm.fail(decide.RemoveFailed, err)
	}
	return nil
}

// rmdir removes what is left, leaf-first. The kernel refuses a cgroup
// with tasks (busy); the runtime and kubelet are asked again when
// anything happened since the final checks, or their answer is too old.
func (rm *removal) rmdir(ctx context.Context) *Result {
	e, r := rm.e, rm.r
	if err := rm.rec.removeIntent(r, rm.trees); err != nil {
		return rm.refuse(decide.AuditUnavailable, err.Error())
	}
	// With nothing left (systemd removed it all) there is nothing to ask for.
	if !rm.trees.Absent() && (!rm.fresh || e.clock().Sub(rm.asked) > MaxCheckAge) {
		if reason, detail := rm.askNow(ctx); reason != "" {
			return rm.refuse(reason, detail)
		}
	}
	per, err := e.cgroups().Remove(rm.trees, e.BeforeRemove)
	r.PerHier = per
	for _, h := range per {
		r.Dirs += h.Removed
	}
	if err != nil {
		if errors.Is(err, apply.ErrBusy) {
			return rm.fail(decide.Busy, err)
		}
		return rm.fail(decide.RemoveFailed, err)
	}
	return nil
}

// askNow asks the runtime and kubelet whether the item is live, until
// both answered within MaxCheckAge of the question (a slow answer is
// asked again, askAttempts times in all): the reason to refuse, or "".
func (rm *removal) askNow(ctx context.Context) (decide.Reason, string) {
	for range askAttempts {
		asked := rm.e.clock()
		if reason, detail := rm.e.recheckLive(ctx, rm.c.it); reason != "" {
			return reason, detail
		}
		if rm.e.clock().Sub(asked) <= MaxCheckAge {
			rm.asked, rm.fresh = asked, true
			return "", ""
		}
	}
	return decide.RuntimeUnreachableNow, fmt.Sprintf("the runtime and kubelet did not answer within %s in %d attempts", MaxCheckAge, askAttempts)
}

// refusal is a check that said no inside a step (KillAll's confirm).
type refusal struct {
	reason decide.Reason
	detail string
}

func (r *refusal) Error() string { return string(r.reason) + ": " + r.detail }

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
		tracked, err := e.kubelet().Tracks(it.PodUID)
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
