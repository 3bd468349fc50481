package engine

import (
	"fmt"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/sirupsen/logrus"
)

// LogPlan writes one entry per orphan the plan keeps, with its reason, so
// `journalctl REASON=...` answers "why was this kept".
func LogPlan(log logrus.FieldLogger, s *Scan, pass uint64, dryRun bool) {
	if s.Plan.RuntimeError != "" {
		log.WithFields(logrus.Fields{
			audit.MessageID: audit.IDRuntimeUnreachable, audit.Pass: pass, audit.Error: s.Plan.RuntimeError, audit.DryRun: dryRun,
			audit.Endpoint: s.Endpoint,
		}).Error("container runtime could not be asked: nothing is removed in this pass")
	}
	if s.Inventory != nil {
		for _, sk := range s.Inventory.Skipped {
			log.WithFields(logrus.Fields{
				audit.MessageID: audit.IDRemovalRefused, audit.CgroupPath: sk.Path, audit.Action: audit.ActionKeep,
				audit.Reason: "not-a-pod-cgroup", audit.Error: sk.Why, audit.Pass: pass, audit.DryRun: dryRun,
			}).Warnf("left alone under the pod root: %s: %s", sk.Path, sk.Why)
		}
	}
	for _, it := range s.Plan.Items {
		logKept(log, it, pass, dryRun)
		for _, c := range it.Children {
			if it.State == decide.Live {
				logKept(log, c, pass, dryRun)
			}
		}
	}
}

func logKept(log logrus.FieldLogger, it decide.Item, pass uint64, dryRun bool) {
	if it.State == decide.Live || it.Removes() {
		return
	}
	f := itemFields(it, pass, dryRun)
	f[audit.MessageID] = audit.IDRemovalRefused
	f[audit.Action] = audit.ActionKeep
	f[audit.Reason] = string(it.Reason)
	f[audit.State] = it.State.String()
	if it.Processes > 0 {
		f[audit.Processes] = it.Processes
	}
	if it.State == decide.Unknown {
		// It may be live: never call it an orphan.
		log.WithFields(f).Infof("%s %s kept, state unknown: %s", it.Kind, it.Path, it.Reason)
		return
	}
	log.WithFields(f).Infof("orphan %s %s kept: %s", it.Kind, it.Path, it.Reason)
}

// LogResults writes one entry per action taken (or, in a dry run, that
// would be taken) and one for each final check that refused.
func LogResults(log logrus.FieldLogger, results []Result, pass uint64, dryRun bool) {
	for _, r := range results {
		f := itemFields(r.Item, pass, dryRun)
		f[audit.DurationMS] = r.Took.Milliseconds()
		if len(r.Killed) > 0 {
			kf := itemFields(r.Item, pass, dryRun)
			kf[audit.MessageID], kf[audit.Action], kf[audit.Pids] = audit.IDProcessesKilled, audit.ActionKill, r.Killed
			log.WithFields(kf).Warnf("killed %d processes in orphan %s %s", len(r.Killed), r.Item.Kind, r.Item.Path)
		}
		if r.UnitStopped != "" {
			uf := itemFields(r.Item, pass, dryRun)
			uf[audit.MessageID], uf[audit.Action] = audit.IDUnitStopped, audit.ActionStop
			log.WithFields(uf).Infof("stopped unit %s", r.UnitStopped)
		}
		switch r.Outcome {
		case Removed, WouldRemove:
			f[audit.MessageID], f[audit.Action] = audit.IDOrphanRemoved, audit.ActionRemove
			f[audit.RemovedDirs] = r.Dirs
			verb := "removed"
			if r.Outcome == WouldRemove {
				verb = "would remove (dry run)"
			}
			log.WithFields(f).Infof("%s orphan %s %s", verb, r.Item.Kind, r.Item.Path)
		case Refused:
			f[audit.MessageID], f[audit.Action], f[audit.Reason] = audit.IDRemovalRefused, audit.ActionKeep, string(r.Reason)
			f[audit.Error] = r.Detail
			log.WithFields(f).Warnf("orphan %s %s kept at the last check: %s: %s", r.Item.Kind, r.Item.Path, r.Reason, r.Detail)
		case Failed:
			f[audit.MessageID], f[audit.Action], f[audit.Reason] = audit.IDRemovalFailed, audit.ActionRemove, string(r.Reason)
			f[audit.Error] = r.Detail
			log.WithFields(f).Errorf("removing orphan %s %s failed: %s", r.Item.Kind, r.Item.Path, r.Detail)
		}
	}
}

