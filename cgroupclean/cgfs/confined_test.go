package cgfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// On real cgroupfs: a cgroup.procs move through WriteConfined works, and
// every path that leaves the hierarchy, or could, is refused before
// anything is written (the process stays where it was).
func TestWriteConfinedOnCgroupfs(t *testing.T) {
	r, cmd := podWithProcess(t, "confined", "a", "a", "b")
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	for _, h := range r.Hierarchies {
		t.Run(h.Name, func(t *testing.T) {
			a, b := h.Path(r.Rel("a")), h.Path(r.Rel("b"))
			for name, tc := range map[string]struct{ mount, dir string }{
				// Stays below the mount, so RESOLVE_BENEATH alone would
				// allow it: refused by name.
				"dotdot inside":  {h.Mountpoint, a + "/../b"},
				"dotdot outside": {h.Mountpoint, h.Mountpoint + "/" + r.Name + "/../../../tmp"},
				"dot":            {h.Mountpoint, a + "/./"},
				"outside mount":  {h.Mountpoint, "/tmp"},
				"prefix only":    {h.Mountpoint, h.Mountpoint + "x/" + r.Name},
				"not cgroupfs":   {"/tmp", "/tmp/" + r.Name},
				"relative dir":   {h.Mountpoint, r.Name + "/b"},
			} {
				err := WriteConfined(tc.mount, tc.dir, "cgroup.procs", pid)
				if !errors.Is(err, ErrUnconfined) {
					t.Errorf("%s: WriteConfined(%s, %s) = %v, want ErrUnconfined", name, tc.mount, tc.dir, err)
				}
			}
			if err := WriteConfined(h.Mountpoint, b, "../cgroup.procs", pid); !errors.Is(err, ErrUnconfined) {
				t.Errorf("name with a slash: %v, want ErrUnconfined", err)
			}
			requireIn(t, h, a, cmd.Process.Pid)
			// The same move on a clean path goes through.
			if err := WriteConfined(h.Mountpoint, b, "cgroup.procs", pid); err != nil {
				t.Fatal(err)
			}
			requireIn(t, h, b, cmd.Process.Pid)
		})
	}
	// cgroupfs itself refuses symlinks, so a planted one can only come
	// from a foreign mount; the flags are checked on one below.
	if err := os.Symlink("/etc", filepath.Join(r.Hierarchies[0].Path(r.Name), "link")); err == nil {
		t.Error("cgroupfs accepted a symlink")
	}
}

func requireIn(t *testing.T, h hierarchy.Hierarchy, dir string, pid int) {
	t.Helper()
	pids, err := ReadPids(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if p == pid {
			return
		}
	}
	t.Errorf("%s: pid %d not in %s (holds %v)", h.Name, pid, dir, pids)
}

// The resolve flags, on a plain directory tree standing in for a mount:
// a symlink anywhere in the path (inside or out) and a ".." that leaves
// the root are refused by the kernel; the same file on a clean path opens.
func TestOpenBeneathRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"pod/c", "real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "pod/c/cgroup.procs"), filepath.Join(outside, "cgroup.procs")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "pod/out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("c", filepath.Join(root, "pod/in")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/root"+outside, filepath.Join(root, "pod/magic")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, rel := range []string{"pod/out/cgroup.procs", "pod/in/cgroup.procs", "pod/magic/cgroup.procs", "pod/../../" + filepath.Base(outside) + "/cgroup.procs"} {
		if f, err := openBeneath(fd, root, rel, unix.O_WRONLY); !errors.Is(err, ErrUnconfined) {
			if err == nil {
				unix.Close(f)
			}
			t.Errorf("openBeneath(%s) = %v, want ErrUnconfined", rel, err)
		}
	}
	f, err := openBeneath(fd, root, "pod/c/cgroup.procs", unix.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(f)
}

func TestConfinedRel(t *testing.T) {
	for _, tc := range []struct{ mount, dir, name, want string }{
		{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/kubepods/pod1", "memory.force_empty", "kubepods/pod1/memory.force_empty"},
		{"/sys/fs/cgroup", "/sys/fs/cgroup", "cgroup.stat", "cgroup.stat"},
		{"/sys/fs/cgroup", "/sys/fs/cgroup/", "cgroup.stat", ""},
		{"/sys/fs/cgroup", "/sys/fs/cgroup//a", "cgroup.kill", ""},
		{"/sys/fs/cgroup/", "/sys/fs/cgroup/a", "cgroup.kill", ""},
		{"/sys/fs/cgroup", "/sys/fs/cgroupx/a", "cgroup.kill", ""},
		{"/sys/fs/cgroup", "/sys/fs/cgroup/a", "", ""},
		{"/sys/fs/cgroup", "/sys/fs/cgroup/a/..", "cgroup.kill", ""},
	} {
		got, err := confinedRel(tc.mount, tc.dir, tc.name)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("confinedRel(%q, %q, %q) = %q, %v; want %q", tc.mount, tc.dir, tc.name, got, err, tc.want)
		}
	}
}

// What confinement costs per write: the mount's O_PATH open, fstatfs and
// openat2, against a plain open of the same cgroupfs file.
func BenchmarkOpenConfined(b *testing.B) {
	r := testbed.NewCgroupRoot(b, "confbench")
	var h hierarchy.Hierarchy
	for _, x := range r.Hierarchies {
		if x.Version == 1 {
			h = x
		}
	}
	testbed.Need(b, h.Name != "", "a v1 hierarchy")
	dir := h.Path(r.Name)
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			fd, err := unix.Open(dir+"/notify_on_release", unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
	b.Run("confined", func(b *testing.B) {
		for b.Loop() {
			fd, err := OpenConfined(h.Mountpoint, dir, "notify_on_release", unix.O_WRONLY)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
}
