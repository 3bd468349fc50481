package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := testCLI.run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "cgroupcleand ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errs := runCLI("frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
	if code, _, _ := runCLI(); code != 2 {
		t.Fatalf("no command: %d", code)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(cfg, []byte("[clean]\nmin_age = \"-5m\"\nmax_removals_per_pass = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"scan", "clean"} {
		code, _, errs := runCLI(cmd, "--config", cfg)
		if code != 2 || !strings.Contains(errs, "clean.min_age") || !strings.Contains(errs, "line 2") || !strings.Contains(errs, "clean.max_removals_per_pass") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, errs)
		}
	}
	if code, _, errs := runCLI("scan", "--config", filepath.Join(t.TempDir(), "missing.toml")); code != 2 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing config named explicitly must fail: %d %q", code, errs)
	}
}

// TestScanCleanCLI runs the command line against a real containerd and a
// test cgroup root: scan --json, clean --dry-run, clean.
func TestScanCleanCLI(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "cli")
	ctrd := testbed.StartContainerd(t)
	liveUID, orphanUID := testbed.RandomUID(), testbed.RandomUID()
	for _, uid := range []string{liveUID, orphanUID} {
		if err := r.Mkdir("kubepods/burstable/pod" + uid); err != nil {
			t.Fatal(err)
		}
	}
	ctrd.RunPod(t, r.Rel("kubepods/burstable/pod"+liveUID), liveUID, "live")
	kubelet := t.TempDir()
	if err := os.Mkdir(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.toml")
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nmax_removal_share = 1.0\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n[log]\nformat = \"text\"\n",
		ctrd.Endpoint(), r.Rel("kubepods"), kubelet, t.TempDir())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI("scan", "--config", cfg, "--json")
	if code != 0 {
		t.Fatalf("scan: %d %s", code, errs)
	}
	var doc struct {
		Scan struct {
			Driver string `json:"driver"`
			Plan   struct {
				Items []struct {
					PodUID string `json:"pod_uid"`
					State  string `json:"state"`
					Action string `json:"action"`
				} `json:"items"`
			} `json:"plan"`
		} `json:"scan"`
		Memcg *struct {
			Dying int64 `json:"dying"`
		} `json:"memcg"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("scan --json is not JSON: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, it := range doc.Scan.Plan.Items {
		got[it.PodUID] = it.State + "/" + it.Action
	}
	if got[liveUID] != "live/keep" || got[orphanUID] != "orphan/remove" || doc.Scan.Driver != "cgroupfs" {
		t.Fatalf("scan --json: %v driver %q", got, doc.Scan.Driver)
	}
	if doc.Memcg == nil {
		t.Fatal("scan --json has no memcg health")
	}
	if code, out, _ := runCLI("scan", "--config", cfg); code != 0 || !strings.Contains(out, "memcg: dying=") || !strings.Contains(out, "1 to remove") {
		t.Fatalf("scan text: %d\n%s", code, out)
	}

	if code, out, errs := runCLI("clean", "--config", cfg, "--dry-run"); code != 0 || !strings.Contains(out, "would-remove") {
		t.Fatalf("dry run: %d %s %s", code, out, errs)
	}
	if r.Exists("kubepods/burstable/pod"+orphanUID) != len(r.Hierarchies) {
		t.Fatal("--dry-run removed something")
	}
	if code, out, errs := runCLI("clean", "--config", cfg); code != 0 || !strings.Contains(out, "removed ") {
		t.Fatalf("clean: %d %s %s", code, out, errs)
	}
	if r.Exists("kubepods/burstable/pod"+orphanUID) != 0 || r.Exists("kubepods/burstable/pod"+liveUID) != len(r.Hierarchies) {
		t.Fatal("clean removed the wrong thing")
	}
	// With the runtime gone, clean exits non-zero and removes nothing.
	if err := r.Mkdir("kubepods/burstable/pod" + orphanUID); err != nil {
		t.Fatal(err)
	}
	ctrd.Kill9(t)
	if code, out, _ := runCLI("clean", "--config", cfg); code != 1 || !strings.Contains(out, "UNREACHABLE") {
		t.Fatalf("clean with runtime down: %d\n%s", code, out)
	}
	if r.Exists("kubepods/burstable/pod"+orphanUID) != len(r.Hierarchies) {
		t.Fatal("clean removed an orphan while the runtime was down")
	}
	// scan says the state is unknown: the live pod is not an orphan.
	// Exit 1, as clean: nothing could be judged (the man page's EXIT STATUS).
	code, out, _ = runCLI("scan", "--config", cfg)
	if code != 1 || !strings.Contains(out, "all of unknown state") {
		t.Fatalf("scan with runtime down: %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, liveUID) && (!strings.Contains(line, "unknown") || strings.Contains(line, "orphan")) {
			t.Fatalf("live pod's row with runtime down: %q", line)
		}
	}
	// The exit status does not depend on the output format.
	for _, args := range [][]string{{"scan", "--json"}, {"clean", "--dry-run"}, {"clean", "--dry-run", "--json"}, {"clean", "--json"}} {
		if code, out, errs := runCLI(append(args, "--config", cfg)...); code != 1 {
			t.Errorf("%v with the runtime down: exit %d, want 1\n%s%s", args, code, out, errs)
		}
	}
	ctrd.Restart(t)
}
