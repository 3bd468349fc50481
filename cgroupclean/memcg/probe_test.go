package memcg

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

func TestProbeFixtures(t *testing.T) {
	tests := []struct {
		name      string
		paths     Paths
		dying     int64
		live      int64
		podDying  int64
		fileBytes int64
		kernel    string
		memAvg10  float64
		env       Env
	}{
		{
			// /proc/cgroups says 12 memory cgroups, the tree has 5 dirs.
			name:  "v1",
			paths: Paths{ProcRoot: "testdata/v1/proc", MemoryRoot: "testdata/v1/memory", PodRoot: "/kubepods"},
			dying: 7, live: 5, podDying: -1, fileBytes: 833994752, kernel: "6.18.44-fc-v595",
			env: Env{PodRoot: true},
		},
		{
			// v2 without nr_dying_subsys_memory (6.1): nr_dying_descendants.
			name:  "v2",
			paths: Paths{ProcRoot: "testdata/v2/proc", MemoryRoot: "testdata/v2/cgroup", V2: true, PodRoot: "kubepods.slice"},
			dying: 4731, live: 213, podDying: 4200, fileBytes: 5368709120, kernel: "5.15.0-91-generic", memAvg10: 31.5,
			env: Env{V2: true, PodRoot: true, MemoryReclaim: true},
		},
		{
			name:  "v2 without pod root",
			paths: Paths{ProcRoot: "testdata/v2/proc", MemoryRoot: "testdata/v2/cgroup", V2: true},
			dying: 4731, live: 213, podDying: -1, fileBytes: 5368709120, kernel: "5.15.0-91-generic", memAvg10: 31.5,
			env: Env{V2: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProbe(tt.paths, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Sample(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if s.Dying != tt.dying || s.Live != tt.live || s.PodDying != tt.podDying || s.PodFileBytes != tt.fileBytes {
				t.Errorf("dying=%d live=%d podDying=%d file=%d, want %d %d %d %d", s.Dying, s.Live, s.PodDying, s.PodFileBytes, tt.dying, tt.live, tt.podDying, tt.fileBytes)
			}
			if s.Kernel.String() != tt.kernel || s.RootLatency <= 0 || s.LatencyCensored {
				t.Errorf("kernel=%s root latency=%s censored=%v", s.Kernel, s.RootLatency, s.LatencyCensored)
			}
			if (tt.paths.PodRoot != "") != (s.PodLatency > 0) {
				t.Errorf("pod latency %s with pod root %q", s.PodLatency, tt.paths.PodRoot)
			}
			if s.MemoryPSI == nil || s.IOPSI == nil || s.Meminfo.Slab == 0 {
				t.Fatalf("context missing: %+v", s)
			}
			if tt.memAvg10 != 0 && s.MemoryPSI.Some.Avg10 != tt.memAvg10 {
				t.Errorf("memory PSI %+v", s.MemoryPSI)
			}
			env := p.Env()
			tt.env.Kernel = p.Kernel()
			if env != tt.env {
				t.Errorf("env %+v, want %+v", env, tt.env)
			}
		})
	}
}

func TestProbeErrors(t *testing.T) {
	tests := []struct {
		name  string
		paths Paths
	}{
		{"no /proc/cgroups", Paths{ProcRoot: "testdata/v2/proc", MemoryRoot: "testdata/v1/memory"}},
		{"no cgroup.stat", Paths{ProcRoot: "testdata/v1/proc", MemoryRoot: "testdata/v1/memory", V2: true}},
		{"no pod root", Paths{ProcRoot: "testdata/v2/proc", MemoryRoot: "testdata/v2/cgroup", V2: true, PodRoot: "/nope"}},
		{"no hierarchy", Paths{ProcRoot: "testdata/v1/proc", MemoryRoot: "testdata/nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewProbe(tt.paths, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if s, err := p.Sample(context.Background()); err == nil {
				t.Errorf("no error, sample %+v", s)
			}
		})
	}
	if _, err := NewProbe(Paths{ProcRoot: "testdata/nope"}, time.Second); err == nil {
		t.Error("NewProbe without osrelease: no error")
	}
}

// A memory.stat read that hangs (a FIFO nobody writes stands for a read
// stuck in the kernel) is cut at the timeout, and the next pass does not
// start a second read: it reports how long the first has been stuck.
func TestProbeOneReadInFlight(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/v1")); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(root, "memory/memory.stat")
	if err := os.Remove(stat); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(stat, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewProbe(Paths{ProcRoot: filepath.Join(root, "proc"), MemoryRoot: filepath.Join(root, "memory")}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := p.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s1.LatencyCensored || s1.RootLatency < 50*time.Millisecond {
		t.Fatalf("first pass: censored=%v latency=%s", s1.LatencyCensored, s1.RootLatency)
	}
	time.Sleep(20 * time.Millisecond)
	s2, err := p.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s2.LatencyCensored || s2.RootLatency < 70*time.Millisecond {
		t.Fatalf("second pass: censored=%v latency=%s, want >= 70ms (still the first read)", s2.LatencyCensored, s2.RootLatency)
	}
	// Release the stuck read: open the FIFO for writing and close it.
	w, err := os.OpenFile(stat, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		p.mu.Lock()
		idle := p.inflightSince.IsZero()
		p.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stuck read never finished")
		}
		time.Sleep(time.Millisecond)
	}
	// Replace the FIFO: the next pass reads normally again.
	os.Remove(stat)
	if err := os.WriteFile(stat, fixture(t, "files/memory.stat.v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	s3, err := p.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s3.LatencyCensored || s3.RootLatency >= 50*time.Millisecond {
		t.Errorf("third pass: censored=%v latency=%s", s3.LatencyCensored, s3.RootLatency)
	}
}

func TestLocate(t *testing.T) {
	v2root := "testdata/v2/cgroup"
	tests := []struct {
		name   string
		hs     []hierarchy.Hierarchy
		root   string
		v2, ok bool
	}{
		{name: "hybrid: v1 memory wins over unified", hs: []hierarchy.Hierarchy{
			{Name: "unified", Mountpoint: "testdata/v1/memory", Version: 2},
			{Name: "memory", Mountpoint: "/sys/fs/cgroup/memory", Version: 1, Controllers: []string{"memory"}},
		}, root: "/sys/fs/cgroup/memory", ok: true},
		{name: "pure v2", hs: []hierarchy.Hierarchy{{Name: "unified", Mountpoint: v2root, Version: 2}}, root: v2root, v2: true, ok: true},
		{name: "v2 without memory controller", hs: []hierarchy.Hierarchy{{Name: "unified", Mountpoint: "testdata/v1/memory", Version: 2}}},
		{name: "none", hs: []hierarchy.Hierarchy{{Name: "cpu", Mountpoint: "/x", Version: 1, Controllers: []string{"cpu"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, v2, err := Locate(tt.hs)
			if (err == nil) != tt.ok || root != tt.root || v2 != tt.v2 {
				t.Errorf("got %q %v %v", root, v2, err)
			}
		})
	}
}
