package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// The exit status of clean does not depend on the output format: with a
// removal that the kernel refuses (its directory in one hierarchy is a
// mount point, so rmdir says EBUSY, as for a cgroup with tasks), `clean`
// and `clean --json` both exit 1, and both report the failure.
func TestCleanExitStatusSameInJSON(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "exit")
	ctrd := testbed.StartContainerd(t)
	uid := testbed.RandomUID()
	rel := "kubepods/burstable/pod" + uid
	if err := r.Mkdir(rel); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(r.Hierarchies[0].Path(r.Name), rel)
	cfg := filepath.Join(t.TempDir(), "c.toml")
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nmax_removal_share = 1.0\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n[memcg]\nmode = \"off\"\n[log]\nformat = \"text\"\nlevel = \"error\"\n",
		ctrd.Endpoint(), r.Rel("kubepods"), testbed.KubeletRoot(t), t.TempDir())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// The bind mount lives in the child's mount namespace only, and goes
	// with it.
	script := `mount --bind "$1" "$1" && shift && exec "$@"`
	for _, format := range [][]string{nil, {"--json"}} {
		args := append([]string{"clean", "--config", cfg}, format...)
		cmd := testbed.PrivateLockCommand(append([]string{"/bin/sh", "-c", script, "sh", busy, os.Args[0], "-test.run=^$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), cliEnv+"=-")
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("%v with a busy removal: exit %d, want 1\n%s", args, code, out)
		}
		if format == nil {
			if !strings.Contains(string(out), "failed 1") {
				t.Errorf("clean does not report the failure:\n%s", out)
			}
			continue
		}
		var doc struct {
			Results []struct {
				Outcome string `json:"outcome"`
				Reason  string `json:"reason"`
			} `json:"results"`
		}
		if err := json.Unmarshal(out[strings.IndexByte(string(out), '{'):], &doc); err != nil || len(doc.Results) != 1 || doc.Results[0].Outcome != "failed" || doc.Results[0].Reason != "busy" {
			t.Errorf("clean --json: %v %+v\n%s", err, doc, out)
		}
	}
	if r.Exists(rel) != 1 {
		t.Errorf("the pod is left in %d hierarchies, want only the busy one", r.Exists(rel))
	}
}

// scan --json and clean --dry-run --json give no `unit` for a pod slice
// that no systemd unit owns (made by mkdir, as a leaked CRI-O slice is):
// no one asked systemd, so a name made from the path would be a guess.
func TestNoGuessedUnitInJSON(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "unit")
	ctrd := testbed.StartContainerd(t)
	uid := testbed.RandomUID()
	slice := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	if err := r.Mkdir(slice + "/crio-conmon-" + strings.Repeat("ab", 32) + ".scope"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.toml")
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\ndriver = \"systemd\"\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nuse_systemd = \"never\"\n[memcg]\nmode = \"off\"\n",
		ctrd.Endpoint(), r.Rel("kubepods.slice"), testbed.KubeletRoot(t))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"scan", "--json"}, {"clean", "--dry-run", "--json"}} {
		code, out, errs := runCLI(append(args, "--config", cfg)...)
		if code != 0 || !strings.Contains(out, uid) {
			t.Fatalf("%v: exit %d, pod %s not in it\n%s%s", args, code, uid, out, errs)
		}
		if strings.Contains(out, `"unit"`) {
			t.Errorf("%v gives a unit no one asked systemd about:\n%s", args, out)
		}
	}
}

// The man page says what TestScanCleanCLI and TestCleanExitStatusSameInJSON
// check: an unreachable runtime is exit 1 for scan, clean and clean
// --dry-run, whatever the output format.
func TestManPageExitStatus(t *testing.T) {
	b, err := os.ReadFile("../../packaging/man/cgroupcleand.8")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	start := strings.Index(page, ".SH EXIT STATUS")
	end := strings.Index(page, ".SH EXAMPLES")
	if start < 0 || end < start {
		t.Fatal("no EXIT STATUS section")
	}
	one := page[strings.Index(page[start:], ".B 1\n")+start : strings.Index(page[start:], ".B 2\n")+start]
	for _, want := range []string{"container runtime could not be reached", ".RB ( scan ,", `.BR "clean \-\-dry\-run" :`, "a removal failed", "does not depend on", `.BR \-\-json`} {
		if !strings.Contains(one, want) {
			t.Errorf("EXIT STATUS 1 does not say %q:\n%s", want, one)
		}
	}
}
