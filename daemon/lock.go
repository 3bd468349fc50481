package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockDir holds the one-cleaner lock: one fixed place per machine, whatever
// the state directory, since a lock in the state directory let
// `clean --state-dir X` run beside the daemon. The unit makes it
// (RuntimeDirectory=cgroupclean); a cleaner started by hand makes it
// root-owned 0700 when it is missing.
const LockDir = "/run/cgroupclean"

// LockFile is the lock's name in LockDir.
const LockFile = "cgroupcleand.lock"

// Lock is the one-cleaner-at-a-time lock that `run` and `clean` hold for
// their whole life: an flock(2) on /run/cgroupclean/cgroupcleand.lock. The
// kernel drops it when the holder exits, however it exits, so a crash
// leaves no stale lock; the file only keeps the holder's PID for the
// message a second cleaner prints.
type Lock struct {
	f *os.File
}

// LockedError says another process holds the lock.
type LockedError struct {
	Path string
	// Holder is the PID written by the holder, 0 when not (yet) known.
	Holder int
}

func (e *LockedError) Error() string {
	who := "another cgroupcleand"
	if e.Holder > 0 {
		who += " (pid " + strconv.Itoa(e.Holder) + ")"
	}
	return who + " holds " + e.Path + ": one cleaner at a time (run, clean); stop it, or pass --wait to wait for it"
}

// AcquireLock takes the lock in dir: LockDir, or in tests a directory of
// their own (no flag, variable or key of the command line moves it). dir
// is created 0700 if missing and must pass PrivateDir, and the lock file
// must be root's alone: otherwise a local user could hold the lock and
// keep every cleaner out. With wait it retries until the lock is free or
// ctx ends; without, a held lock is a *LockedError at once.
func AcquireLock(ctx context.Context, dir string, wait bool) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	for {
		// Again on every try: the directory may have gone meanwhile.
		if err := PrivateDir(dir, "lock directory"); err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		f, err := openLockFile(path)
		if err != nil {
			return nil, err
		}
		err = flockWait(ctx, f, path, wait)
		if err != nil {
			f.Close()
			return nil, err
		}
		// The file may have been removed while we waited (systemd removes
		// the RuntimeDirectory when the unit stops): a lock on it would
		// exclude no one. Take the one that is there now.
		if same, err := stillAt(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: write pid: %w", path, err)
		}
		return &Lock{f: f}, nil
	}
}

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("lock %s: owned by uid %d, mode %04o: must be a file of root's only (0600), or another user could hold the lock; remove it", path, st.Uid, st.Mode&0o7777)
	}
	return f, nil
}

func flockWait(ctx context.Context, f *os.File, path string, wait bool) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("lock %s: %w", path, err)
		}
		if !wait {
			return &LockedError{Path: path, Holder: holder(path)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %w: %w", &LockedError{Path: path, Holder: holder(path)}, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stillAt reports whether path still names the open file f.
func stillAt(f *os.File, path string) (bool, error) {
	var open, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &open); err != nil {
		return false, err
	}
	if err := unix.Lstat(path, &now); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return open.Dev == now.Dev && open.Ino == now.Ino, nil
}

// Release drops the lock (exiting does too).
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// IsLocked reports whether err says another process holds the lock.
func IsLocked(err error) bool {
	var le *LockedError
	return errors.As(err, &le)
}

// PrivateDir makes dir (0700, with any missing parents) if it does not
// exist, and checks that only root can change what is in it: dir and every
// directory above it (symlinks resolved) owned by root and not writable by
// group or others, unless sticky like /tmp, where no one else can rename
// root's entries. A state directory that a user can write lets them hold
// the lock or plant the memcg watchdog's limits; what names the use in the
// error ("state directory").
func PrivateDir(dir, what string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s %q: must be an absolute path", what, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := privateEnough(st, p == real); err != nil {
			name := p
			if p != real {
				name = fmt.Sprintf("%s (above %s)", p, dir)
			} else if real != dir {
				name = fmt.Sprintf("%s (%s)", p, dir)
			}
			return fmt.Errorf("%s %s: %w", what, name, err)
		}
		if p == "/" {
			return nil
		}
	}
}

func privateEnough(st fs.FileInfo, last bool) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("cannot read its owner")
	}
	mode := st.Mode()
	switch {
	case !mode.IsDir():
		return fmt.Errorf("is not a directory (mode %s)", mode)
	case sys.Uid != 0:
		return fmt.Errorf("owned by uid %d, mode %04o: must be owned by root, or that user could put files there; chown root:root it", sys.Uid, sys.Mode&0o7777)
	case mode.Perm()&0o022 != 0 && (last || mode&fs.ModeSticky == 0):
		return fmt.Errorf("owned by root, mode %04o: must not be writable by group or others, or they could put files there; chmod go-w it (0700)", sys.Mode&0o7777)
	}
	return nil
}
