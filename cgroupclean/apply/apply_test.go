package apply

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadTreesAndRemove(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "apply")
	must(t, r.Mkdir("pod/a/deep"))
	must(t, r.Mkdir("pod/b"))
	must(t, r.MkdirIn(r.Hierarchies[0], "pod/only-here"))
	trees, err := ReadTrees(r.Hierarchies, r.Rel("pod"))
	must(t, err)
	if len(trees.Pids) != 0 || len(trees.ByHierarchy) != len(r.Hierarchies) {
		t.Fatalf("trees %+v", trees)
	}
	if got := len(trees.ByHierarchy[0].Dirs); got != 5 {
		t.Fatalf("first hierarchy has %d dirs, want 5", got)
	}
	var before []string
	res, err := Remove(trees, func(h hierarchy.Hierarchy, dir string) { before = append(before, h.Name) })
	must(t, err)
	total := 0
	for _, h := range res {
		total += h.Removed
	}
	if want := 4*len(r.Hierarchies) + 1; total != want || r.Exists("pod") != 0 || len(before) != len(r.Hierarchies) {
		t.Fatalf("removed %d dirs (want %d), left in %d hierarchies, hook ran %d times", total, want, r.Exists("pod"), len(before))
	}
	// Absent everywhere: nothing to do, no error.
	trees, err = ReadTrees(r.Hierarchies, r.Rel("pod"))
	must(t, err)
	if res, err := Remove(trees, nil); err != nil || res[0].Removed != 0 || !res[0].Absent {
		t.Fatalf("absent tree: %+v %v", res, err)
	}
}

// The kernel refuses to remove a cgroup with a process: Remove reports
// busy and the process keeps its cgroup.
func TestRemoveRefusesCgroupWithProcess(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "applybusy")
	must(t, r.Mkdir("pod/ctr"))
	p := sleeper(t)
	must(t, r.AddProc("pod/ctr", p.Process.Pid))
	trees, err := ReadTrees(r.Hierarchies, r.Rel("pod"))
	must(t, err)
	if len(trees.Pids) != 1 || trees.Pids[0] != p.Process.Pid {
		t.Fatalf("pids %v", trees.Pids)
	}
	_, err = Remove(trees, nil)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("want ErrBusy, got %v", err)
	}
	if r.Exists("pod/ctr") != len(r.Hierarchies) {
		t.Fatal("the populated cgroup lost a directory")
	}
}

// KillAll kills the processes inside the cgroup and nothing else.
func TestKillAllOnlyInside(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "applykill")
	must(t, r.Mkdir("orphan/ctr"))
	must(t, r.Mkdir("live/ctr"))
	in1, in2, out := sleeper(t), sleeper(t), sleeper(t)
	must(t, r.AddProc("orphan/ctr", in1.Process.Pid))
	must(t, r.AddProc("orphan", in2.Process.Pid))
	must(t, r.AddProc("live/ctr", out.Process.Pid))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := KillAll(ctx, r.Hierarchies, r.Rel("orphan"))
	must(t, err)
	if len(res.Pids) != 2 || len(res.Frozen) == 0 {
		t.Fatalf("kill result %+v", res)
	}
	for _, c := range []*exec.Cmd{in1, in2} {
		if err := c.Wait(); err == nil {
			t.Fatalf("pid %d exited cleanly, want killed", c.Process.Pid)
		}
	}
	if out.ProcessState != nil {
		t.Fatal("the process outside was touched")
	}
	if pids, err := Pids(r.Hierarchies, r.Rel("live")); err != nil || len(pids) != 1 {
		t.Fatalf("live cgroup pids %v %v", pids, err)
	}
	trees, err := ReadTrees(r.Hierarchies, r.Rel("orphan"))
	must(t, err)
	if _, err := Remove(trees, nil); err != nil {
		t.Fatalf("the emptied orphan could not be removed: %v", err)
	}
}

