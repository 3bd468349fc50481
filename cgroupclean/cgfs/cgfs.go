// Package cgfs reads cgroupfs directories cheaply. Every cgroup directory
// lists dozens of control files; only its subdirectories are cgroups.
// getdents(2) gives each entry's type (d_type), so SubDirs allocates the
// names of subdirectories only, where os.ReadDir would allocate an entry
// for every control file of every directory walked.
package cgfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Entries is what SubDirs found in one directory.
type Entries struct {
	Dirs []string
	// Links are symlinks: cgroupfs has none, so one is foreign. They are
	// reported, never followed.
	Links []string
}

// SubDirs lists the subdirectories (and symlinks) of dir.
func SubDirs(dir string) (Entries, error) {
	fd, err := Open(dir)
	if err != nil {
		return Entries{}, err
	}
	defer unix.Close(fd)
	return subDirsFd(fd, dir)
}

// subDirsFd lists the open directory fd (named dir in errors).
func subDirsFd(fd int, dir string) (Entries, error) {
	var out Entries
	a := ats.Get().(*At)
	defer ats.Put(a)
	err := a.Each(fd, out.add)
	if err != nil {
		return Entries{}, fmt.Errorf("read %s: %w", dir, err)
	}
	return out, nil
}

// ats keeps At buffers (16 KiB of dirents each) for SubDirs.
var ats = sync.Pool{New: func() any { return new(At) }}

func (e *Entries) add(name string, link bool) error {
	if link {
		e.Links = append(e.Links, strings.Clone(name))
	} else {
		e.Dirs = append(e.Dirs, strings.Clone(name))
	}
	return nil
}

// linux_dirent64: ino u64, off i64, reclen u16, type u8, name NUL-terminated.
const (
	offReclen = 16
	offType   = 18
	offName   = 19
)

// parse adds the subdirectories and symlinks of a getdents buffer to out.
func parse(b []byte, out *Entries) error { return eachDirent(b, out.add) }

// Tree is a cgroup directory and every directory below it, deepest
// first (the order rmdir needs), with the processes found in them.
type Tree struct {
	Dirs []string
	Pids []int
}

// ReadTree walks dir's subtree once: it lists the directories and, when
// procs is true, reads each one's cgroup.procs. A symlink anywhere in the
// tree is an error: it is not a cgroup, so the tree is not one to remove.
func ReadTree(dir string, procs bool) (Tree, error) {
	return ReadTreeKnown(dir, procs, nil)
}

// ReadTreeKnown is ReadTree for a directory whose subdirectories are
// probably known by name (from the scan): when At.Known says they are all
// of them, dir is not listed. Everything below dir is reached relative to
// an open directory: each component of a cgroupfs path looked up takes its
// hierarchy's kernfs lock, which a concurrent rmdir contends for.
func ReadTreeKnown(dir string, procs bool, known []string) (Tree, error) {
	return ReadTreeKnownIf(dir, known, func(int) (bool, error) { return procs, nil })
}

