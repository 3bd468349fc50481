package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// KillResult is what KillAll did.
type KillResult struct {
	// Pids are the processes listed in the cgroup and killed: by
	// cgroup.kill (v2) or by a SIGKILL sent through a pidfd (v1).
	Pids []int
	// Frozen names the hierarchies whose freezer held the cgroup while
	// its processes were listed and killed.
	Frozen []string
	// CgroupKill names the v2 hierarchies where cgroup.kill was written.
	CgroupKill []string
	// MovedOut are processes listed in the cgroup that were no longer in
	// it when they were to be signalled: left alone.
	MovedOut []int
}

// ErrKillRefused is returned when KillAll signals nothing because doing
// so is not safe (pid 1 or the caller inside, no pidfd support).
var ErrKillRefused = errors.New("kill refused")

// freezeTimeout bounds the wait for a freezer to report the cgroup frozen.
const freezeTimeout = 5 * time.Second

// KillAll kills every process in path's subtree, in every hierarchy. It is
// only called for orphan cgroups with kill_orphan_processes on, after every
// check that could refuse the removal.
//
// First the cgroup is frozen in every freezer present (v1 freezer.state,
// v2 cgroup.freeze) and KillAll waits until each reports it frozen, so
// nothing inside forks or exits while it is listed; a freezer that does
// not get there in time is thawed again and nothing is killed. Then no PID
// number is signalled that could have been reused: on v2, cgroup.kill
// kills the subtree by cgroup; every process listed (also those only a v1
// hierarchy shows) is opened as a pidfd, its /proc/<pid>/cgroup checked to
// be still inside path, and SIGKILL sent through the pidfd. A process that
// moved out is left alone (MovedOut). Then the cgroup is thawed and
// KillAll waits until no process is left or ctx ends.
func KillAll(ctx context.Context, hs []hierarchy.Hierarchy, path string) (KillResult, error) {
	return KillAllConfirmed(ctx, hs, path, nil)
}

// KillAllConfirmed is KillAll with a last check: confirm runs once the
// cgroup is frozen and its processes are listed, right before the first
// signal (the freeze may take seconds, so a check made before it is
// stale). When confirm returns an error nothing is signalled, the cgroup
// is thawed and the error is returned.
func KillAllConfirmed(ctx context.Context, hs []hierarchy.Hierarchy, path string, confirm func() error) (KillResult, error) {
	var res KillResult
	thaw, frozen, err := freezeAll(ctx, hs, path)
	res.Frozen = frozen
	if err != nil {
		return res, err
	}
	pids, err := Pids(hs, path)
	if err == nil && confirm != nil {
		err = confirm()
	}
	if err == nil {
		err = killListed(hs, path, pids, &res)
	}
	thaw()
	if err != nil {
		return res, err
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

// killListed kills pids, listed in path: cgroup.kill in every v2
// hierarchy that has path, then a pidfd SIGKILL for each listed process
// still inside path.
func killListed(hs []hierarchy.Hierarchy, path string, pids []int, res *KillResult) error {
	self := os.Getpid()
	for _, pid := range pids {
		if pid <= 1 || pid == self {
			return fmt.Errorf("pid %d found in %s: %w", pid, path, ErrKillRefused)
		}
	}
	var errs []error
	for _, h := range hs {
		if h.Version != 2 {
			continue
		}
		err := cgfs.WriteConfined(h.Mountpoint, h.Path(path), "cgroup.kill", []byte("1"))
		switch {
		case err == nil:
			res.CgroupKill = append(res.CgroupKill, h.Name)
		case errors.Is(err, fs.ErrNotExist): // not in this hierarchy, or a kernel before 5.14
		default:
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
	}
	for _, pid := range pids {
		outcome, err := signalIfInside(hs, path, pid)
		switch {
		case err != nil:
			errs = append(errs, err)
		case outcome == signalled:
			res.Pids = append(res.Pids, pid)
		case outcome == gone && len(res.CgroupKill) > 0:
			// Listed in the frozen cgroup, so it could not exit by
			// itself: cgroup.kill ended it (and it was reaped already).
			res.Pids = append(res.Pids, pid)
		case outcome == gone:
		default:
			res.MovedOut = append(res.MovedOut, pid)
		}
	}
	return errors.Join(errs...)
}

// signalOutcome is what signalIfInside found.
type signalOutcome uint8

const (
	signalled signalOutcome = iota + 1
	gone                    // exited (or reaped) before it could be signalled
	movedOut                // alive, no longer in the cgroup: left alone
)

// signalIfInside sends SIGKILL to pid through a pidfd if the process is
// still in path (or below) in one of hs. The pidfd is opened first: if the
// process then exits and its number is reused, /proc/<pid>/cgroup may
// describe the newcomer, but the signal still goes only to the pidfd's
// process, which is gone (ESRCH, nothing sent).
func signalIfInside(hs []hierarchy.Hierarchy, path string, pid int) (signalOutcome, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return gone, nil
	}
	if err != nil {
		// No pidfd (kernel before 5.3): a bare PID could be reused.
		return 0, fmt.Errorf("pidfd_open %d: %w (%w)", pid, ErrKillRefused, err)
	}
	defer unix.Close(fd)
	in, err := cgroups.ParseCgroupFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return gone, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cgroups of pid %d: %w", pid, err)
	}
	if !insideAny(hs, in, path) {
		return movedOut, nil
	}
	err = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return gone, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kill %d: %w", pid, err)
	}
	return signalled, nil
}

