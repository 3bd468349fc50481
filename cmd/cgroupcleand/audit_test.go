package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestAuditTrailInJournald runs `clean` against a real containerd with a
// real journald, then asks journald the audit questions of docs/auditing.md with the
// same field matches: what was removed, why a pod was kept.
func TestAuditTrailInJournald(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		r := testbed.NewCgroupRoot(t, "audit")
		ctrd := testbed.StartContainerd(t)
		kubelet := t.TempDir()
		liveUID, goneUID, trackedUID := testbed.RandomUID(), testbed.RandomUID(), testbed.RandomUID()
		for _, uid := range []string{liveUID, goneUID, trackedUID} {
			if err := r.Mkdir("kubepods/besteffort/pod" + uid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(kubelet, "pods", trackedUID), 0o755); err != nil {
			t.Fatal(err)
		}
		ctrd.RunPod(t, r.Rel("kubepods/besteffort/pod"+liveUID), liveUID, "live")
		cfg := filepath.Join(t.TempDir(), "c.toml")
		text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nmax_removal_share = 1.0\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n",
			ctrd.Endpoint(), r.Rel("kubepods"), kubelet, t.TempDir())
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, errs := runCLI("clean", "--config", cfg); code != 0 {
			t.Fatalf("clean: %d\n%s\n%s", code, out, errs)
		}
		j.Sync(t)

		removed := j.Query(t, "MESSAGE_ID="+audit.IDOrphanRemoved, "DRY_RUN=false", "SYSLOG_IDENTIFIER=cgroupcleand")
		if len(removed) != 1 || removed[0]["POD_UID"] != goneUID || removed[0][audit.CgroupPath] != r.Rel("kubepods/besteffort/pod"+goneUID) ||
			removed[0][audit.Action] != "remove" || removed[0][audit.Kind] != "pod" || removed[0][audit.RemovedDirs] != fmt.Sprint(len(r.Hierarchies)) || removed[0]["PRIORITY"] != "6" {
			t.Fatalf("removed entries: %v", removed)
		}
		kept := j.Query(t, "POD_UID="+trackedUID)
		if len(kept) != 1 || kept[0][audit.MessageID] != audit.IDRemovalRefused || kept[0][audit.Reason] != "kubelet-tracks-pod" {
			t.Fatalf("why was %s kept: %v", trackedUID, kept)
		}
		if live := j.Query(t, "POD_UID="+liveUID); len(live) != 0 {
			t.Fatalf("a live pod has per-cgroup entries: %v", live)
		}
		sum := j.Query(t, "MESSAGE_ID="+audit.IDPassSummary)
		if len(sum) != 1 || sum[0][audit.Removed] != "1" || sum[0][audit.Live] != "1" {
			t.Fatalf("summary: %v", sum)
		}
	})
}
