package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
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
}

// Apply carries out the plan's removals, one cgroup at a time. Before each
// it asks the runtime again (a pod that came back in the meantime is kept;
// if the runtime fails, the rest of the pass is refused), checks kubelet's
// pod dir again and counts the processes again. The removal in flight is
// always finished, even when ctx is cancelled between checks and rmdir:
// ctx is only checked before a removal starts, so no pod is left half
// removed by a shutdown.
func (e *Engine) Apply(ctx context.Context, s *Scan, dryRun bool) []Result {
	var results []Result
	add := func(r Result) {
		results = append(results, r)
		if e.OnResult != nil {
			e.OnResult(r)
		}
	}
	removals := decide.Removals(s.Plan)
	for i, it := range removals {
		if ctx.Err() != nil {
			for _, rest := range removals[i:] {
				add(Result{Item: rest, Outcome: Refused, Reason: decide.RuntimeUnreachableNow, Detail: "pass stopped: " + ctx.Err().Error()})
			}
			break
		}
		if dryRun {
			add(Result{Item: it, Outcome: WouldRemove})
			continue
		}
		r := e.removeOne(ctx, s, it)
		add(r)
		if r.Reason == decide.RuntimeUnreachableNow {
			for _, rest := range removals[i+1:] {
				add(Result{Item: rest, Outcome: Refused, Reason: decide.RuntimeUnreachableNow, Detail: r.Detail})
			}
			break
		}
	}
	return results
}

func (e *Engine) removeOne(ctx context.Context, s *Scan, it decide.Item) Result {
	start := time.Now()
	r := Result{Item: it}
	refuse := func(reason decide.Reason, detail string) Result {
		r.Outcome, r.Reason, r.Detail, r.Took = Refused, reason, detail, time.Since(start)
		return r
	}
	fail := func(reason decide.Reason, err error) Result {
		r.Outcome, r.Reason, r.Detail, r.Took = Failed, reason, err.Error(), time.Since(start)
		return r
	}

	// Final checks, as close to the rmdir as they can be.
	snap, err := e.snapshot(ctx)
	if err != nil {
		return refuse(decide.RuntimeUnreachableNow, err.Error())
	}
	if why := listedNow(snap, it); why != "" {
		return refuse(decide.RuntimeListsNow, why)
	}
	if it.Kind == decide.PodKind {
		tracked, err := live.KubeletTracks(e.Config.Cgroup.KubeletRoot, it.PodUID)
		if err != nil {
			return refuse(decide.KubeletStateUnknown, err.Error())
		}
		if tracked {
			return refuse(decide.KubeletTracksNow, filepath.Join(e.Config.Cgroup.KubeletRoot, "pods", it.PodUID)+" exists")
		}
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
	if pids := trees.Pids; len(pids) > 0 {
		if it.Action != decide.KillRemove {
			return refuse(decide.ProcessesAppeared, fmt.Sprintf("%d processes: %v", len(pids), pids))
		}
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		kr, err := apply.KillAll(kctx, s.Hierarchies, it.Path)
		cancel()
		r.Killed = kr.Pids
		if err != nil {
			return fail(decide.KillFailed, err)
		}
		if trees, err = apply.ReadTrees(s.Hierarchies, it.Path); err != nil {
			return fail(decide.RemoveFailed, err)
		}
	}

	// From here on the removal runs to its end even if ctx is cancelled.
	ctx = context.WithoutCancel(ctx)
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
		if loaded {
			if filepath.Clean(cg) != filepath.Clean(it.Path) {
				return refuse(decide.UnitNotOwned, fmt.Sprintf("unit %s owns %q, not %q", it.Unit, cg, it.Path))
			}
			detail, err := e.Units.Stop(ctx, it.Unit)
			if err != nil {
				return fail(decide.RemoveFailed, fmt.Errorf("stop unit %s: %w", it.Unit, err))
			}
			r.UnitStopped = it.Unit + " (" + detail + ")"
			// systemd removed the unit's own directories.
			if trees, err = apply.ReadTrees(s.Hierarchies, it.Path); err != nil {
				return fail(decide.RemoveFailed, err)
			}
		}
	}
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
	r.Outcome, r.Took = Removed, time.Since(start)
	return r
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
