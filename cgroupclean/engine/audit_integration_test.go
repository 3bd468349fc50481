package engine_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
)

// auditPass is the daemon's pass: scan, the plan's records, apply with a
// record per result as it comes, the summary.
func auditPass(t *testing.T, e *engine.Engine, log *logrus.Logger, pass uint64) []engine.Result {
	t.Helper()
	ctx := context.Background()
	e.Log, e.Pass = log, pass
	s, err := e.Scan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine.LogPlan(log, s, pass, false)
	e.OnResult = func(r engine.Result) { engine.LogResults(log, []engine.Result{r}, pass, false) }
	results := e.Apply(ctx, s, false)
	engine.LogSummary(log, s, results, pass, false)
	return results
}

func journalLogger(t *testing.T, level string, fallback io.Writer) *logrus.Logger {
	t.Helper()
	l, err := logging.New(logging.FormatJournal, level, fallback)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// one returns the only entry of the query, or fails.
func one(t *testing.T, j *testbed.Journal, matches ...string) map[string]string {
	t.Helper()
	got := j.Query(t, matches...)
	if len(got) != 1 {
		t.Fatalf("%d entries match %v, want 1: %v", len(got), matches, got)
	}
	return got[0]
}

// TestActionRecordsAtWarningLevel: with log.level = "warning" a real
// removal (an orphan left by containerd's Stop+Remove) still writes its
// intent and its outcome, with one ACTION_ID, naming every hierarchy; the
// info entries that are not action records (kept summary, pass summary)
// follow the level and are not written. The live pod keeps every directory.
func TestActionRecordsAtWarningLevel(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		n := newNode(t)
		liveUID, _, _ := n.runPod(t, "burstable", true)
		liveDirs := n.dirs(t, n.podPath("burstable", liveUID))
		goneUID, sb, _ := n.runPod(t, "besteffort", false)
		n.ctrd.StopRemovePod(t, sb)
		trackedUID := testbed.RandomUID()
		must(t, n.root.Mkdir(n.podPath("besteffort", trackedUID)))
		must(t, os.Mkdir(filepath.Join(n.kubelet, "pods", trackedUID), 0o755))

		results := auditPass(t, n.engine(t), journalLogger(t, "warning", os.Stderr), 4)
		if len(results) != 1 || results[0].Outcome != engine.Removed || results[0].Item.PodUID != goneUID {
			t.Fatalf("results %+v", results)
		}
		path := n.root.Rel(n.podPath("besteffort", goneUID))
		intent := one(t, j, "MESSAGE_ID="+audit.IDActionIntent)
		removed := one(t, j, "MESSAGE_ID="+audit.IDOrphanRemoved)
		var all []string
		for _, h := range n.root.Hierarchies {
			all = append(all, h.Name)
		}
		for k, v := range map[string]string{
			audit.CgroupPath: path, audit.PodUID: goneUID, audit.Action: "remove", audit.Pass: "4",
			audit.Hierarchies: strings.Join(all, " "), audit.Dirs: strconv.Itoa(len(all)), "PRIORITY": "6",
		} {
			if intent[k] != v {
				t.Errorf("intent %s = %q, want %q", k, intent[k], v)
			}
		}
		if intent[audit.ActionID] == "" || removed[audit.ActionID] != intent[audit.ActionID] || removed[audit.Action] != "remove" ||
			removed[audit.RemovedHierarchies] != strings.Join(all, " ") || removed[audit.RemovedDirs] != strconv.Itoa(len(all)) {
			t.Errorf("outcome %v does not match intent %v", removed, intent)
		}
		// The journal's own sequence numbers put the intent first.
		if in, out := seqnum(t, intent), seqnum(t, removed); in >= out {
			t.Errorf("intent seqnum %d not before outcome %d", in, out)
		}
		for _, id := range []string{audit.IDKeptSummary, audit.IDPassSummary, audit.IDRemovalRefused} {
			if got := j.Query(t, "MESSAGE_ID="+id); len(got) != 0 {
				t.Errorf("info entry %s written at level warning: %v", id, got)
			}
		}
		if got := n.dirs(t, n.podPath("burstable", liveUID)); fmt.Sprint(got) != fmt.Sprint(liveDirs) {
			t.Fatalf("live pod dirs changed: %v, were %v", got, liveDirs)
		}
	})
}