// A process listed in the orphan that moved out before it was signalled
// (here: moved to a live cgroup in every hierarchy after the listing) is
// not signalled; the one still inside is. With the v2 hierarchy left out,
// only the pidfd path (re-check /proc/<pid>/cgroup, signal the pidfd) runs.
func TestKillSkipsProcessMovedOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		v1   bool
	}{{"all hierarchies", false}, {"v1 only (pidfd path)", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := testbed.NewCgroupRoot(t, "applymoved")
			hs := r.Hierarchies
			if tc.v1 {
				hs = nil
				for _, h := range r.Hierarchies {
					if h.Version == 1 {
						hs = append(hs, h)
					}
				}
				testbed.Need(t, len(hs) > 0, "a cgroup v1 hierarchy")
			}
			must(t, r.Mkdir("orphan/ctr"))
			must(t, r.Mkdir("live"))
			stays, moves := sleeper(t), sleeper(t)
			must(t, r.AddProc("orphan/ctr", stays.Process.Pid))
			must(t, r.AddProc("orphan/ctr", moves.Process.Pid))
			listed, err := Pids(hs, r.Rel("orphan"))
			must(t, err)
			if len(listed) != 2 {
				t.Fatalf("listed %v", listed)
			}
			must(t, r.AddProc("live", moves.Process.Pid))
			var res KillResult
			must(t, killListed(hs, r.Rel("orphan"), listed, &res))
			if len(res.Pids) != 1 || res.Pids[0] != stays.Process.Pid || len(res.MovedOut) != 1 || res.MovedOut[0] != moves.Process.Pid {
				t.Fatalf("kill result %+v", res)
			}
			if err := stays.Wait(); err == nil {
				t.Fatal("the process inside exited cleanly, want killed")
			}
			if err := moves.Process.Signal(syscall.Signal(0)); err != nil {
				t.Fatalf("the process that moved out was signalled: %v", err)
			}
		})
	}
}

// After KillAll the cgroup is thawed in every freezer again.
func TestKillAllThaws(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "applythaw")
	must(t, r.Mkdir("orphan"))
	p := sleeper(t)
	must(t, r.AddProc("orphan", p.Process.Pid))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := KillAll(ctx, r.Hierarchies, r.Rel("orphan"))
	must(t, err)
	if len(res.Pids) != 1 {
		t.Fatalf("kill result %+v", res)
	}
	if frozen := frozenIn(t, r, "orphan"); len(frozen) > 0 {
		t.Errorf("still frozen in %v", frozen)
	}
	t.Logf("frozen in %v, cgroup.kill in %v", res.Frozen, res.CgroupKill)
}

// frozenIn names the hierarchies whose freezer holds rel frozen.
func frozenIn(t *testing.T, r *testbed.CgroupRoot, rel string) []string {
	t.Helper()
	var out []string
	for _, h := range r.Hierarchies {
		dir := h.Path(r.Rel(rel))
		var ok bool
		var err error
		switch {
		case h.Has("freezer"):
			ok, err = v1Frozen(dir)
		case h.Version == 2:
			ok, err = v2Frozen(dir)
		}
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if ok {
			out = append(out, h.Name)
		}
	}
	return out
}

// When the last check before the signal says no, KillAllConfirmed
// signals nothing, returns that check's error and thaws the cgroup; the
// check runs while the cgroup is frozen, after its processes are listed.
func TestKillAllConfirmedRefusalKillsNothing(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "applyconfirm")
	must(t, r.Mkdir("orphan"))
	p := sleeper(t)
	must(t, r.AddProc("orphan", p.Process.Pid))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listedNow := errors.New("the runtime lists the pod now")
	var frozenAtCheck []string
	res, err := KillAllConfirmed(ctx, r.Hierarchies, r.Rel("orphan"), func() error {
		frozenAtCheck = frozenIn(t, r, "orphan")
		return listedNow
	})
	if !errors.Is(err, listedNow) || len(res.Pids) != 0 || len(res.CgroupKill) != 0 {
		t.Fatalf("KillAllConfirmed: %+v, %v; want the check's error and nothing killed", res, err)
	}
	if len(res.Frozen) == 0 || len(frozenAtCheck) != len(res.Frozen) {
		t.Errorf("frozen in %v when checked, want every freezer of %v", frozenAtCheck, res.Frozen)
	}
	if err := p.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the process was signalled: %v", err)
	}
	if frozen := frozenIn(t, r, "orphan"); len(frozen) > 0 {
		t.Errorf("still frozen in %v after the refusal", frozen)
	}
}
