package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// Finding IDs of the busy check: orphans nobody can remove (rmdir fails
// with EBUSY for kubelet and cgroupcleand alike), their cause, and what
// kubelet's endless retries cost.
const (
	IDBusyMount    = "leak.busy.mount"  // a mount on or below the orphan's directory
	IDBusyDState   = "leak.busy.dstate" // tasks in uninterruptible sleep (state D) inside it
	IDBusyFrozen   = "leak.busy.frozen" // the orphan (or a cgroup below it) is frozen
	IDKubeletRetry = "kubelet.retrying" // kubelet's "Failed to delete cgroup paths" lines and CPU
)

const refStuckRunc = "https://github.com/kubernetes/kubernetes/issues/123766"

// BusyFindings names, for every orphan that cannot be removed, why: a
// mount on or below its directory (from mountinfo), tasks in state D (with
// their wchan), or a freeze; and kubelet's retry cost: its "Failed to
// delete cgroup paths" lines in the journal over the last minute and its
// CPU over in.Interval (from its cgroup's cpu.stat). It sleeps
// in.Interval when kubelet runs; with in.Interval 0 it does not sleep and
// leaves the CPU out. The error lists what could not be read; the
// findings are still those that could.
func BusyFindings(ctx context.Context, in Input) ([]Finding, error) {
	if in.Scan == nil || in.Scan.NoPodRoot {
		return nil, nil
	}
	proc := in.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	var errs []error
	mounts, err := readMountPoints(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		errs = append(errs, err)
	}
	var out []Finding
	for _, it := range busyCandidates(in.Scan.Plan.Items) {
		out = append(out, busyCauses(it, in.Scan.Hierarchies, mounts, proc)...)
	}
	k, err := kubeletCost(ctx, in.Scan.Hierarchies, proc, in.Interval)
	if err != nil {
		errs = append(errs, err)
	}
	if k != nil {
		out = append(out, k.finding())
	}
	return out, errors.Join(errs...)
}

// busyCandidates are the orphans, pods and containers in live pods; a
// container inside an orphan pod is looked at with its pod.
func busyCandidates(items []decide.Item) []decide.Item {
	var out []decide.Item
	for _, it := range items {
		if it.State == decide.Orphan {
			out = append(out, it)
			continue
		}
		for _, c := range it.Children {
			if c.State == decide.Orphan {
				out = append(out, c)
			}
		}
	}
	return out
}

// task is one thread seen in a cgroup.
type task struct {
	pid, tid int
	comm     string
	state    byte
	wchan    string
}

func (t task) String() string {
	s := fmt.Sprintf("pid %d (%s) state %c", t.pid, t.comm, t.state)
	if t.tid != t.pid {
		s = fmt.Sprintf("pid %d thread %d (%s) state %c", t.pid, t.tid, t.comm, t.state)
	}
	if t.wchan != "" {
		s += " wchan " + t.wchan
	}
	return s
}

// busyCauses looks at the orphan's directory and everything below it, in
// every hierarchy that holds it.
func busyCauses(it decide.Item, hs []hierarchy.Hierarchy, mounts []string, proc string) []Finding {
	var mountsIn, frozen []string
	var dTasks, frozenTasks []task
	frozenPID := map[int]bool{}
	seenTID := map[int]bool{}
	for _, h := range hs {
		if !holds(it, h) {
			continue
		}
		top := h.Path(it.Path)
		for _, mp := range mounts {
			if mp == top || strings.HasPrefix(mp, top+"/") {
				mountsIn = append(mountsIn, mp)
			}
		}
		var frozenDirs []string
		_ = filepath.WalkDir(top, func(dir string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if isFrozen(h, dir) {
				frozen = append(frozen, dir)
				frozenDirs = append(frozenDirs, dir)
			}
			inFrozen := false
			for _, f := range frozenDirs {
				if dir == f || strings.HasPrefix(dir, f+"/") {
					inFrozen = true
				}
			}
			for _, t := range cgroupTasks(dir, proc) {
				if inFrozen {
					frozenPID[t.pid] = true
				}
				if !seenTID[t.tid] && t.state == 'D' {
					seenTID[t.tid] = true
					dTasks = append(dTasks, t)
				}
			}
			return nil
		})
	}
	// A task the freezer holds shows state D too: it is the freeze's
	// evidence, not a cause of its own.
	var stuck []task
	for _, t := range dTasks {
		if frozenPID[t.pid] || isFreezerWait(t.wchan) {
			frozenTasks = append(frozenTasks, t)
		} else {
			stuck = append(stuck, t)
		}
	}
	dTasks = stuck
	sort.Strings(mountsIn)
	mountsIn = dedup(mountsIn)
	var out []Finding
	base := Finding{Severity: Warn, Subject: it.Path, Source: "rmdir of a cgroup fails with EBUSY while it is a mount point or holds tasks (the kernel's rule); kubelet then retries it every housekeeping, forever"}
	if len(mountsIn) > 0 {
		f := base
		f.ID, f.Value, f.Cause = IDBusyMount, float64(len(mountsIn)), "mount"
		f.Measured = fmt.Sprintf("%d mount(s) on or below the orphan's directory (/proc/self/mountinfo): %s; rmdir fails EBUSY", len(mountsIn), strings.Join(limit(mountsIn, 5), ", "))
		f.Action = "find what made the mount (`findmnt " + mountsIn[0] + "`: a stray bind mount of the cgroup tree, a volume or debugging tool) and unmount it (`umount " + mountsIn[0] + "`); then kubelet or `cgroupcleand clean` removes the cgroup"
		out = append(out, f)
	}
	if len(dTasks) > 0 {
		f := base
		f.ID, f.Value, f.Cause, f.Refs = IDBusyDState, float64(len(dTasks)), "uninterruptible-sleep", []string{refStuckRunc}
		f.Measured = fmt.Sprintf("%d task(s) in uninterruptible sleep (state D), which no signal ends: %s", len(dTasks), strings.Join(limit(taskStrings(dTasks), 5), "; "))
		f.Action = "the task leaves only when what it waits for (its wchan) returns: thaw a frozen file system (`fsfreeze -u`), bring back the NFS/FUSE server or the storage it waits on; if that never comes back, only a reboot frees the cgroup"
		out = append(out, f)
	}
	if len(frozen) > 0 || len(frozenTasks) > 0 {
		f := base
		f.ID, f.Value, f.Cause = IDBusyFrozen, float64(len(frozen)), "frozen"
		ev := fmt.Sprintf("%d frozen cgroup(s): %s", len(frozen), strings.Join(limit(frozen, 5), ", "))
		if len(frozenTasks) > 0 {
			ev += fmt.Sprintf("; %d task(s) held in the freezer: %s", len(frozenTasks), strings.Join(limit(taskStrings(frozenTasks), 5), "; "))
		}
		f.Measured = ev + "; on v1 a frozen task dies on SIGKILL only once thawed"
		f.Action = "find who froze it, then thaw it (v2: `echo 0 > cgroup.freeze`, v1: `echo THAWED > freezer.state`); kubelet's kill then ends its tasks and the cgroup goes"
		out = append(out, f)
	}
	return out
}

