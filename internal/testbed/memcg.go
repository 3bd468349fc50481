package testbed

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

// chargeEnv, when set, makes a test binary the child of ChargeMemcgs.
const chargeEnv = "CGROUPCLEAN_TESTBED_CHARGE"

// ChargeMain runs the child side of ChargeMemcgs and exits when the test
// binary was started as that child; otherwise it returns at once. Call it
// first in TestMain of a package that uses ChargeMemcgs.
func ChargeMain() {
	spec, ok := os.LookupEnv(chargeEnv)
	if !ok {
		return
	}
	if err := charge(spec); err != nil {
		fmt.Fprintln(os.Stderr, "testbed charge helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// DiskTempDir is t.TempDir, required to be on a disk filesystem: page cache
// of tmpfs files is not reclaimable, so it cannot make memcgs dying.
// Made after the cgroup root, it is removed first: deleting its files
// uncharges their pages and frees any zombie left behind.
func DiskTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	Need(t, st.Type != unix.TMPFS_MAGIC, "a temp dir on a disk filesystem (tmpfs pages are not reclaimable)")
	return dir
}

// ChargeMemcgs makes n memcgs parentRel/z0 ... z<n-1> (relative to the
// root) in the memory hierarchy mem and has a child process (this test
// binary again) charge page cache to each: it joins the memcg, writes and
// fsyncs a file of size bytes in dataDir (clean pages charged to it) and
// moves back to homeRel. The memcgs are left empty of tasks, so after
// their rmdir they stay dying while the files exist. It returns their
// directories.
func (r *CgroupRoot) ChargeMemcgs(t testing.TB, mem hierarchy.Hierarchy, parentRel, homeRel, dataDir string, n, size int) []string {
	t.Helper()
	dirs := make([]string, 0, n)
	for i := range n {
		rel := filepath.Join(parentRel, "z"+strconv.Itoa(i))
		if err := r.MkdirIn(mem, rel); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, mem.Path(r.Rel(rel)))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	spec := []string{mem.Path(r.Rel(homeRel)), dataDir, strconv.Itoa(size)}
	cmd.Env = append(os.Environ(), chargeEnv+"="+strings.Join(append(spec, dirs...), "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("charge helper: %v\n%s", err, out)
	}
	return dirs
}

// charge is the child of ChargeMemcgs. spec is the home memcg, the data
// directory, the file size, then the memcgs to charge, one a line.
func charge(spec string) error {
	p := strings.Split(spec, "\n")
	if len(p) < 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	home, data := p[0], p[1]
	size, err := strconv.Atoi(p[2])
	if err != nil {
		return fmt.Errorf("bad size in spec %q: %w", spec, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	buf := bytes.Repeat([]byte("z"), size)
	for i, memcg := range p[3:] {
		if err := os.WriteFile(filepath.Join(memcg, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("join %s: %w", memcg, err)
		}
		err := writeSynced(filepath.Join(data, "f"+strconv.Itoa(i)), buf)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("back to %s: %w", home, err)
		}
	}
	return nil
}

func writeSynced(name string, b []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
