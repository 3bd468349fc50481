// Package packaging holds the rollout files (deb/rpm via nfpm, OKD
// MachineConfig, CoreOS ignition) and the tests that keep them honest: every
// ignition config parses and validates with the Ignition library, the unit
// and config embedded in them are byte-identical to systemd/ and
// config.example.toml, and each generated file is what Butane makes of its
// source today.
package packaging

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coreos/ignition/v2/butane/config"
	"github.com/coreos/ignition/v2/butane/config/common"
	v34 "github.com/coreos/ignition/v2/config/v3_4"
	"github.com/coreos/ignition/v2/config/v3_4/types"
	"github.com/vincent-petithory/dataurl"
	"go.yaml.in/yaml/v3"
)

const (
	repoRoot    = ".."
	unitSource  = "systemd/cgroupcleand.service"
	unitName    = "cgroupcleand.service"
	configPath  = "/etc/cgroupclean/config.toml"
	configSrc   = "config.example.toml"
	mcAPI       = "machineconfiguration.openshift.io/v1"
	roleLabel   = "machineconfiguration.openshift.io/role"
	ignVersion  = "3.4.0" // OKD 4.14+ and Fedora CoreOS (Butane openshift 4.14 / fcos 1.5)
	packagesDir = "."
)

// configOf names the config a rollout file writes when it is not
// config.example.toml (canary_test.go checks that one).
var configOf = map[string]string{
	"okd/99-worker-canary-cgroupclean-observe.yaml": observeConfig,
}

// rollout is one ignition config found under packaging/.
type rollout struct {
	file string // path relative to packaging/
	raw  []byte // the ignition JSON
	mc   *machineConfig
}

type machineConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Config map[string]any `yaml:"config"`
	} `yaml:"spec"`
}

// findRollouts returns every MachineConfig (a YAML file of kind
// MachineConfig) and every .ign file under packaging/.
func findRollouts(t *testing.T) []rollout {
	t.Helper()
	var out []rollout
	err := filepath.WalkDir(packagesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".ign":
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, rollout{file: p, raw: raw})
		case ".yaml", ".yml":
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var head struct {
				Kind string `yaml:"kind"`
			}
			if err := yaml.Unmarshal(data, &head); err != nil || head.Kind != "MachineConfig" {
				return nil // nfpm.yaml, MachineOSConfig, ...
			}
			var mc machineConfig
			if err := yaml.Unmarshal(data, &mc); err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			raw, err := json.Marshal(mc.Spec.Config)
			if err != nil {
				t.Errorf("%s: spec.config to JSON: %v", p, err)
				return nil
			}
			out = append(out, rollout{file: p, raw: raw, mc: &mc})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk packaging/: %v", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].file < out[j].file })
	return out
}

func readRepo(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// fileContents decodes an ignition file's data URL, gunzipping if needed.
func fileContents(t *testing.T, f types.File) []byte {
	t.Helper()
	if f.Contents.Source == nil {
		t.Fatalf("%s: no contents.source", f.Path)
	}
	u, err := dataurl.DecodeString(*f.Contents.Source)
	if err != nil {
		t.Fatalf("%s: contents.source is not a data URL: %v", f.Path, err)
	}
	data := u.Data
	if c := f.Contents.Compression; c != nil && *c != "" {
		if *c != "gzip" {
			t.Fatalf("%s: compression %q", f.Path, *c)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: gunzip: %v", f.Path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: gunzip: %v", f.Path, err)
		}
	}
	return data
}

// parseIgnition parses and validates an Ignition 3.4 config; any report
// entry, warnings included, is an error.
func parseIgnition(raw []byte) (types.Config, error) {
	c, rpt, err := v34.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("ignition parse/validate: %w\n%s", err, rpt)
	}
	if len(rpt.Entries) > 0 {
		return c, fmt.Errorf("ignition report not empty:\n%s", rpt)
	}
	return c, nil
}

