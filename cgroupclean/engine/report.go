package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/sirupsen/logrus"
)

// KeptExamples is how many paths a kept summary names.
const KeptExamples = 5

// LogPlan writes, per reason, one record of the orphans the plan keeps
// (COUNT and a few EXAMPLES), not one per orphan: on a node with thousands
// of them, per-orphan records every pass would crowd the action records
// out of journald's rate limit. The per-orphan records are written only at
// log level debug. Entries under the pod root that are not pod cgroups are
// summarised the same way, as a warning.
func LogPlan(log logrus.FieldLogger, s *Scan, pass uint64, dryRun bool) {
	if s.Plan.RuntimeError != "" {
		log.WithFields(logrus.Fields{
			audit.MessageID: audit.IDRuntimeUnreachable, audit.Pass: pass, audit.Error: s.Plan.RuntimeError, audit.DryRun: dryRun,
			audit.Endpoint: s.Endpoint,
		}).Error("container runtime could not be asked: nothing is removed in this pass")
	}
	perItem := debugEnabled(log)
	if s.Inventory != nil && len(s.Inventory.Skipped) > 0 {
		var sum keptSummary
		for _, sk := range s.Inventory.Skipped {
			sum.add(sk.Path)
			if perItem {
				log.WithFields(logrus.Fields{
					audit.MessageID: audit.IDRemovalRefused, audit.CgroupPath: sk.Path, audit.Action: audit.ActionKeep,
					audit.Reason: "not-a-pod-cgroup", audit.Error: sk.Why, audit.Pass: pass, audit.DryRun: dryRun,
				}).Debugf("left alone under the pod root: %s: %s", sk.Path, sk.Why)
			}
		}
		sum.log(log, logrus.WarnLevel, "not-a-pod-cgroup", pass, dryRun, "left alone under the pod root: not pod cgroups")
	}
	// Kept cgroups of unknown state are summarised apart from orphans:
	// they may be live and are never called orphans.
	type keptKey struct {
		state  decide.State
		reason decide.Reason
	}
	sums := map[keptKey]*keptSummary{}
	var keys []keptKey
	kept := func(it decide.Item) {
		if it.State == decide.Live || it.Removes() {
			return
		}
		k := keptKey{it.State, it.Reason}
		sum := sums[k]
		if sum == nil {
			sum = &keptSummary{state: it.State}
			sums[k] = sum
			keys = append(keys, k)
		}
		sum.add(it.Path)
		if perItem {
			logKept(log, it, pass, dryRun)
		}
	}
	for _, it := range s.Plan.Items {
		kept(it)
		if it.State == decide.Live {
			for _, c := range it.Children {
				kept(c)
			}
		}
	}
	slices.SortFunc(keys, func(a, b keptKey) int {
		if a.state != b.state {
			return int(a.state) - int(b.state)
		}
		return strings.Compare(string(a.reason), string(b.reason))
	})
	for _, k := range keys {
		what := "orphans kept"
		if k.state == decide.Unknown {
			what = "cgroups of unknown state kept"
		}
		sums[k].log(log, logrus.InfoLevel, string(k.reason), pass, dryRun, what)
	}
}

// keptSummary counts the cgroups kept for one reason and keeps a few paths.
type keptSummary struct {
	state    decide.State // 0 for entries that are not pod cgroups
	count    int
	examples []string
}

func (k *keptSummary) add(path string) {
	k.count++
	if len(k.examples) < KeptExamples {
		if strings.ContainsAny(path, " \"\\\n") {
			path = strconv.Quote(path)
		}
		k.examples = append(k.examples, path)
	}
}

func (k *keptSummary) log(log logrus.FieldLogger, level logrus.Level, reason string, pass uint64, dryRun bool, what string) {
	f := logrus.Fields{
		audit.MessageID: audit.IDKeptSummary, audit.Action: audit.ActionKeep, audit.Reason: reason,
		audit.Count: k.count, audit.Examples: strings.Join(k.examples, " "), audit.Pass: pass, audit.DryRun: dryRun,
	}
	if k.state != 0 {
		f[audit.State] = k.state.String()
	}
	log.WithFields(f).Logf(level, "%d %s: %s (e.g. %s)", k.count, what, reason, k.examples[0])
}

