package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The heap profile is written only where --heap-profile names, as new
// files: the old environment variable writes nothing, and an existing file
// or a symlink is refused before the command runs.
func TestHeapProfileOnlyByFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte("[log]\nlevel = \"info\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("CGROUPCLEAN_HEAP_PROFILE", filepath.Join(dir, "env"))
	if code, _, errs := runCLI("check-config", "--config", cfg); code != 0 {
		t.Fatalf("check-config: %d %s", code, errs)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "env*")); len(m) > 0 {
		t.Errorf("the environment variable made the command write %v", m)
	}

	prof := filepath.Join(dir, "p.heap")
	if code, _, errs := runCLI("check-config", "--config", cfg, "--heap-profile", prof); code != 0 {
		t.Fatalf("check-config --heap-profile: %d %s", code, errs)
	}
	for _, p := range []string{prof, prof + ".txt"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", p, st, err)
		}
	}

	// An existing file, and a symlink to one, are refused: exit 2, the
	// target untouched.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.heap")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{prof, link, target} {
		code, out, errs := runCLI("check-config", "--config", cfg, "--heap-profile", p)
		if code != 2 || out != "" || !strings.Contains(errs, "--heap-profile") || !strings.Contains(errs, "must not exist") {
			t.Errorf("--heap-profile %s: exit %d, stdout %q, stderr %q; want refused before running", p, code, out, errs)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}
