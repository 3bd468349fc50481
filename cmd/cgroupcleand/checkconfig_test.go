package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

func writeCheckConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// check-config accepts a kubelet_root without kubelet's pods/ (the file is
// valid) but warns, naming the key to set.
func TestCheckConfigWarnsKubeletRoot(t *testing.T) {
	root := t.TempDir()
	path := writeCheckConfig(t, "[cgroup]\nkubelet_root = \""+root+"\"\n")
	code, out, errOut := runCLI("check-config", "--config", path)
	if code != 0 || !strings.Contains(out, "kubelet_root") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"warning", "cgroup.kubelet_root", filepath.Join(root, "pods") + " does not exist", "k0s", "MicroK8s"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("check-config", "--config", path); code != 0 || errOut != "" {
		t.Fatalf("with pods/ there: exit %d, stderr %q", code, errOut)
	}
}

// check-config prints the effective configuration as TOML that parses
// back to the same configuration (defaults filled in), or every error with
// its key and line and exit 1.
func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"example", "", 0, []string{"# effective configuration, from ", "[daemon]", `interval = "5m0s"`, "confirm_passes = 2"}, nil},
		{"overrides", "[daemon]\ninterval = \"90s\"\njitter = 0.2\n[clean]\nmin_age = \"0s\"\n", 0,
			[]string{`interval = "1m30s"`, "jitter = 0.2", `min_age = "0s"`, `endpoint = "unix:///var/run/crio/crio.sock"`}, nil},
		{"bad values", "[clean]\nconfirm_passes = 0\n[daemon]\njitter = 0.9\nbogus = 1\n", 1, nil,
			[]string{"clean.confirm_passes (line 2): must be in [1, 100], got 0", "daemon.jitter (line 4)", "daemon.bogus (line 5): unknown key"}},
		{"wrong type", "[clean]\nmax_removals_per_pass = \"many\"\n", 1, nil, []string{"line 2", "clean.max_removals_per_pass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeCheckConfig(t, tc.text)
			code, out, errOut := runCLI("check-config", "--config", path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, want := range tc.inStdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range tc.inStderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if code != 0 {
				if out != "" {
					t.Errorf("printed a config for a bad file:\n%s", out)
				}
				return
			}
			printed, err := config.Parse("printed", out)
			if err != nil {
				t.Fatalf("printed config does not parse: %v\n%s", err, out)
			}
			loaded, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(printed, loaded) {
				t.Fatalf("printed config differs from the loaded one:\nprinted %+v\nloaded  %+v", printed, loaded)
			}
		})
	}
}

func TestCheckConfigMissingFile(t *testing.T) {
	code, _, errOut := runCLI("check-config", "--config", filepath.Join(t.TempDir(), "none.toml"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunRejectsBadStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing config", []string{"run", "--config", "/nonexistent/cgroupclean.toml"}},
		{"extra argument", []string{"run", "now"}},
		{"unknown flag", []string{"run", "--interval", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, errOut := runCLI(tc.args...); code != 2 || errOut == "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
		})
	}
}
