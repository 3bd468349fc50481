package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// auditNode is a live pod, an orphan left by containerd's Stop+Remove and
// an orphan kubelet still tracks, under a cgroup root of the test, and a
// config for `clean` at log level level.
type auditNode struct {
	root                       *testbed.CgroupRoot
	cfg                        string
	liveUID, goneUID, trackUID string
}

func newAuditNode(t *testing.T, level string) auditNode {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "audit")
	ctrd := testbed.StartContainerd(t)
	kubelet := t.TempDir()
	n := auditNode{root: r, liveUID: testbed.RandomUID(), goneUID: testbed.RandomUID(), trackUID: testbed.RandomUID()}
	for _, uid := range []string{n.liveUID, n.goneUID, n.trackUID} {
		if err := r.Mkdir("kubepods/besteffort/pod" + uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(kubelet, "pods", n.trackUID), 0o755); err != nil {
		t.Fatal(err)
	}
	ctrd.RunPod(t, r.Rel("kubepods/besteffort/pod"+n.liveUID), n.liveUID, "live")
	n.cfg = filepath.Join(t.TempDir(), "c.toml")
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nmax_removal_share = 1.0\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n[log]\nlevel = %q\n",
		ctrd.Endpoint(), r.Rel("kubepods"), kubelet, t.TempDir(), level)
	if err := os.WriteFile(n.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n auditNode) path(uid string) string { return n.root.Rel("kubepods/besteffort/pod" + uid) }

// cleanAndCheckRemoval runs `clean`; the orphan's removal has an intent
// record and an outcome record with the same ACTION_ID, as the README's
// queries find them.
func (n auditNode) cleanAndCheckRemoval(t *testing.T, j *testbed.Journal) {
	t.Helper()
	if code, out, errs := runCLI("clean", "--config", n.cfg); code != 0 {
		t.Fatalf("clean: %d\n%s\n%s", code, out, errs)
	}
	j.Sync(t)
	removed := j.Query(t, "MESSAGE_ID="+audit.IDOrphanRemoved, "DRY_RUN=false", "SYSLOG_IDENTIFIER=cgroupcleand")
	if len(removed) != 1 || removed[0]["POD_UID"] != n.goneUID || removed[0][audit.CgroupPath] != n.path(n.goneUID) ||
		removed[0][audit.Action] != "remove" || removed[0][audit.Kind] != "pod" || removed[0][audit.RemovedDirs] != fmt.Sprint(len(n.root.Hierarchies)) || removed[0]["PRIORITY"] != "6" {
		t.Fatalf("removed entries: %v", removed)
	}
	intent := j.Query(t, "MESSAGE_ID="+audit.IDActionIntent, "ACTION_ID="+removed[0][audit.ActionID])
	if removed[0][audit.ActionID] == "" || len(intent) != 1 || intent[0][audit.Action] != "remove" || intent[0][audit.CgroupPath] != n.path(n.goneUID) {
		t.Fatalf("intent of %v: %v", removed[0], intent)
	}
	if live := j.Query(t, "POD_UID="+n.liveUID); len(live) != 0 {
		t.Fatalf("a live pod has per-cgroup entries: %v", live)
	}
}

// TestAuditTrailInJournald runs `clean` against a real containerd with a
// real journald, then asks journald the README's audit questions with the
// same field matches: what was removed (intent and outcome), why orphans
// were kept (the per-reason summary).
func TestAuditTrailInJournald(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		n := newAuditNode(t, "info")
		n.cleanAndCheckRemoval(t, j)
		kept := j.Query(t, "MESSAGE_ID="+audit.IDKeptSummary, "REASON=kubelet-tracks-pod")
		if len(kept) != 1 || kept[0][audit.Count] != "1" || kept[0][audit.Examples] != n.path(n.trackUID) {
			t.Fatalf("why was %s kept: %v", n.trackUID, kept)
		}
		if per := j.Query(t, "POD_UID="+n.trackUID); len(per) != 0 {
			t.Fatalf("a kept orphan has its own entry at level info: %v", per)
		}
		sum := j.Query(t, "MESSAGE_ID="+audit.IDPassSummary)
		if len(sum) != 1 || sum[0][audit.Removed] != "1" || sum[0][audit.Live] != "1" {
			t.Fatalf("summary: %v", sum)
		}
	})
}

// TestAuditTrailAtLevelWarning: log.level = "warning" drops the info
// entries (kept summary, pass summary) but never the records of the
// removal.
func TestAuditTrailAtLevelWarning(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		n := newAuditNode(t, "warning")
		n.cleanAndCheckRemoval(t, j)
		for _, e := range j.Query(t, "SYSLOG_IDENTIFIER=cgroupcleand") {
			if id := e[audit.MessageID]; !audit.IsActionRecord(id) && e["PRIORITY"] > "4" {
				t.Errorf("entry below warning that is not an action record: %v", strings.TrimSpace(e["MESSAGE"]))
			}
		}
	})
}
