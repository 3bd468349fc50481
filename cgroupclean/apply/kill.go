package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

// KillResult is what KillAll did.
type KillResult struct {
	Pids   []int // the processes signalled
	Frozen bool  // whether the cgroup was frozen while they were listed
}

// KillAll freezes path (v1 freezer or v2 cgroup.freeze, where mounted) so
// nothing inside can fork or exit while it is listed, sends SIGKILL to every
// process in its subtree in every hierarchy, thaws it and waits until no
// process is left or ctx ends. It is only called for orphan cgroups with
// kill_orphan_processes on: the PIDs come from the orphan's own cgroup.procs
// files, never from a name.
func KillAll(ctx context.Context, hs []hierarchy.Hierarchy, path string) (KillResult, error) {
	var res KillResult
	thaw := freeze(hs, path)
	res.Frozen = thaw != nil
	pids, err := Pids(hs, path)
	if err != nil {
		if thaw != nil {
			thaw()
		}
		return res, err
	}
	self := os.Getpid()
	var errs []error
	for _, pid := range pids {
		if pid <= 1 || pid == self {
			errs = append(errs, fmt.Errorf("refusing to kill pid %d found in %s", pid, path))
			continue
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
			continue
		}
		res.Pids = append(res.Pids, pid)
	}
	if thaw != nil {
		thaw()
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	for {
		left, err := Pids(hs, path)
		if err != nil {
			return res, err
		}
		if len(left) == 0 {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%d processes still in %s after SIGKILL: %w", len(left), path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeze freezes path and returns the function that thaws it, or nil when
// no freezer is available (the kill still happens, without the guarantee
// that no child is forked meanwhile).
func freeze(hs []hierarchy.Hierarchy, path string) func() {
	for _, h := range hs {
		dir := h.Path(path)
		switch {
		case h.Has("freezer"):
			if writeFile(h, dir, "freezer.state", "FROZEN") == nil {
				waitFrozen(dir)
				return func() { _ = writeFile(h, dir, "freezer.state", "THAWED") }
			}
		case h.Version == 2:
			if _, err := os.Stat(dir + "/cgroup.freeze"); err == nil && writeFile(h, dir, "cgroup.freeze", "1") == nil {
				return func() { _ = writeFile(h, dir, "cgroup.freeze", "0") }
			}
		}
	}
	return nil
}

func waitFrozen(dir string) {
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(dir + "/freezer.state")
		if err != nil || string(b) == "FROZEN\n" {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// writeFile writes a control file, confined to h's mount.
func writeFile(h hierarchy.Hierarchy, dir, name, val string) error {
	return cgfs.WriteConfined(h.Mountpoint, dir, name, []byte(val))
}
