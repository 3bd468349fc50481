package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// podSpec is one pod of a bench tree: a cgroupfs pod cgroup holding two
// container cgroups named by 64-hex IDs, as containerd's CRI with the
// cgroupfs driver makes them (the sandbox's and one container's).
type podSpec struct {
	UID, Rel, Sandbox, Ctr string
}

// tree is a kubelet-like cgroupfs layout under the bench's own cgroup root,
// the same in every hierarchy.
type tree struct {
	root *testbed.CgroupRoot
	pods []podSpec
	// took is how long the mkdirs took (reported, not a target).
	took time.Duration
}

func hexID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// buildTree makes n pods (a third each guaranteed, burstable, besteffort)
// in every hierarchy, split across workers by hierarchy. The root is
// removed when the test ends, whatever is left of the tree.
func buildTree(ctx context.Context, t testing.TB, n, workers int) *tree {
	t.Helper()
	r := testbed.NewCgroupRoot(t, "bench")
	for _, q := range []string{"kubepods/burstable", "kubepods/besteffort"} {
		if err := r.Mkdir(q); err != nil {
			t.Fatal(err)
		}
	}
	tr := &tree{root: r, pods: make([]podSpec, n)}
	for i := range tr.pods {
		uid := testbed.RandomUID()
		rel := "kubepods/pod" + uid
		switch i % 3 {
		case 1:
			rel = "kubepods/burstable/pod" + uid
		case 2:
			rel = "kubepods/besteffort/pod" + uid
		}
		tr.pods[i] = podSpec{UID: uid, Rel: rel, Sandbox: hexID(), Ctr: hexID()}
	}
	start := time.Now()
	jobs := make(chan hierarchy.Hierarchy)
	errs := make([]error, len(r.Hierarchies))
	var wg sync.WaitGroup
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range jobs {
				errs[indexOf(r.Hierarchies, h)] = tr.mkdirAll(ctx, h)
			}
		}()
	}
	for _, h := range r.Hierarchies {
		jobs <- h
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("build tree of %d pods: %v", n, err)
	}
	tr.took = time.Since(start)
	return tr
}

func indexOf(hs []hierarchy.Hierarchy, h hierarchy.Hierarchy) int {
	for i := range hs {
		if hs[i].Mountpoint == h.Mountpoint {
			return i
		}
	}
	return -1
}

// mkdirAll makes every pod and container dir in one hierarchy. The parents
// exist (made by the root's Mkdir), so one mkdir per directory: building is
// the slow part of a bench (about 1 ms per cgroup here).
func (tr *tree) mkdirAll(ctx context.Context, h hierarchy.Hierarchy) error {
	for _, p := range tr.pods {
		if err := ctx.Err(); err != nil {
			return err
		}
		pod := h.Path(tr.root.Rel(p.Rel))
		for _, d := range []string{pod, pod + "/" + p.Sandbox, pod + "/" + p.Ctr} {
			if err := unix.Mkdir(d, 0o755); err != nil {
				return fmt.Errorf("mkdir %s: %w", d, err)
			}
		}
	}
	return nil
}

// dirs is the number of pod and container cgroup dirs across hierarchies.
func (tr *tree) dirs() int { return len(tr.pods) * 3 * len(tr.root.Hierarchies) }

// podRoots are <root>/kubepods in every hierarchy: what the engine reads
// and what the find baselines walk.
func (tr *tree) podRoots() []string {
	var out []string
	for _, h := range tr.root.Hierarchies {
		out = append(out, h.Path(tr.root.Rel("kubepods")))
	}
	return out
}

// snapshot is the recorded CRI answer: every pod with even index is live
// (its sandbox and its container listed), the others are orphans.
func (tr *tree) snapshot() live.Snapshot {
	s := live.Snapshot{CgroupDriver: "cgroupfs"}
	for i, p := range tr.pods {
		if i%2 != 0 {
			continue
		}
		s.Sandboxes = append(s.Sandboxes, live.Sandbox{ID: p.Sandbox, PodUID: p.UID, Name: "bench-" + p.UID[:8], Namespace: "bench", Ready: true, CreatedAt: time.Unix(1700000000, 0)})
		s.Containers = append(s.Containers, live.Container{ID: p.Ctr, SandboxID: p.Sandbox, State: "CONTAINER_RUNNING"})
	}
	return s
}

// remaining counts the subdirectories left under the pod roots (after a
// removal: 0 for find, the QoS dirs for the engine).
func (tr *tree) remaining() (int, error) {
	n := 0
	for _, root := range tr.podRoots() {
		err := walkDirs(root, func(string) { n++ })
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

func walkDirs(dir string, f func(string)) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			p := dir + "/" + e.Name()
			f(p)
			if err := walkDirs(p, f); err != nil {
				return err
			}
		}
	}
	return nil
}