// debugEnabled tells whether per-item debug records would be written, so
// that thousands of them are not built only to be dropped.
func debugEnabled(log logrus.FieldLogger) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return false
}

func logKept(log logrus.FieldLogger, it decide.Item, pass uint64, dryRun bool) {
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
		log.WithFields(f).Debugf("%s %s kept, state unknown: %s", it.Kind, it.Path, it.Reason)
		return
	}
	log.WithFields(f).Debugf("orphan %s %s kept: %s", it.Kind, it.Path, it.Reason)
}

// LogResults writes the outcome record of each removal (or, in a dry run,
// of what would be done) and one for each final check that refused. The
// intent records, and the outcomes of kills and unit stops, are written by
// Apply as they happen.
func LogResults(log logrus.FieldLogger, results []Result, pass uint64, dryRun bool) {
	for _, r := range results {
		f := itemFields(r.Item, pass, dryRun)
		f[audit.DurationMS] = r.Took.Milliseconds()
		if r.ActionID != "" {
			f[audit.ActionID] = r.ActionID
		}
		if r.Unit != "" {
			f[audit.Unit] = r.Unit
		}
		switch r.Outcome {
		case Removed, WouldRemove:
			f[audit.MessageID], f[audit.Action] = audit.IDOrphanRemoved, audit.ActionRemove
			f[audit.RemovedDirs] = r.Dirs
			verb := "removed"
			if r.Outcome == WouldRemove {
				verb = "would remove (dry run)"
			} else {
				f[audit.RemovedHierarchies] = hierarchies(r.PerHier, true)
			}
			log.WithFields(f).Infof("%s orphan %s %s", verb, r.Item.Kind, r.Item.Path)
		case Refused:
			f[audit.MessageID], f[audit.Action], f[audit.Reason] = audit.IDRemovalRefused, audit.ActionKeep, string(r.Reason)
			f[audit.Error] = r.Detail
			if r.Step != "" {
				// The step's intent is written: this is its outcome, an
				// action record written at every log level.
				f[audit.MessageID], f[audit.Action] = audit.IDActionRefused, r.Step
				log.WithFields(f).Warnf("%s of orphan %s %s not done: %s: %s", r.Step, r.Item.Kind, r.Item.Path, r.Reason, r.Detail)
				continue
			}
			log.WithFields(f).Warnf("orphan %s %s kept at the last check: %s: %s", r.Item.Kind, r.Item.Path, r.Reason, r.Detail)
		case Failed:
			step := r.Step
			if step == "" {
				step = audit.ActionRemove
			}
			f[audit.MessageID], f[audit.Action], f[audit.Reason] = audit.IDRemovalFailed, step, string(r.Reason)
			f[audit.Error] = r.Detail
			if len(r.Killed) > 0 {
				f[audit.Pids] = r.Killed
			}
			msg := fmt.Sprintf("removing orphan %s %s failed: %s", r.Item.Kind, r.Item.Path, r.Detail)
			if step == audit.ActionRemove && len(r.PerHier) > 0 {
				done, left := hierarchies(r.PerHier, true), hierarchies(r.PerHier, false)
				f[audit.RemovedDirs], f[audit.RemovedHierarchies], f[audit.FailedHierarchies] = r.Dirs, done, left
				msg += fmt.Sprintf(" (removed in: %s; left in: %s)", orNone(done), left)
			}
			log.WithFields(f).Error(msg)
		}
	}
}