// ReadTreeKnownIf is ReadTreeKnown where procs decides, given dir open as
// dirfd, whether the processes are read: v2 reads cgroup.events relative
// to it (ReadSmallAt) instead of looking the whole path up once more.
func ReadTreeKnownIf(dir string, known []string, procs func(dirfd int) (bool, error)) (Tree, error) {
	fd, err := Open(dir)
	if err != nil {
		return Tree{}, err
	}
	defer unix.Close(fd)
	readProcs, err := procs(fd)
	if err != nil {
		return Tree{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Tree{}, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	a := ats.Get().(*At)
	defer ats.Put(a)
	var t Tree
	if len(known) > 0 && st.Nlink > 2 {
		kids, complete := a.Known(nil, fd, "", st.Nlink, slices.Values(known))
		if complete {
			for i := range kids {
				if err := t.walkChild(a, fd, dir, kids[i].Name, &kids[i].Stat, readProcs); err != nil {
					return Tree{}, err
				}
			}
			if err := t.add(a, fd, dir, readProcs); err != nil {
				return Tree{}, err
			}
			return t, nil
		}
	}
	if err := t.walk(a, fd, dir, &st, readProcs); err != nil {
		return Tree{}, err
	}
	return t, nil
}

// walk adds the open directory fd (path dir, stat st) and its subtree.
func (t *Tree) walk(a *At, fd int, dir string, st *unix.Stat_t, procs bool) error {
	// A directory's link count is 2 plus its subdirectories (kernfs keeps
	// it so): most cgroups in a pod are leaves, and a stat tells that
	// without reading their dozens of control files.
	if st.Nlink != 2 {
		e, err := subDirsFd(fd, dir)
		if err != nil {
			return err
		}
		if len(e.Links) > 0 {
			return fmt.Errorf("%s holds a symlink (%s): not a cgroup tree", dir, e.Links[0])
		}
		for _, c := range e.Dirs {
			var cst unix.Stat_t
			if err := a.Stat(fd, &cst, c); err != nil {
				return &fs.PathError{Op: "lstat", Path: dir + "/" + c, Err: err}
			}
			if cst.Mode&unix.S_IFMT != unix.S_IFDIR {
				return fmt.Errorf("%s/%s is not a directory: not a cgroup tree", dir, c)
			}
			if err := t.walkChild(a, fd, dir, c, &cst, procs); err != nil {
				return err
			}
		}
	}
	return t.add(a, fd, dir, procs)
}

// walkChild adds subdirectory name of the open directory parent (path
// dir), whose stat is st. A leaf needs no descriptor of its own.
func (t *Tree) walkChild(a *At, parent int, dir, name string, st *unix.Stat_t, procs bool) error {
	path := dir + "/" + name
	if st.Nlink == 2 {
		if procs {
			pids, err := a.readPids(parent, name, path)
			if err != nil {
				return err
			}
			t.Pids = append(t.Pids, pids...)
		}
		t.Dirs = append(t.Dirs, path)
		return nil
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return t.walk(a, fd, path, st, procs)
}

// add records the open directory fd (path dir), after its subdirectories,
// and its processes.
func (t *Tree) add(a *At, fd int, dir string, procs bool) error {
	if procs {
		pids, err := a.readPids(fd, "", dir)
		if err != nil {
			return err
		}
		t.Pids = append(t.Pids, pids...)
	}
	t.Dirs = append(t.Dirs, dir)
	return nil
}

// ReadPids reads dir/cgroup.procs (cgroup.threads for a threaded v2
// cgroup, whose cgroup.procs read fails with ENOTSUP).
func ReadPids(dir string) ([]int, error) {
	a := ats.Get().(*At)
	defer ats.Put(a)
	return a.readPids(unix.AT_FDCWD, dir, dir)
}

// readPids reads sub/cgroup.procs relative to dirfd (sub "" for dirfd
// itself) with no garbage for the path; dir names the cgroup in errors.
// The tree walk reads it in every directory it removes, so the name is
// built in a's buffer, not as two new strings per directory.
func (a *At) readPids(dirfd int, sub, dir string) ([]int, error) {
	file := "cgroup.procs"
	data, op, err := a.readSmall(dirfd, sub, file)
	if err == unix.ENOTSUP {
		file = "cgroup.threads"
		data, op, err = a.readSmall(dirfd, sub, file)
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: dir + "/" + file, Err: err}
	}
	var pids []int
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		pid, err := strconv.Atoi(string(line))
		if err != nil {
			return nil, fmt.Errorf("parse %s/%s: %q", dir, file, line)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// readSmall is readSmallAt of sub/file (file alone when sub is "") with the
// name in a's buffer. Errors are bare errnos with the step that failed
// ("open" or "read"): the caller knows the path. An empty file (an
// orphan's cgroup.procs) allocates nothing.
func (a *At) readSmall(dirfd int, sub, file string) ([]byte, string, error) {
	var p *byte
	if sub != "" {
		p = a.cstr([]string{sub, file})
	} else {
		p = a.cstr([]string{file})
	}
	var fd int
	for {
		r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return nil, "open", e
		}
		fd = int(r)
		break
	}
	defer unix.Close(fd)
	if a.read == nil {
		a.read = make([]byte, 4096)
	}
	var out []byte
	for {
		n, err := unix.Read(fd, a.read)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, "read", err
		}
		if n == 0 {
			return out, "", nil
		}
		out = append(out, a.read[:n]...)
	}
}

// ReadSmall reads a cgroupfs file with plain open/read/close: os.Open
// would also register the (pollable) kernfs file with the Go netpoller and
// stat it, which cost more than the read itself.
func ReadSmall(path string) ([]byte, error) {
	return readSmallAt(unix.AT_FDCWD, path)
}

// ReadSmallAt is ReadSmall of path relative to the open directory dirfd.
func ReadSmallAt(dirfd int, path string) ([]byte, error) { return readSmallAt(dirfd, path) }

func readSmallAt(dirfd int, path string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out []byte
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}