// seqnum is the entry's sequence number in the journal, from its cursor
// ("s=...;i=<seqnum>;...").
func seqnum(t *testing.T, e map[string]string) uint64 {
	t.Helper()
	for _, part := range strings.Split(e["__CURSOR"], ";") {
		if v, ok := strings.CutPrefix(part, "i="); ok {
			if n, err := strconv.ParseUint(v, 16, 64); err == nil {
				return n
			}
		}
	}
	t.Fatalf("entry without a sequence number in __CURSOR: %v", e)
	return 0
}

// TestFailedRemovalNamesRemovedHierarchies: the kernel refuses the rmdir in
// one hierarchy (a process moved into the orphan's directory there right
// before its removal, after the final checks) while the others are
// removed. The failure record names both sets, the intent precedes it
// with the same ACTION_ID, and the busy directory is still there.
func TestFailedRemovalNamesRemovedHierarchies(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		n := newNode(t)
		if len(n.root.Hierarchies) < 3 {
			t.Skip("needs three hierarchies")
		}
		uid, sb, _ := n.runPod(t, "burstable", false)
		n.ctrd.StopRemovePod(t, sb)
		rel := n.podPath("burstable", uid)
		busy := n.root.Hierarchies[len(n.root.Hierarchies)/2]
		proc := testbed.StartProcess(t, "sleep", "300")
		e := n.engine(t)
		e.BeforeRemove = func(h hierarchy.Hierarchy, dir string) {
			if h.Name == busy.Name {
				must(t, os.WriteFile(filepath.Join(busy.Path(n.root.Rel(rel)), "cgroup.procs"), []byte(strconv.Itoa(proc.PID)), 0o644))
			}
		}
		results := auditPass(t, e, journalLogger(t, "warning", os.Stderr), 1)
		if len(results) != 1 || results[0].Outcome != engine.Failed || results[0].Reason != "busy" {
			t.Fatalf("results %+v", results)
		}
		var removed []string
		for _, h := range n.root.Hierarchies {
			if h.Name != busy.Name {
				removed = append(removed, h.Name)
			}
		}
		failed := one(t, j, "MESSAGE_ID="+audit.IDRemovalFailed)
		intent := one(t, j, "MESSAGE_ID="+audit.IDActionIntent)
		for k, v := range map[string]string{
			audit.Action: "remove", audit.Reason: "busy", audit.ActionID: intent[audit.ActionID],
			audit.RemovedHierarchies: strings.Join(removed, " "), audit.FailedHierarchies: busy.Name,
			audit.RemovedDirs: strconv.Itoa(len(removed)), "PRIORITY": "3",
		} {
			if failed[k] != v {
				t.Errorf("failure record %s = %q, want %q", k, failed[k], v)
			}
		}
		if !strings.Contains(failed["MESSAGE"], "left in: "+busy.Name) || !strings.Contains(failed[audit.Error], "device or resource busy") {
			t.Errorf("failure record: %v", failed)
		}
		if _, err := os.Stat(busy.Path(n.root.Rel(rel))); err != nil {
			t.Fatalf("busy directory: %v", err)
		}
		if got := n.root.Exists(rel); got != 1 {
			t.Fatalf("orphan left in %d hierarchies, want 1", got)
		}
		must(t, syscall.Kill(proc.PID, syscall.SIGKILL))
	})
}

