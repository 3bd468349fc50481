package cgfs

import (
	"fmt"
	"io/fs"
	"iter"
	"unsafe"

	"golang.org/x/sys/unix"
)

// At reads cgroup directories relative to open ones without allocating:
// a scan of 10,000 pods in ten hierarchies makes hundreds of thousands of
// lookups, and a string and a NUL-terminated copy for each was most of the
// garbage that set the scan's peak memory. It also looks up one path
// component at a time, not the whole path from the mount. An At is not
// safe for concurrent use, and Each is not reentrant: a listing inside a
// listing needs a second At.
type At struct {
	name    []byte
	dirents []byte
	read    []byte
}

// Open opens the directory path (not following a symlink).
func Open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return -1, fmt.Errorf("%s is not a directory: not a cgroup tree", path)
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// OpenAt opens the directory elems (joined by "/") below dirfd, not
// following a symlink. Errors are bare errnos: the caller knows the path.
func (a *At) OpenAt(dirfd int, elems ...string) (int, error) {
	p := a.cstr(elems)
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// Stat is lstat of elems (joined by "/") below dirfd. Errors are bare
// errnos.
func (a *At) Stat(dirfd int, st *unix.Stat_t, elems ...string) error {
	p := a.cstr(elems)
	for {
		e := rawFstatat(dirfd, p, st)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// Kid is a subdirectory found by name, with its lstat.
type Kid struct {
	Name string
	Stat unix.Stat_t
}

// Known tells whether names are all the subdirectories of a directory
// without listing it (listing a cgroup reads its dozens of control files).
// The directory is prefix below dirfd ("" for dirfd itself) and has link
// count nlink, which is 2 plus its subdirectories (kernfs keeps it so;
// symlinks do not count, and cgroupfs cannot hold one). Each name is
// stat'ed: the ones that are directories are appended to kids; a name that
// is gone is left out. complete is true when they are as many as nlink
// reports: then they are all of them, whatever changed since the names
// were read. A name that is not a directory, or cannot be stat'ed, makes
// complete false: the caller lists the directory.
func (a *At) Known(kids []Kid, dirfd int, prefix string, nlink uint64, names iter.Seq[string]) (_ []Kid, complete bool) {
	want := int(nlink) - 2
	if want < 0 {
		return kids, false
	}
	found := 0
	for name := range names {
		kids = append(kids, Kid{Name: name})
		k := &kids[len(kids)-1]
		var err error
		if prefix != "" {
			err = a.Stat(dirfd, &k.Stat, prefix, name)
		} else {
			err = a.Stat(dirfd, &k.Stat, name)
		}
		switch {
		case err == nil && k.Stat.Mode&unix.S_IFMT == unix.S_IFDIR:
			found++
		case err == unix.ENOENT:
			kids = kids[:len(kids)-1]
		default:
			return kids, false
		}
	}
	return kids, found == want
}

// cstr is elems joined by "/" and NUL-terminated, in a's buffer.
func (a *At) cstr(elems []string) *byte {
	a.name = a.name[:0]
	for i, e := range elems {
		if i > 0 {
			a.name = append(a.name, '/')
		}
		a.name = append(a.name, e...)
	}
	a.name = append(a.name, 0)
	return &a.name[0]
}

// Each calls fn with the name of every subdirectory and symlink of the
// open directory fd. The name is valid only during the call: it points
// into a's buffer. Copy it to keep it. An error of fn is returned as is;
// a read error does not name the directory (the caller knows it).
func (a *At) Each(fd int, fn func(name string, link bool) error) error {
	if a.dirents == nil {
		a.dirents = make([]byte, 16<<10)
	}
	for {
		n, err := unix.Getdents(fd, a.dirents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return nil
		}
		if err := eachDirent(a.dirents[:n], fn); err != nil {
			return err
		}
	}
}

func eachDirent(b []byte, fn func(name string, link bool) error) error {
	for len(b) > 0 {
		if len(b) < offName {
			return fmt.Errorf("short dirent record (%d bytes)", len(b))
		}
		reclen := int(*(*uint16)(unsafe.Pointer(&b[offReclen])))
		if reclen < offName || reclen > len(b) {
			return fmt.Errorf("bad dirent record length %d", reclen)
		}
		typ := b[offType]
		if typ == unix.DT_DIR || typ == unix.DT_LNK {
			name := b[offName:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if len(name) > 0 && !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				if err := fn(unsafe.String(&name[0], len(name)), typ == unix.DT_LNK); err != nil {
					return err
				}
			}
		}
		b = b[reclen:]
	}
	return nil
}
