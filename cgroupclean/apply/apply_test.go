package apply

import (
	"context"
	"errors"
	"os/exec"
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
	if len(res.Pids) != 2 || !res.Frozen {
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
