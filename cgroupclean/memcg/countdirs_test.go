package memcg

import (
	"os"
	"path/filepath"
	"testing"
)

// CountDirs counts every directory once, root included, and follows no
// symlink (a link to a directory is not a cgroup).
func TestCountDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b/c/d/e", "a/x", "f", "g/h"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ { // more entries than one getdents buffer holds
		if err := os.WriteFile(filepath.Join(root, "f", "control-file-with-a-long-name-"+string(rune('a'+i%26))+filepath.Base(t.Name())+string(rune('0'+i/26))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "g", "link")); err != nil {
		t.Fatal(err)
	}
	n, err := CountDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Fatalf("CountDirs = %d, want 10 (root, a, a/b, a/b/c, a/b/c/d, a/b/c/d/e, a/x, f, g, g/h + nothing for the link)", n)
	}
	if _, err := CountDirs(filepath.Join(root, "missing")); err == nil {
		t.Fatal("CountDirs of a missing root: no error")
	}
}