// TestKeptOrphansSummarised: 2,000 orphans kept for two reasons make one
// summary record per reason (COUNT, five EXAMPLES), not 2,000 records;
// the one removal allowed still has its own intent and outcome.
func TestKeptOrphansSummarised(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		n := newNode(t)
		n.runPod(t, "burstable", false)
		// One hierarchy is enough for the inventory; it keeps the tree cheap.
		h := n.root.Hierarchies[0]
		const orphans, tracked = 2000, 700
		for i := range orphans {
			uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xa0d17, i)
			must(t, n.root.MkdirIn(h, n.podPath("besteffort", uid)))
			if i < tracked {
				must(t, os.Mkdir(filepath.Join(n.kubelet, "pods", uid), 0o755))
			}
		}
		e := n.engine(t)
		e.Config.Clean.MaxRemovalsPerPass = 1
		results := auditPass(t, e, journalLogger(t, "info", os.Stderr), 1)
		if len(results) != 1 || results[0].Outcome != engine.Removed {
			t.Fatalf("results %+v", results)
		}
		all := j.Query(t, "SYSLOG_IDENTIFIER=cgroupcleand")
		// 2 summaries + intent + outcome + pass summary.
		if len(all) > 10 {
			t.Fatalf("%d entries for %d kept orphans", len(all), orphans-1)
		}
		for reason, count := range map[string]int{"kubelet-tracks-pod": tracked, "removal-limit": orphans - tracked - 1} {
			s := one(t, j, "MESSAGE_ID="+audit.IDKeptSummary, "REASON="+reason)
			ex := strings.Fields(s[audit.Examples])
			if s[audit.Count] != strconv.Itoa(count) || len(ex) != engine.KeptExamples || s[audit.Action] != "keep" {
				t.Errorf("summary %s: %v", reason, s)
			}
			for _, p := range ex {
				if !strings.HasPrefix(p, n.root.Rel("kubepods/besteffort/pod")) {
					t.Errorf("example %q is not an orphan's path", p)
				}
			}
		}
		one(t, j, "MESSAGE_ID="+audit.IDActionIntent)
		one(t, j, "MESSAGE_ID="+audit.IDOrphanRemoved)
		if sum := one(t, j, "MESSAGE_ID="+audit.IDPassSummary); sum[audit.Kept] != strconv.Itoa(orphans-1) {
			t.Errorf("pass summary: %v", sum)
		}
	})
}

// TestStalledJournaldDoesNotHoldPass: with journald stopped (SIGSTOP) and
// its socket queue full, a pass does not hang on it, and the removal whose
// intent record journald did not take is not done: refused as
// audit-unavailable, its outcome record on the fallback output, the orphan
// still there. Once journald reads again the next pass removes it, and the
// missed entries are counted in the notice.
func TestStalledJournaldDoesNotHoldPass(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		var fallback testbed.SyncBuffer
		n, e, log, uid := auditedOrphan(t, "debug", &fallback)

		pid := j.PID()
		must(t, syscall.Kill(pid, syscall.SIGSTOP))
		stopped := true
		defer func() {
			if stopped {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}()
		// Fill journald's socket queue (its length depends on the kernel)
		// until an entry is refused.
		for i := 0; !strings.Contains(fallback.String(), "journald send failed"); i++ {
			if i == 100000 {
				t.Fatal("journald's queue never filled")
			}
			log.WithField("FILL", i).Debug("filling the stopped journald's queue")
		}
		start := time.Now()
		results := auditPass(t, e, log, 1)
		took := time.Since(start)
		if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.AuditUnavailable ||
			n.root.Exists(n.podPath("besteffort", uid)) != len(n.root.Hierarchies) {
			t.Fatalf("with journald stopped the removal must be refused as audit-unavailable: %+v", results)
		}
		// Budget 1 s; the rest is the pass itself on a busy machine.
		if took > logging.DefaultSendBudget+4*time.Second {
			t.Fatalf("pass took %s with journald stopped", took)
		}
		t.Logf("pass with journald stopped: %s", took)
		must(t, syscall.Kill(pid, syscall.SIGCONT))
		stopped = false
		j.Sync(t) // journald has read its queue: the next send finds room
		results = auditPass(t, e, log, 2)
		if len(results) != 1 || results[0].Outcome != engine.Removed || n.root.Exists(n.podPath("besteffort", uid)) != 0 {
			t.Fatalf("the next pass after journald is back must remove the orphan: %+v", results)
		}
		if !logging.Flush(log, 5*time.Second) {
			t.Fatal("fallback not flushed")
		}
		notice := one(t, j, "MESSAGE_ID="+audit.IDJournalDropped)
		dropped, _ := strconv.Atoi(notice[audit.JournalDropped])
		text := fallback.String()
		if dropped == 0 || strings.Count(text, "level=") != dropped {
			t.Fatalf("notice says %d dropped; fallback has %d entries:\n%.2000s", dropped, strings.Count(text, "level="), text)
		}
		// The refused intent and its outcome are on the fallback output.
		if !strings.Contains(text, audit.IDActionRefused) || !strings.Contains(text, string(decide.AuditUnavailable)) {
			t.Fatalf("no refused outcome record on the fallback:\n%.3000s", text)
		}
		one(t, j, "MESSAGE_ID="+audit.IDOrphanRemoved)
		t.Logf("journald stopped: %d entries went to the fallback; notice: %s", dropped, notice["MESSAGE"])
	})
}

