package relief

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// knobs are the run's sizes, from the environment (see docs/benchmarks.md, "Relief").
type knobs struct {
	runs     int
	live     int           // live pods: real containerd sandboxes
	leaks    []int         // leaked pods added, cumulative steps
	window   time.Duration // one measured window
	binary   string        // bin/cgroupcleand
	out      string        // where the results and the plot go
	podRoot  string        // "kubepods" (cgroupfs) under the test root
	quick    bool          // the smoke run: checks the harness, measures nothing
	daemon   bool          // the daemon-with-shipped-defaults phase
	outside  int           // leaked dirs outside the pod root
	inPods   int           // leaked container dirs inside live pods
	peerPods int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func getKnobs(t *testing.T) knobs {
	k := knobs{
		runs: envInt("RELIEF_RUNS", 3), live: envInt("RELIEF_LIVE", 100),
		window:  time.Duration(envInt("RELIEF_WINDOW_S", 60)) * time.Second,
		binary:  os.Getenv("RELIEF_BINARY"),
		out:     os.Getenv("RELIEF_OUT"),
		podRoot: "kubepods",
		quick:   os.Getenv("RELIEF_SMOKE") != "",
		daemon:  os.Getenv("RELIEF_DAEMON") != "0",
		outside: envInt("RELIEF_OUTSIDE", 2000), inPods: envInt("RELIEF_IN_PODS", 2000),
		peerPods: envInt("RELIEF_PEER_PODS", 1000),
	}
	for _, s := range strings.Split(envOr("RELIEF_LEAKS", "500,2000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("RELIEF_LEAKS: %q is not a positive count", s)
		}
		k.leaks = append(k.leaks, n)
	}
	if k.binary == "" {
		t.Skip("RELIEF_BINARY (bin/cgroupcleand from make build) not set: `make relief` sets it")
	}
	if _, err := os.Stat(k.binary); err != nil {
		t.Fatalf("RELIEF_BINARY: %v", err)
	}
	if k.out == "" {
		k.out = t.TempDir()
	}
	return k
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func hexID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pod is one pod cgroup of a tree, with its container dirs.
type pod struct {
	UID, Rel string
	Ctrs     []string
}

// leakedPods makes n whole-pod leaks under podRoot (a third each
// guaranteed, burstable, besteffort; a sandbox and a container dir each),
// as kubelet's cgroupfs driver and containerd leave them, in every
// hierarchy of r: no runtime sandbox, no kubelet pod dir.
func leakedPods(ctx context.Context, t testing.TB, r *testbed.CgroupRoot, podRoot string, n int) []pod {
	t.Helper()
	pods := make([]pod, n)
	for i := range pods {
		uid := testbed.RandomUID()
		rel := podRoot + "/" + [3]string{"", "burstable/", "besteffort/"}[i%3] + "pod" + uid
		pods[i] = pod{UID: uid, Rel: rel, Ctrs: []string{hexID(), hexID()}}
	}
	mkdirPods(ctx, t, r, pods, true)
	return pods
}

// mkdirPods makes every pod dir (when withPod) and container dir, one
// worker per hierarchy (parents exist).
func mkdirPods(ctx context.Context, t testing.TB, r *testbed.CgroupRoot, pods []pod, withPod bool) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(r.Hierarchies))
	for _, h := range r.Hierarchies {
		wg.Add(1)
		go func(h hierarchy.Hierarchy) {
			defer wg.Done()
			for _, p := range pods {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				dir := h.Path(r.Rel(p.Rel))
				dirs := []string{}
				if withPod {
					dirs = append(dirs, dir)
				}
				for _, c := range p.Ctrs {
					dirs = append(dirs, dir+"/"+c)
				}
				for _, d := range dirs {
					if err := unix.Mkdir(d, 0o755); err != nil {
						errs <- fmt.Errorf("mkdir %s: %w", d, err)
						return
					}
				}
			}
		}(h)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// countDirs counts the directories under rel (relative to r) across
// hierarchies, rel itself excluded.
func countDirs(r *testbed.CgroupRoot, rel string) int {
	n := 0
	for _, h := range r.Hierarchies {
		top := h.Path(r.Rel(rel))
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != top {
				n++
			}
			return nil
		})
	}
	return n
}

// livePods runs n real sandboxes in c under podRoot, each with kubelet's
// pod dir in kubeletRoot, a few at a time. It returns them with their
// sandbox cgroup as the one container.
func livePods(t testing.TB, c *testbed.Containerd, r *testbed.CgroupRoot, podRoot, kubeletRoot string, n int) []pod {
	t.Helper()
	pods := make([]pod, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range pods {
		uid := testbed.RandomUID()
		rel := podRoot + "/" + [3]string{"", "burstable/", "besteffort/"}[i%3] + "pod" + uid
		if err := os.MkdirAll(filepath.Join(kubeletRoot, "pods", uid), 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := c.RunPod(t, r.Rel(rel), uid, fmt.Sprintf("live-%d", i))
			pods[i] = pod{UID: uid, Rel: rel, Ctrs: []string{id}}
		}()
	}
	wg.Wait()
	return pods
}

// snapshotDirs lists every directory of the pods (pod and container
// dirs) that exists now, in every hierarchy.
func snapshotDirs(r *testbed.CgroupRoot, pods []pod) []string {
	var dirs []string
	for _, h := range r.Hierarchies {
		for _, p := range pods {
			for _, rel := range append([]string{p.Rel}, prefixed(p.Rel, p.Ctrs)...) {
				d := h.Path(r.Rel(rel))
				if _, err := os.Stat(d); err == nil {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return dirs
}

// missing returns the directories of a snapshot that are gone.
func missing(dirs []string) []string {
	var gone []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			gone = append(gone, d)
		}
	}
	return gone
}

func prefixed(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = dir + "/" + n
	}
	return out
}

// newNode makes a kubelet-like node of the test's own: a cgroup root with
// the QoS dirs under podRoot, a kubelet root, a containerd, and nLive live
// pods (real sandboxes). It returns them and the live pods' dirs.
func newNode(t *testing.T, prefix, podRoot string, nLive int) (*testbed.CgroupRoot, string, *testbed.Containerd, []pod, []string) {
	t.Helper()
	r := testbed.NewCgroupRoot(t, prefix)
	for _, q := range []string{"burstable", "besteffort"} {
		if err := r.Mkdir(podRoot + "/" + q); err != nil {
			t.Fatal(err)
		}
	}
	kubelet := testbed.KubeletRoot(t)
	cd := testbed.StartContainerd(t)
	live := livePods(t, cd, r, podRoot, kubelet, nLive)
	return r, kubelet, cd, live, snapshotDirs(r, live)
}

// leftover is the number of dirs under podRoot beyond the QoS dirs and
// the live pods': the leaks not removed.
func leftover(r *testbed.CgroupRoot, podRoot string, liveDirs []string) int {
	return countDirs(r, podRoot) - 2*len(r.Hierarchies) - len(liveDirs)
}