// insideAny reports whether a process's cgroups (from ParseCgroupFile:
// controller, "name=..." or "" for v2, to path) put it in path or below in
// any of hs.
func insideAny(hs []hierarchy.Hierarchy, in map[string]string, path string) bool {
	for _, h := range hs {
		key := ""
		switch {
		case h.Version == 2:
		case len(h.Controllers) > 0:
			key = h.Controllers[0]
		default:
			key = h.Name // name=systemd
		}
		if p, ok := in[key]; ok && (p == path || strings.HasPrefix(p, path+"/")) {
			return true
		}
	}
	return false
}

// freezeAll freezes path in every freezer hierarchy that has it and waits
// until each says frozen. It returns the function that thaws them all and
// the names of the frozen hierarchies. On error everything already frozen
// is thawed again.
func freezeAll(ctx context.Context, hs []hierarchy.Hierarchy, path string) (thaw func(), frozen []string, err error) {
	var thaws []func()
	thaw = func() {
		for _, t := range thaws {
			t()
		}
	}
	deadline := time.Now().Add(freezeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// v2 first: a task the v1 freezer holds cannot reach the v2 freezer's
	// trap, so the other order never reads "frozen 1" on hybrid nodes.
	ordered := make([]hierarchy.Hierarchy, 0, len(hs))
	for _, v := range []int{2, 1} {
		for _, h := range hs {
			if h.Version == v {
				ordered = append(ordered, h)
			}
		}
	}
	for _, h := range ordered {
		var file, on, off string
		var isFrozen func(dir string) (bool, error)
		switch {
		case h.Has("freezer"):
			file, on, off, isFrozen = "freezer.state", "FROZEN", "THAWED", v1Frozen
		case h.Version == 2:
			file, on, off, isFrozen = "cgroup.freeze", "1", "0", v2Frozen
		default:
			continue
		}
		dir := h.Path(path)
		err := cgfs.WriteConfined(h.Mountpoint, dir, file, []byte(on))
		if errors.Is(err, fs.ErrNotExist) {
			continue // not in this hierarchy (or no cgroup.freeze, before 5.2)
		}
		if err == nil {
			thaws = append(thaws, func() { _ = cgfs.WriteConfined(h.Mountpoint, dir, file, []byte(off)) })
			err = waitFrozen(dir, isFrozen, deadline)
		}
		if err != nil {
			thaw()
			return func() {}, nil, fmt.Errorf("freeze %s in %s: %w", path, h.Name, err)
		}
		frozen = append(frozen, h.Name)
	}
	return thaw, frozen, nil
}

func waitFrozen(dir string, isFrozen func(string) (bool, error), deadline time.Time) error {
	for {
		ok, err := isFrozen(dir)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("not frozen in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// v1Frozen: freezer.state reads FREEZING until every task is frozen.
func v1Frozen(dir string) (bool, error) {
	b, err := cgfs.ReadSmall(dir + "/freezer.state")
	return strings.TrimSpace(string(b)) == "FROZEN", err
}

// v2Frozen: cgroup.events says "frozen 1" once the whole subtree is.
func v2Frozen(dir string) (bool, error) {
	b, err := cgfs.ReadSmall(dir + "/cgroup.events")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "frozen 1" {
			return true, nil
		}
	}
	return false, nil
}
