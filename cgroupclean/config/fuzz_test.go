package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: whatever the file says, Parse either returns a configuration
// that validates, or an error; it never panics, and an accepted pod root or
// kubelet root can never climb out with "..".
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.toml"); err == nil {
		f.Add(string(data))
	}
	f.Add("[cgroup]\npod_root = \"/../etc\"\n")
	f.Add("[clean]\nmin_age = \"5m\"\nmax_removal_share = 2\n")
	f.Add("[runtime\nendpoint = 1")
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
		}
	})
}