// hierarchies names, space-separated, the hierarchies where the removal
// left nothing (done) or left a directory (!done), in mount order.
func hierarchies(per []apply.HierarchyResult, done bool) string {
	var names []string
	for _, h := range per {
		if (h.Err == nil) == done && !(done && h.Absent) {
			names = append(names, h.Hierarchy)
		}
	}
	return strings.Join(names, " ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// actionLog writes the intent and outcome records of the actions of one
// removal. Each record goes out before the next step starts, so a crash
// leaves the intent of the step it cut short without its outcome. Intents
// go to sink when set, which says whether the audit sink took them. With
// neither a logger nor a sink (benchmarks, tests) no record is built.
type actionLog struct {
	log  logrus.FieldLogger
	pass uint64
	sink IntentSink
}

// intent records that step is about to act on r's cgroup, and remembers
// the step for the outcome record. An error means the record was not
// taken: the step must not act.
func (a actionLog) intent(r *Result, step, msg string, extra logrus.Fields) error {
	r.Step = step
	if a.log == nil && a.sink == nil {
		return nil
	}
	f := itemFields(r.Item, a.pass, false)
	f[audit.MessageID], f[audit.Action], f[audit.ActionID] = audit.IDActionIntent, step, r.ActionID
	if r.Unit != "" {
		f[audit.Unit] = r.Unit
	}
	for k, v := range extra {
		f[k] = v
	}
	if a.sink != nil {
		if err := a.sink.WriteIntent(f, msg); err != nil {
			return fmt.Errorf("intent record of %s %s not taken: %w", step, r.Item.Path, err)
		}
		return nil
	}
	a.log.WithFields(f).Info(msg)
	return nil
}

// killed records the outcome of a kill that worked.
func (a actionLog) killed(r *Result) {
	r.Step = ""
	if a.log == nil {
		return
	}
	f := itemFields(r.Item, a.pass, false)
	f[audit.MessageID], f[audit.Action], f[audit.ActionID], f[audit.Pids] = audit.IDProcessesKilled, audit.ActionKill, r.ActionID, r.Killed
	a.log.WithFields(f).Warnf("killed %d processes in orphan %s %s", len(r.Killed), r.Item.Kind, r.Item.Path)
}

// unitStopped records the outcome of a unit stop that worked.
func (a actionLog) unitStopped(r *Result) {
	r.Step = ""
	if a.log == nil {
		return
	}
	f := itemFields(r.Item, a.pass, false)
	f[audit.MessageID], f[audit.Action], f[audit.ActionID], f[audit.Unit] = audit.IDUnitStopped, audit.ActionStop, r.ActionID, r.Unit
	a.log.WithFields(f).Infof("stopped unit %s", r.UnitStopped)
}

// removeIntent records the rmdirs about to be done, by hierarchy.
func (a actionLog) removeIntent(r *Result, trees apply.Trees) error {
	names, dirs := treeDirs(trees)
	return a.intent(r, audit.ActionRemove, fmt.Sprintf("removing orphan %s %s: %d directories in %d hierarchies", r.Item.Kind, r.Item.Path, dirs, len(names)),
		logrus.Fields{audit.Hierarchies: strings.Join(names, " "), audit.Dirs: dirs})
}

// newActionID names one removal's records.
func newActionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
		// Not "kept": KEPT counts orphans a gate kept, and none was judged.
		return fmt.Sprintf("RUNTIME UNREACHABLE, nothing removed; %s, all of unknown state (left alone, none judged)",
			plural(sum.Pods, "pod cgroup", "pod cgroups"))
	}
	unknown := ""
	if sum.UnknownPods > 0 {
		unknown = fmt.Sprintf(", %d of unknown state (left alone)", sum.UnknownPods)
	}
	line := fmt.Sprintf("%s: %d live, %d orphaned%s (+%s in live pods); ",
		plural(sum.Pods, "pod cgroup", "pod cgroups"), sum.LivePods, sum.OrphanPods, unknown,
		plural(sum.OrphanContainers, "orphan container", "orphan containers"))
	if results == nil {
		return line + fmt.Sprintf("%d to remove, %s", sum.Remove, plural(sum.Keep, "orphan kept", "orphans kept"))
	}
	removed, refused, failed := Counts(results)
	verb := "removed"
	if len(results) > 0 && results[0].Outcome == WouldRemove {
		verb = "dry run: would remove"
	}
	if n := ObservedCount(results); n > 0 {
		verb = fmt.Sprintf("observe mode: would remove %d, removed", n)
	}
	return line + fmt.Sprintf("%s %d, orphans kept %d, failed %d", verb, removed, sum.Keep+refused, failed)
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
	// No UNIT here: it.Unit is a name guessed from the directory. UNIT is
	// set only on records of a unit systemd was asked about and owns.
	return f
}
