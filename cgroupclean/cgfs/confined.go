package cgfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnconfined is returned for a write that would not stay inside the
// cgroup hierarchy it was meant for: a path with "..", outside the mount,
// through a symlink or another mount, or a mount that is not cgroupfs.
var ErrUnconfined = errors.New("path not confined to its cgroup mount")

// confinedResolve is how every path below a hierarchy's mount is resolved.
// The root is the hierarchy's own mount (not /sys/fs/cgroup, which on
// hybrid nodes is a tmpfs of symlinks such as cpu -> cpu,cpuacct): a
// cgroupfs mount holds no symlink and no other mount, so all four flags
// hold on v1 and v2 alike.
const confinedResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS |
	unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS

// OpenConfined opens name in the cgroup directory dir, which must be the
// mountpoint mount of a cgroup hierarchy or below it (both absolute, as
// hierarchy.Hierarchy.Path makes them). The file is opened with
// openat2(2) relative to the mount, so it cannot leave it: no "..", no
// symlink, no magic link (/proc/<pid>/...), no crossing into another mount.
// flags are open(2) flags; O_CLOEXEC is added. The caller closes the fd.
func OpenConfined(mount, dir, name string, flags int) (int, error) {
	rel, err := confinedRel(mount, dir, name)
	if err != nil {
		return -1, err
	}
	root, err := openMount(mount)
	if err != nil {
		return -1, err
	}
	defer unix.Close(root)
	return openBeneath(root, mount, rel, flags)
}

// WriteConfined writes data to name in dir with one write(2), confined as
// OpenConfined. Errors name the file and wrap the errno.
func WriteConfined(mount, dir, name string, data []byte) error {
	fd, err := OpenConfined(mount, dir, name, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, data)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: dir + "/" + name, Err: err}
	}
	return nil
}

// confinedRel is name's path relative to mount. Paths the daemon builds
// are clean; anything else ("..", ".", "//") is refused before the kernel
// sees it, since RESOLVE_BENEATH alone allows a ".." that stays below the
// mount (and so could reach the hierarchy's root cgroup).
func confinedRel(mount, dir, name string) (string, error) {
	if !path.IsAbs(mount) || path.Clean(mount) != mount || !path.IsAbs(dir) {
		return "", fmt.Errorf("%s/%s under %s: %w", dir, name, mount, ErrUnconfined)
	}
	full := dir + "/" + name
	rel, ok := strings.CutPrefix(full, mount+"/")
	if mount == "/" {
		rel, ok = strings.CutPrefix(full, "/")
	}
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%s: not a file in %s: %w", full, mount, ErrUnconfined)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("%s: component %q: %w", full, c, ErrUnconfined)
		}
	}
	return rel, nil
}

// openMount opens mount as an O_PATH handle and checks it is cgroupfs.
func openMount(mount string) (int, error) {
	fd, err := unix.Open(mount, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: mount, Err: err}
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "statfs", Path: mount, Err: err}
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a cgroup mount (fs type %#x): %w", mount, st.Type, ErrUnconfined)
	}
	return fd, nil
}

// openBeneath is openat2 of rel below root (named mount in errors). A
// resolution the flags forbid (EXDEV, ELOOP) is ErrUnconfined.
func openBeneath(root int, mount, rel string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Resolve: confinedResolve}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(root, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR, err == unix.EAGAIN && try < 10: // EAGAIN: a concurrent rename
			continue
		case err == unix.EXDEV, err == unix.ELOOP:
			return -1, fmt.Errorf("%s/%s: %w (%w)", mount, rel, ErrUnconfined, err)
		}
		return -1, &fs.PathError{Op: "openat2", Path: mount + "/" + rel, Err: err}
	}
}