// auditedOrphan is a node with a live pod and an orphan (its sandbox
// stopped and removed), and an engine whose intent records go to journald
// through a logger at level, falling back to fallback.
func auditedOrphan(t *testing.T, level string, fallback io.Writer) (*node, *engine.Engine, *logrus.Logger, string) {
	t.Helper()
	n := newNode(t)
	n.runPod(t, "burstable", false)
	uid, sb, _ := n.runPod(t, "besteffort", false)
	n.ctrd.StopRemovePod(t, sb)
	log := journalLogger(t, level, fallback)
	e := n.engine(t)
	e.Intents = logging.Intents(log)
	return n, e, log, uid
}

// TestNoActionWhileJournaldGone: with journald killed (its socket refuses
// datagrams) nothing is removed, the refusal is named audit-unavailable;
// after journald restarts the orphan goes, with its intent and outcome in
// the journal.
func TestNoActionWhileJournaldGone(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		var fallback testbed.SyncBuffer
		n, e, log, uid := auditedOrphan(t, "error", &fallback)
		j.Kill(t)
		results := auditPass(t, e, log, 1)
		if len(results) != 1 || results[0].Outcome != engine.Refused || results[0].Reason != decide.AuditUnavailable ||
			n.root.Exists(n.podPath("besteffort", uid)) != len(n.root.Hierarchies) {
			t.Fatalf("with journald gone the removal must be refused as audit-unavailable: %+v", results)
		}
		j.Restart(t)
		results = auditPass(t, e, log, 2)
		if len(results) != 1 || results[0].Outcome != engine.Removed || n.root.Exists(n.podPath("besteffort", uid)) != 0 {
			t.Fatalf("after journald restarted: %+v", results)
		}
		intent := one(t, j, "MESSAGE_ID="+audit.IDActionIntent, "PASS=2")
		one(t, j, "MESSAGE_ID="+audit.IDOrphanRemoved, "ACTION_ID="+intent[audit.ActionID])
	})
}