// Counts tallies results by outcome.
func Counts(results []Result) (removed, refused, failed int) {
	for _, r := range results {
		switch r.Outcome {
		case Removed, WouldRemove:
			removed++
		case Refused:
			refused++
		case Failed:
			failed++
		}
	}
	return
}

// LogSummary writes the pass summary entry.
func LogSummary(log logrus.FieldLogger, s *Scan, results []Result, pass uint64, dryRun bool) {
	removed, refused, failed := Counts(results)
	sum := s.Plan.Summary
	f := logrus.Fields{
		audit.MessageID: audit.IDPassSummary, audit.Pass: pass, audit.DryRun: dryRun,
		audit.Removed: removed, audit.Kept: sum.Keep + refused, audit.Failed: failed,
		audit.DurationMS: s.Took.Milliseconds(),
	}
	// Without the runtime's answer nothing is known to be live or
	// orphaned: no LIVE=0, no ORPHANS=N, only UNKNOWN.
	if s.Plan.RuntimeError == "" {
		f[audit.Live], f[audit.Orphans] = sum.LivePods, sum.OrphanPods+sum.OrphanContainers
	}
	if sum.UnknownPods > 0 || s.Plan.RuntimeError != "" {
		f[audit.Unknown] = sum.UnknownPods
	}
	log.WithFields(f).Info(SummaryLine(s, results))
}

// SummaryLine is the one-line summary of a pass (sd_notify STATUS=, CLI).
// With no results (a scan), it says what a clean would do.
func SummaryLine(s *Scan, results []Result) string {
	if s.NoPodRoot {
		return "no pod cgroup root found: nothing to do"
	}
	sum := s.Plan.Summary
	if s.Plan.RuntimeError != "" {
		return fmt.Sprintf("RUNTIME UNREACHABLE, nothing removed; %s, all of unknown state (kept)",
			plural(sum.Pods, "pod cgroup", "pod cgroups"))
	}
	unknown := ""
	if sum.UnknownPods > 0 {
		unknown = fmt.Sprintf(", %d of unknown state (kept)", sum.UnknownPods)
	}
	line := fmt.Sprintf("%s: %d live, %d orphaned%s (+%s in live pods); ",
		plural(sum.Pods, "pod cgroup", "pod cgroups"), sum.LivePods, sum.OrphanPods, unknown,
		plural(sum.OrphanContainers, "orphan container", "orphan containers"))
	if results == nil {
		return line + fmt.Sprintf("%d to remove, %d kept", sum.Remove, sum.Keep)
	}
	removed, refused, failed := Counts(results)
	verb := "removed"
	if len(results) > 0 && results[0].Outcome == WouldRemove {
		verb = "dry run: would remove"
	}
	return line + fmt.Sprintf("%s %d, kept %d, failed %d", verb, removed, sum.Keep+refused, failed)
}

// plural is "1 thing" or "N things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func itemFields(it decide.Item, pass uint64, dryRun bool) logrus.Fields {
	f := logrus.Fields{
		audit.CgroupPath: it.Path, audit.PodUID: it.PodUID, audit.Kind: it.Kind.String(),
		audit.Pass: pass, audit.DryRun: dryRun,
	}
	if it.ContainerID != "" {
		f[audit.ContainerID] = it.ContainerID
	}
	if it.Unit != "" {
		f[audit.Unit] = it.Unit
	}
	return f
}
