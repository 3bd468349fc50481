package cgfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ReadTreeKnownIf asks procs about the directory it opened (a file read
// relative to that descriptor is the directory's own), reads the
// processes only when told to, and fails on procs' error, which it does
// not hide: a tree whose process check fails is not one to remove.
func TestReadTreeKnownIf(t *testing.T) {
	d := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.procs", "7\n")
	write("leaf/cgroup.procs", "8\n9\n")
	write("mark", "top")
	var asked string
	populated := func(dirfd int) (bool, error) {
		b, err := ReadSmallAt(dirfd, "mark")
		asked = string(b)
		return err == nil, err
	}
	got, err := ReadTreeKnownIf(d, []string{"leaf"}, populated)
	if err != nil {
		t.Fatal(err)
	}
	if asked != "top" {
		t.Errorf("procs read %q through the descriptor, want the directory's own mark", asked)
	}
	slices.Sort(got.Pids)
	if want := []string{d + "/leaf", d}; !slices.Equal(got.Dirs, want) || !slices.Equal(got.Pids, []int{7, 8, 9}) {
		t.Errorf("got dirs %v pids %v", got.Dirs, got.Pids)
	}
	none, err := ReadTreeKnownIf(d, nil, func(int) (bool, error) { return false, nil })
	if err != nil || len(none.Pids) != 0 || len(none.Dirs) != 2 {
		t.Errorf("not populated: got %+v, %v; want both dirs and no pids", none, err)
	}
	boom := errors.New("events unreadable")
	if _, err := ReadTreeKnownIf(d, nil, func(int) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("procs' error lost: %v", err)
	}
}

// A missing cgroup.procs is an error that says which file, from which
// step, and still counts as "does not exist" for the caller.
func TestReadPidsNamesTheFile(t *testing.T) {
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "leaf"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := ReadTree(d, true)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "open" || !strings.HasSuffix(pe.Path, "/leaf/cgroup.procs") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want open of .../leaf/cgroup.procs not existing", err)
	}
	if _, err := ReadPids(filepath.Join(d, "gone")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone/cgroup.procs") {
		t.Fatalf("got %v", err)
	}
}