// TestUnitOnlyWhenSystemdOwnsIt: with the systemd driver and a real
// systemd --user, an orphan pod slice that is a systemd unit is stopped,
// and its records name the UNIT; an orphan pod slice directory systemd has
// no unit for (made with mkdir, as the cgroupfs code of a runtime leaves
// it), and an orphan crio-<id>.scope directory in a live pod, are removed
// with rmdir, and none of their records has a UNIT.
func TestUnitOnlyWhenSystemdOwnsIt(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		sd := testbed.StartUserSystemd(t)
		ctrd := testbed.StartContainerd(t)
		slicePath := func(uid string) string {
			return "kubepods.slice/kubepods-burstable.slice/" + names.SystemdPodSlice(names.Burstable, uid)
		}
		liveUID := testbed.RandomUID()
		liveProc := testbed.StartProcess(t, "sleep", "300")
		sd.StartScope(t, slicePath(liveUID)+"/crio-"+hexID(20)+".scope", liveProc.PID)
		ctrd.RunPod(t, sd.CgroupPath("sandboxes/pod"+liveUID), liveUID, "live")
		strayScope := slicePath(liveUID) + "/crio-" + hexID(21) + ".scope"
		must(t, sd.Root.Mkdir(strayScope))

		unitUID := testbed.RandomUID()
		p := testbed.StartProcess(t, "sleep", "300")
		sd.StartScope(t, slicePath(unitUID)+"/crio-"+hexID(22)+".scope", p.PID)
		must(t, syscall.Kill(p.PID, syscall.SIGKILL))
		p.Wait(5 * time.Second)
		dirUID := testbed.RandomUID()
		must(t, sd.Root.Mkdir(slicePath(dirUID)))

		m := sd.Manager(t)
		unit := names.SystemdPodSlice(names.Burstable, unitUID)
		waitActive(t, m, unit)

		cfg := config.Default()
		cfg.Runtime.Endpoint = ctrd.Endpoint()
		cfg.Cgroup.PodRoot = sd.Root.Rel("kubepods.slice")
		cfg.Cgroup.KubeletRoot = testbed.KubeletRoot(t)
		cfg.Clean.MinAge, cfg.Clean.ConfirmPasses, cfg.Clean.MaxRemovalShare = config.Duration{}, 1, 1
		cfg.Clean.UseSystemd, cfg.Clean.SystemdBus = "always", sd.Bus
		c := dialCRI(t, cfg)
		e := &engine.Engine{Config: cfg, Runtime: c, Units: engine.SystemdUnits(m, 10*time.Second)}
		results := auditPass(t, e, journalLogger(t, "info", os.Stderr), 1)
		if len(results) != 3 {
			t.Fatalf("results %+v", results)
		}
		for _, r := range results {
			if r.Outcome != engine.Removed {
				t.Fatalf("result %+v", r)
			}
		}

		stopped := one(t, j, "MESSAGE_ID="+audit.IDUnitStopped)
		if stopped[audit.Unit] != unit || stopped[audit.PodUID] != unitUID {
			t.Errorf("unit stopped record: %v", stopped)
		}
		stopIntent := one(t, j, "MESSAGE_ID="+audit.IDActionIntent, "ACTION=stop-unit")
		if stopIntent[audit.Unit] != unit || stopIntent[audit.ActionID] != stopped[audit.ActionID] {
			t.Errorf("stop intent %v, outcome %v", stopIntent, stopped)
		}
		withUnit := one(t, j, "MESSAGE_ID="+audit.IDOrphanRemoved, "POD_UID="+unitUID)
		if withUnit[audit.Unit] != unit {
			t.Errorf("removal after the stop has UNIT %q, want %q", withUnit[audit.Unit], unit)
		}
		for _, path := range []string{sd.CgroupPath(slicePath(dirUID)), sd.CgroupPath(strayScope)} {
			recs := j.Query(t, "CGROUP_PATH="+path)
			if len(recs) != 2 { // intent, outcome
				t.Fatalf("%s: %d records: %v", path, len(recs), recs)
			}
			for _, r := range recs {
				if u, ok := r[audit.Unit]; ok {
					t.Errorf("%s: record %s names UNIT %q, which systemd does not have", path, r[audit.MessageID], u)
				}
			}
		}
		if got := j.Query(t, "UNIT="+names.SystemdPodSlice(names.Burstable, dirUID)); len(got) != 0 {
			t.Errorf("records name a unit guessed from a directory: %v", got)
		}
		if !liveProc.Alive() {
			t.Fatal("the live pod's process died")
		}
	})
}
