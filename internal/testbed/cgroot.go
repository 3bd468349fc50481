// Package testbed starts the real components the integration tests run
// against (a cgroup test root in every hierarchy, containerd's CRI server,
// a systemd --user manager, journald) and tears them down even when a test
// fails. Every test that touches the machine goes through it, so nothing a
// test makes can escape its own uniquely named cgroup root.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

// RequireRoot skips a test that needs root, unless CGROUPCLEAN_REQUIRE_INTEGRATION
// is set (CI sets it), in which case it fails: an integration test that
// silently skips proves nothing.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CGROUPCLEAN_REQUIRE_INTEGRATION") != "" {
		t.Fatal("integration test needs root")
	}
	t.Skip("needs root (set CGROUPCLEAN_REQUIRE_INTEGRATION=1 to make this a failure)")
}

// Need fails or skips (as RequireRoot) when cond is false.
func Need(t testing.TB, cond bool, what string) {
	t.Helper()
	if cond {
		return
	}
	if os.Getenv("CGROUPCLEAN_REQUIRE_INTEGRATION") != "" {
		t.Fatalf("integration test needs %s", what)
	}
	t.Skipf("needs %s", what)
}

// CgroupRoot is a uniquely named cgroup directory created in every mounted
// hierarchy, for one test.
type CgroupRoot struct {
	// Name is the directory name, the same in every hierarchy ("/"+Name is
	// the cgroup path).
	Name        string
	Hierarchies []hierarchy.Hierarchy
}

// NewCgroupRoot makes /<prefix>-<random> in every hierarchy under
// /sys/fs/cgroup and removes it (leaf-first) when the test ends.
func NewCgroupRoot(t testing.TB, prefix string) *CgroupRoot {
	t.Helper()
	RequireRoot(t)
	hs, err := hierarchy.Discover("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) == 0 {
		t.Fatal("no cgroup hierarchy mounted")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &CgroupRoot{Name: "cgclean-test-" + prefix + "-" + hex.EncodeToString(b[:]), Hierarchies: hs}
	t.Cleanup(func() {
		if err := r.Remove(); err != nil {
			t.Errorf("cleanup of test cgroup root: %v", err)
		}
	})
	for _, h := range hs {
		if err := os.Mkdir(h.Path(r.Name), 0o755); err != nil {
			t.Fatalf("create test root: %v", err)
		}
		if h.Has("cpuset") {
			if err := inheritCpuset(h.Path(r.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r
}

// Rel returns the cgroup path of p inside the root ("/<root>/p").
func (r *CgroupRoot) Rel(p string) string { return "/" + filepath.Join(r.Name, p) }

// Mkdir creates rel (relative to the root) in every hierarchy, parents too.
func (r *CgroupRoot) Mkdir(rel string) error {
	for _, h := range r.Hierarchies {
		if err := r.MkdirIn(h, rel); err != nil {
			return err
		}
	}
	return nil
}

// MkdirIn creates rel in one hierarchy only (a cgroup leaked in one
// hierarchy is a real case).
func (r *CgroupRoot) MkdirIn(h hierarchy.Hierarchy, rel string) error {
	dir := h.Mountpoint
	for _, part := range strings.Split(filepath.Join(r.Name, rel), "/") {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
		if h.Has("cpuset") {
			if err := inheritCpuset(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddProc moves pid into rel (relative to the root) in every hierarchy.
func (r *CgroupRoot) AddProc(rel string, pid int) error {
	for _, h := range r.Hierarchies {
		p := filepath.Join(h.Path(r.Name), rel, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d to %s: %w", pid, p, err)
		}
	}
	return nil
}

// Exists reports in how many hierarchies rel exists.
func (r *CgroupRoot) Exists(rel string) int {
	n := 0
	for _, h := range r.Hierarchies {
		if _, err := os.Stat(filepath.Join(h.Path(r.Name), rel)); err == nil {
			n++
		}
	}
	return n
}

// Remove moves any process still inside the root back to the hierarchy's
// top (tests kill what they started; this only unblocks rmdir) and removes
// every directory leaf-first.
func (r *CgroupRoot) Remove() error {
	var errs []error
	for _, h := range r.Hierarchies {
		top := h.Path(r.Name)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			evacuate(d, h.Mountpoint)
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

func evacuate(dir, top string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, pid := range strings.Fields(string(data)) {
		_ = os.WriteFile(filepath.Join(top, "cgroup.procs"), []byte(pid), 0o644)
	}
}

// inheritCpuset copies cpuset.cpus and cpuset.mems from the parent: a v1
// cpuset cgroup with them empty cannot take a process.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return fmt.Errorf("set %s in %s: %w", f, dir, err)
		}
	}
	return nil
}

// KubeletRoot is a kubelet root dir of the test's own with an empty pods/:
// kubelet tracks no pod. (A root without pods/ means kubelet's state is
// unknown, and every pod is kept.)
func KubeletRoot(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
