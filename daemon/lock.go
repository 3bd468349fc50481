package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockFile is the lock's name in the state directory.
const LockFile = "cgroupcleand.lock"

// Lock is the one-cleaner-at-a-time lock that `run` and `clean` hold for
// their whole life: an flock(2) on <state_dir>/cgroupcleand.lock. The kernel
// drops it when the holder exits, however it exits, so a crash leaves no
// stale lock; the file only keeps the holder's PID for the message a second
// cleaner prints.
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

// AcquireLock takes the lock in dir (created 0700 if missing). With wait
// it retries until the lock is free or ctx ends; without, a held lock is a
// *LockedError at once.
func AcquireLock(ctx context.Context, dir string, wait bool) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock: state directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !wait {
			f.Close()
			return nil, &LockedError{Path: path, Holder: holder(path)}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %w: %w", &LockedError{Path: path, Holder: holder(path)}, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
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
