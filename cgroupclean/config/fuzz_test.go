package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: whatever the file says, Parse either returns a configuration
// that validates, or an error; it never panics, an accepted root can never
// climb out with ".." or be "/" in disguise, and no float is NaN or
// infinite, and no number is outside its range.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.toml"); err == nil {
		f.Add(string(data))
	}
	f.Add("[cgroup]\npod_root = \"/../etc\"\n")
	f.Add("[clean]\nmin_age = \"5m\"\nmax_removal_share = 2\n")
	f.Add("[runtime\nendpoint = 1")
	f.Add("[clean]\nmax_removal_share = nan\n[daemon]\njitter = inf\n")
	f.Add("[memcg]\npressure_max = -inf\nmin_effect = +nan\n")
	f.Add("[cgroup]\npod_root = \"//\"\nkubelet_root = \"/x/..\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Parse("fuzz.toml", text)
		if err != nil {
			var ce *Errors
			if errors.As(err, &ce) && len(ce.List) == 0 {
				t.Fatal("an Errors with no entry")
			}
			return
		}
		if verr := cfg.Validate(); verr != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", verr)
		}
		for _, p := range []string{cfg.Cgroup.PodRoot, cfg.Cgroup.KubeletRoot, cfg.Cgroup.MountRoot} {
			if strings.Contains("/"+p+"/", "/../") {
				t.Fatalf("accepted a path with ..: %q", p)
			}
			if p != "" && (filepath.Clean(p) == "/" || filepath.Clean(p) != p) {
				t.Fatalf("accepted a root that is / or not clean: %q", p)
			}
		}
		for _, k := range NumericKeys(cfg) {
			if l, ok := LimitOf(k.Key); !ok || !l.Holds(k.Value) {
				t.Fatalf("accepted %s = %s outside its range", k.Key, k.Format(k.Value))
			}
		}
		for _, x := range []float64{cfg.Clean.MaxRemovalShare, cfg.Daemon.Jitter, cfg.Memcg.DyingRatioAct, cfg.Memcg.PressureMax, cfg.Memcg.MinEffect} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("accepted a float that is not finite: %v", x)
			}
		}
	})
}