// TestParseIgnitionRejects shows the validation above can fail: each
// config is broken in one way the Ignition library must catch.
func TestParseIgnitionRejects(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"not JSON", `{"ignition":`},
		{"other spec version", `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/etc/x","contents":{"source":"data:,x"},"mode":420}]}}`},
		{"relative file path", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"etc/x","contents":{"source":"data:,x"}}]}}`},
		{"bad unit syntax", `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a.service","contents":"[Service\nExecStart=/bin/true"}]}}`},
		{"unit without suffix", `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a","contents":"[Service]\nExecStart=/bin/true"}]}}`},
		{"unknown key (warning)", `{"ignition":{"version":"3.4.0"},"storage":{"filez":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseIgnition([]byte(tc.raw)); err == nil {
				t.Errorf("accepted: %s", tc.raw)
			}
		})
	}
	if _, err := parseIgnition([]byte(`{"ignition":{"version":"3.4.0"}}`)); err != nil {
		t.Errorf("minimal valid config rejected: %v", err)
	}
}

func TestRolloutsFound(t *testing.T) {
	got := map[string]bool{}
	for _, r := range findRollouts(t) {
		got[filepath.ToSlash(r.file)] = true
	}
	for _, want := range []string{"okd/99-worker-cgroupclean.yaml", "ignition/cgroupclean.ign"} {
		if !got[want] {
			t.Errorf("rollout file %s not found (found %v)", want, got)
		}
	}
}

// TestIgnitionConfigs parses and validates every ignition config with the
// Ignition library and checks what it writes.
func TestIgnitionConfigs(t *testing.T) {
	unit := string(readRepo(t, unitSource))
	for _, r := range findRollouts(t) {
		t.Run(r.file, func(t *testing.T) {
			cfgSrc := configSrc
			if c, ok := configOf[filepath.ToSlash(r.file)]; ok {
				cfgSrc = c
			}
			cfg := readRepo(t, cfgSrc)
			var ver struct {
				Ignition struct {
					Version string `json:"version"`
				} `json:"ignition"`
			}
			if err := json.Unmarshal(r.raw, &ver); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if ver.Ignition.Version != ignVersion {
				t.Fatalf("ignition version %q, want %s (what OKD 4.14+ accepts); update this test with care", ver.Ignition.Version, ignVersion)
			}
			c, err := parseIgnition(r.raw)
			if err != nil {
				t.Fatal(err)
			}

			files := map[string]types.File{}
			for _, f := range c.Storage.Files {
				files[f.Path] = f
			}
			f, ok := files[configPath]
			if !ok {
				t.Fatalf("does not write %s", configPath)
			}
			if got := fileContents(t, f); !bytes.Equal(got, cfg) {
				t.Errorf("%s differs from %s: run make machineconfig", configPath, cfgSrc)
			}
			if f.Mode == nil || *f.Mode != 0o644 {
				t.Errorf("%s mode %v, want 0644", configPath, f.Mode)
			}
			if f.Overwrite == nil || !*f.Overwrite {
				t.Errorf("%s: overwrite not set: a re-provisioned node would keep a stale config", configPath)
			}

			var found bool
			for _, u := range c.Systemd.Units {
				if u.Name != unitName {
					continue
				}
				found = true
				if u.Contents == nil || *u.Contents != unit {
					t.Errorf("unit %s differs from %s: run make machineconfig", unitName, unitSource)
				}
				if u.Enabled == nil || !*u.Enabled {
					t.Errorf("unit %s not enabled", unitName)
				}
				if u.Mask != nil && *u.Mask {
					t.Errorf("unit %s masked", unitName)
				}
			}
			if !found {
				t.Errorf("no unit %s", unitName)
			}

			if r.mc != nil {
				if r.mc.APIVersion != mcAPI || r.mc.Kind != "MachineConfig" {
					t.Errorf("apiVersion/kind = %s/%s", r.mc.APIVersion, r.mc.Kind)
				}
				role := r.mc.Metadata.Labels[roleLabel]
				if role == "" {
					t.Errorf("no %s label", roleLabel)
				}
				if !strings.HasPrefix(r.mc.Metadata.Name, "99-"+role+"-") {
					t.Errorf("name %q: want 99-%s-... (MachineConfigs merge in name order; 99- comes last)", r.mc.Metadata.Name, role)
				}
			}
		})
	}
}

// TestButaneOutputsCurrent translates every Butane source under packaging/
// with the Butane library, exactly as `make machineconfig` does, and
// compares with the committed file: editing a .bu, the unit or
// config.example.toml without regenerating fails here.
func TestButaneOutputsCurrent(t *testing.T) {
	srcs, err := filepath.Glob(filepath.Join(packagesDir, "*", "*.bu"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no Butane sources found (%v)", err)
	}
	for _, src := range srcs {
		t.Run(src, func(t *testing.T) {
			out := strings.TrimSuffix(src, ".bu")
			if !strings.HasSuffix(out, ".ign") {
				out += ".yaml"
			}
			in, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			want, rpt, err := config.TranslateBytes(in, common.TranslateBytesOptions{
				TranslateOptions: common.TranslateOptions{FilesDir: repoRoot},
				Pretty:           true,
			})
			if err != nil {
				t.Fatalf("butane: %v\n%s", err, rpt)
			}
			if len(rpt.Entries) > 0 {
				t.Errorf("butane warnings (make machineconfig runs --strict):\n%s", rpt)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("generated file missing: %v (run make machineconfig)", err)
			}
			if !bytes.Equal(got, append(want, '\n')) {
				t.Errorf("%s is stale: run make machineconfig", out)
			}
		})
	}
}

// TestContainerfileInStep checks that the MachineOSConfig builds what
// okd/Containerfile says (comments aside): the two are copies by hand.
func TestContainerfileInStep(t *testing.T) {
	data, err := os.ReadFile("okd/machineosconfig-worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mosc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			MachineConfigPool struct {
				Name string `yaml:"name"`
			} `yaml:"machineConfigPool"`
			ContainerFile []struct {
				Content string `yaml:"content"`
			} `yaml:"containerFile"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &mosc); err != nil {
		t.Fatal(err)
	}
	if mosc.APIVersion != mcAPI || mosc.Kind != "MachineOSConfig" || mosc.Spec.MachineConfigPool.Name != "worker" {
		t.Errorf("not a worker MachineOSConfig: %s %s pool %q", mosc.APIVersion, mosc.Kind, mosc.Spec.MachineConfigPool.Name)
	}
	if len(mosc.Spec.ContainerFile) != 1 {
		t.Fatalf("want one containerFile, got %d", len(mosc.Spec.ContainerFile))
	}
	cf, err := os.ReadFile("okd/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := instructions(mosc.Spec.ContainerFile[0].Content), instructions(string(cf)); got != want {
		t.Errorf("MachineOSConfig containerFile and okd/Containerfile differ:\n--- MachineOSConfig\n%s\n--- Containerfile\n%s", got, want)
	}
	if !strings.Contains(string(cf), "FROM configs AS final") {
		t.Error("on-cluster layering needs FROM configs AS final")
	}
}

// instructions drops comments and blank lines.
func instructions(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
