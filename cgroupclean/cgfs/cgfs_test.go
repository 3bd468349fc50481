package cgfs

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

func TestSubDirsOnPlainFS(t *testing.T) {
	d := t.TempDir()
	for _, sub := range []string{"a", "b", "c/d"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	e, err := SubDirs(d)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(e.Dirs)
	if strings.Join(e.Dirs, ",") != "a,b,c" || strings.Join(e.Links, ",") != "link" {
		t.Fatalf("got %+v", e)
	}
	if _, err := SubDirs(filepath.Join(d, "link")); err == nil {
		t.Fatal("SubDirs followed a symlink")
	}
	if _, err := ReadTree(d, false); err == nil {
		t.Fatal("a tree holding a symlink must be refused")
	}
}

// On real cgroupfs: the same subdirectories as os.ReadDir, the tree deepest
// first, and the processes of every level.
func TestReadTreeOnCgroupfs(t *testing.T) {
	r, cmd := podWithProcess(t, "cgfs", "pod/a/x", "pod/a/x", "pod/b")
	for _, h := range r.Hierarchies {
		top := h.Path(r.Rel("pod"))
		e, err := SubDirs(top)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(e.Dirs)
		var want []string
		ents, _ := os.ReadDir(top)
		for _, x := range ents {
			if x.IsDir() {
				want = append(want, x.Name())
			}
		}
		if strings.Join(e.Dirs, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: SubDirs %v, ReadDir %v", h.Name, e.Dirs, want)
		}
		tree, err := ReadTree(top, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(tree.Dirs) != 4 || tree.Dirs[len(tree.Dirs)-1] != top || tree.Dirs[0] != top+"/a/x" && tree.Dirs[0] != top+"/b" {
			t.Fatalf("%s: order %v", h.Name, tree.Dirs)
		}
		for i, d := range tree.Dirs {
			for _, parent := range tree.Dirs[:i] {
				if strings.HasPrefix(parent, d+"/") == false && strings.HasPrefix(d, parent+"/") {
					t.Fatalf("%s: %s listed after its child %s", h.Name, d, parent)
				}
			}
		}
		if len(tree.Pids) != 1 || tree.Pids[0] != cmd.Process.Pid {
			t.Fatalf("%s: pids %v", h.Name, tree.Pids)
		}
	}
}

// podWithProcess makes dirs under a new test root and starts a process
// (stopped with the test) in the cgroup proc.
func podWithProcess(t *testing.T, prefix, proc string, dirs ...string) (*testbed.CgroupRoot, *exec.Cmd) {
	t.Helper()
	r := testbed.NewCgroupRoot(t, prefix)
	for _, p := range dirs {
		if err := r.Mkdir(p); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := r.AddProc(proc, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return r, cmd
}

func dirent(name string, typ byte) []byte {
	reclen := (offName + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.LittleEndian.PutUint16(b[offReclen:], uint16(reclen))
	b[offType] = typ
	copy(b[offName:], name)
	return b
}

func FuzzParseDirents(f *testing.F) {
	f.Add(append(dirent("kubepods", 4), dirent("cgroup.procs", 8)...))
	f.Add(dirent("..", 4))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entries
		if err := parse(b, &e); err != nil {
			return
		}
		for _, n := range append(e.Dirs, e.Links...) {
			if n == "." || n == ".." || strings.ContainsRune(n, 0) {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}

// ReadTreeKnown must give exactly what ReadTree gives, whatever the known
// names say: stale, incomplete, or naming a symlink.
func TestReadTreeKnownMatchesReadTree(t *testing.T) {
	r, cmd := podWithProcess(t, "cgfsknown", "pod/c", "pod/a/x", "pod/b", "pod/c")
	cases := []struct {
		name  string
		known []string
	}{
		{"exact", []string{"a", "b", "c"}},
		{"one gone since the scan", []string{"a", "b", "c", "gone"}},
		{"one new since the scan", []string{"a", "b"}},
		{"only unknown names", []string{"zz"}},
		{"none", nil},
	}
	for _, h := range r.Hierarchies {
		top := h.Path(r.Rel("pod"))
		want, err := ReadTree(top, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			got, err := ReadTreeKnown(top, true, c.known)
			if err != nil {
				t.Fatalf("%s, %s: %v", h.Name, c.name, err)
			}
			if g, w := sorted(got.Dirs), sorted(want.Dirs); g != w || got.Dirs[len(got.Dirs)-1] != top {
				t.Errorf("%s, %s: dirs %v, want %v (pod dir last)", h.Name, c.name, got.Dirs, want.Dirs)
			}
			if len(got.Pids) != 1 || got.Pids[0] != cmd.Process.Pid {
				t.Errorf("%s, %s: pids %v, want [%d]", h.Name, c.name, got.Pids, cmd.Process.Pid)
			}
		}
	}

	// A known name that is a symlink is not taken on trust: the directory
	// is listed, and the tree refused.
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTreeKnown(d, false, []string{"a", "link"}); err == nil {
		t.Fatal("a tree holding a symlink named as known must be refused")
	}
}

func sorted(l []string) string {
	l = append([]string(nil), l...)
	sort.Strings(l)
	return strings.Join(l, ",")
}

// At's raw fstatat must fill the same stat as unix.Lstat, never follow a
// symlink, and OpenAt must refuse one.
func TestAtMatchesLstat(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	fd, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var a At
	for _, rel := range [][]string{{"a"}, {"a", "b"}, {"link"}} {
		var got, want unix.Stat_t
		if err := a.Stat(fd, &got, rel...); err != nil {
			t.Fatalf("%v: %v", rel, err)
		}
		if err := unix.Lstat(filepath.Join(append([]string{d}, rel...)...), &want); err != nil {
			t.Fatal(err)
		}
		if got.Ino != want.Ino || got.Nlink != want.Nlink || got.Mode != want.Mode || got.Ctim != want.Ctim || got.Mtim != want.Mtim {
			t.Errorf("%v: At.Stat %+v, Lstat %+v", rel, got, want)
		}
	}
	if err := a.Stat(fd, new(unix.Stat_t), "gone"); err != unix.ENOENT {
		t.Errorf("stat of a missing name: %v, want ENOENT", err)
	}
	if sub, err := a.OpenAt(fd, "link"); err == nil {
		unix.Close(sub)
		t.Error("OpenAt followed a symlink")
	}
	got := map[string]bool{}
	if err := a.Each(fd, func(name string, link bool) error { got[name] = link; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] || !got["link"] {
		t.Errorf("Each: %v, want a (dir) and link (symlink)", got)
	}
}