// holds reports whether the item exists in hierarchy h.
func holds(it decide.Item, h hierarchy.Hierarchy) bool {
	for _, name := range it.Hierarchies {
		if name == h.Name {
			return true
		}
	}
	return false
}

// isFrozen reads the freeze switch of one cgroup: v2 cgroup.freeze, v1
// freezer.state (FROZEN, or FREEZING on the way there).
func isFrozen(h hierarchy.Hierarchy, dir string) bool {
	if h.Version == 2 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze"))
		return err == nil && strings.TrimSpace(string(b)) == "1"
	}
	if !h.Has("freezer") {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	s := strings.TrimSpace(string(b))
	return err == nil && (s == "FROZEN" || s == "FREEZING")
}

// isFreezerWait: the kernel functions a frozen task sleeps in (v1
// freezer, v2 freezer).
func isFreezerWait(wchan string) bool {
	return wchan == "__refrigerator" || wchan == "do_freezer_trap" || wchan == "freezer_trap"
}

// cgroupTasks lists the threads of the processes in one cgroup directory,
// with their state and wchan. A process that exits meanwhile is skipped.
func cgroupTasks(dir, proc string) []task {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []task
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		tids, err := os.ReadDir(filepath.Join(proc, f, "task"))
		if err != nil {
			continue
		}
		for _, e := range tids {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			tdir := filepath.Join(proc, f, "task", e.Name())
			stat, err := os.ReadFile(filepath.Join(tdir, "stat"))
			if err != nil {
				continue
			}
			comm, state, ok := parseStat(stat)
			if !ok {
				continue
			}
			t := task{pid: pid, tid: tid, comm: comm, state: state}
			if w, err := os.ReadFile(filepath.Join(tdir, "wchan")); err == nil && string(w) != "0" {
				t.wchan = strings.TrimSpace(string(w))
			}
			out = append(out, t)
		}
	}
	return out
}

// parseStat takes comm and state from /proc/<pid>/stat: "pid (comm) S ...";
// comm may hold spaces and parentheses, so it ends at the last ')'.
func parseStat(b []byte) (comm string, state byte, ok bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return "", 0, false
	}
	return string(b[open+1 : end]), b[end+2], true
}

// readMountPoints returns every mount point in a mountinfo file.
func readMountPoints(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	return parseMountPoints(data)
}

// parseMountPoints takes the mount point of each mountinfo line (proc(5)),
// its octal escapes undone.
func parseMountPoints(data []byte) ([]string, error) {
	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	out := make([]string, len(infos))
	for i, m := range infos {
		out[i] = m.Mountpoint
	}
	return out, nil
}

func taskStrings(ts []task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// limit keeps the first n, saying how many more there were.
func limit(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
}

func dedup(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// startBusy runs BusyFindings in the background; the function it returns
// waits for it and adds its findings to r.
func startBusy(ctx context.Context, in Input) func(r *Report) {
	type result struct {
		fs  []Finding
		err error
	}
	done := make(chan result, 1)
	go func() {
		fs, err := BusyFindings(ctx, in)
		done <- result{fs, err}
	}()
	return func(r *Report) {
		res := <-done
		for _, f := range res.fs {
			r.add(f)
		}
		if res.err != nil {
			r.notRun("busy orphans and kubelet's retries", res.err)
		}
	}
}
