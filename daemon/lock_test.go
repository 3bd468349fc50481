package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// The test bed's private lock mount covers the daemon's lock directory.
func TestTestbedLockDirIsTheDaemons(t *testing.T) {
	if testbed.LockDir != daemon.LockDir {
		t.Fatalf("testbed.LockDir %q, daemon.LockDir %q", testbed.LockDir, daemon.LockDir)
	}
}

// Only root may change what is in a state or lock directory: every other
// owner or mode is refused with the path, owner and mode.
func TestPrivateDirRefuses(t *testing.T) {
	testbed.RequireRoot(t)
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := mk("open", 0o777|os.ModeSticky, 0)
	link := filepath.Join(base, "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	loose := mk("loose", 0o777, 0)
	for _, tc := range []struct {
		dir, want string
	}{
		{open, "mode 1777"},
		{mk("group", 0o775, 0), "mode 0775"},
		{mk("nobody", 0o700, 65534), "uid 65534"},
		{link, "mode 1777"},
		{filepath.Join(loose, "state"), "above"},
		{filepath.Join(mk("nobodys", 0o755, 65534), "state"), "uid 65534"},
	} {
		err := daemon.PrivateDir(tc.dir, "state directory")
		if err == nil || !strings.Contains(err.Error(), "state directory "+tc.dir) && !strings.Contains(err.Error(), tc.dir+")") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PrivateDir(%s) = %v, want it refused naming the path and %q", tc.dir, err, tc.want)
		}
	}
	ok := filepath.Join(base, "new", "state")
	if err := daemon.PrivateDir(ok, "state directory"); err != nil {
		t.Fatalf("a new directory under root's: %v", err)
	}
	if st, err := os.Stat(ok); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("made %v, %v; want mode 0700", st, err)
	}
}

// A lock file that another user could open is refused: they could hold
// the lock and keep every cleaner out.
func TestLockFileMustBeRootsOnly(t *testing.T) {
	testbed.RequireRoot(t)
	for _, tc := range []struct {
		mode os.FileMode
		uid  int
		want string
	}{{0o644, 0, "mode 0644"}, {0o600, 65534, "uid 65534"}} {
		dir := t.TempDir()
		p := filepath.Join(dir, daemon.LockFile)
		if err := os.WriteFile(p, nil, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, tc.uid, tc.uid); err != nil {
			t.Fatal(err)
		}
		l, err := daemon.AcquireLock(context.Background(), dir, false)
		if err == nil {
			l.Release()
			t.Errorf("lock file mode %s uid %d accepted", tc.mode, tc.uid)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("lock file mode %s uid %d: %v", tc.mode, tc.uid, err)
		}
	}
	// A symlink in place of the lock file is not followed.
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, daemon.LockFile)); err != nil {
		t.Fatal(err)
	}
	if l, err := daemon.AcquireLock(context.Background(), dir, false); err == nil {
		l.Release()
		t.Error("a symlinked lock file was followed")
	}
}

// A waiter whose lock directory was removed while it waited (systemd
// removes the RuntimeDirectory when the unit stops) makes it again and
// takes the file that is there now, so it and a newcomer never both hold
// "the" lock.
func TestWaiterRetakesARemovedLockFile(t *testing.T) {
	testbed.RequireRoot(t)
	dir := t.TempDir()
	held, err := daemon.AcquireLock(context.Background(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *daemon.Lock, 1)
	go func() {
		l, err := daemon.AcquireLock(context.Background(), dir, true)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(300 * time.Millisecond)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	held.Release()
	var waiter *daemon.Lock
	select {
	case waiter = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter still waiting")
	}
	defer waiter.Release()
	if l, err := daemon.AcquireLock(context.Background(), dir, false); !daemon.IsLocked(err) {
		l.Release()
		t.Fatalf("a newcomer got the lock beside the waiter: %v", err)
	}
}
