package memcg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

// Paths says where the probe reads. Everything is injected so unit tests
// run on fixture trees.
type Paths struct {
	// ProcRoot is /proc.
	ProcRoot string
	// MemoryRoot is the v1 memory hierarchy's mountpoint
	// (/sys/fs/cgroup/memory) or the v2 root (/sys/fs/cgroup).
	MemoryRoot string
	// V2 is true when MemoryRoot is a cgroup2 mount with the memory
	// controller.
	V2 bool
	// PodRoot is kubelet's pod root as a cgroup path ("/kubepods.slice"),
	// empty when not known.
	PodRoot string
}

// PodRootDir is the pod root's directory in the memory hierarchy ("" if none).
func (p Paths) PodRootDir() string {
	if p.PodRoot == "" || p.PodRoot == "/" {
		return ""
	}
	return filepath.Join(p.MemoryRoot, filepath.Clean("/"+p.PodRoot))
}

// Locate picks the hierarchy that carries the memory controller: the v1
// memory hierarchy if mounted (hybrid nodes have an unified mount without
// controllers), else the v2 mount whose cgroup.controllers lists memory.
func Locate(hs []hierarchy.Hierarchy) (root string, v2 bool, err error) {
	for _, h := range hs {
		if h.Version == 1 && h.Has("memory") {
			return h.Mountpoint, false, nil
		}
	}
	for _, h := range hs {
		if h.Version != 2 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(h.Mountpoint, "cgroup.controllers"))
		if err != nil {
			return "", false, fmt.Errorf("locate memory controller: %w", err)
		}
		for _, c := range strings.Fields(string(data)) {
			if c == "memory" {
				return h.Mountpoint, true, nil
			}
		}
	}
	return "", false, errors.New("locate memory controller: not mounted in any hierarchy")
}

// Sample is one reading of the signals.
type Sample struct {
	Time time.Time
	V2   bool
	// Dying is the zombie count: of the whole machine on v1 (/proc/cgroups
	// counts every memcg), below the root on v2.
	Dying int64
	// Live is the number of live memory cgroups (directories).
	Live int64
	// PodDying is the zombie count below the pod root (v2 only; -1 when
	// not known, always on v1).
	PodDying int64
	// RootLatency and PodLatency are the open+read+close times of the
	// root's and the pod root's memory.stat (PodLatency 0 without a pod
	// root).
	RootLatency, PodLatency time.Duration
	// LatencyCensored is true when a read did not finish within the
	// timeout (or an earlier one was still running): the real latency is
	// at least the value reported.
	LatencyCensored bool
	// PodFileBytes is the page cache charged at the pod root (or the root
	// when there is none), from its memory.stat.
	PodFileBytes int64
	Meminfo      Meminfo
	// MemoryPSI and IOPSI are nil when the kernel has no PSI.
	MemoryPSI, IOPSI *PSI
	Kernel           KernelVersion
}

// Latency is the slower of the two memory.stat reads.
func (s Sample) Latency() time.Duration { return max(s.RootLatency, s.PodLatency) }

// Probe reads the signals. One memory.stat read is in flight at most: a
// read stuck in the kernel (seconds on pre-5.2 kernels with many zombies) is
// not stacked up on by the next pass, which reports the time it has been
// stuck instead.
type Probe struct {
	paths       Paths
	statTimeout time.Duration
	kernel      KernelVersion

	mu            sync.Mutex
	inflightSince time.Time // zero when no read is running
}

// NewProbe returns a probe. statTimeout bounds each memory.stat read.
func NewProbe(paths Paths, statTimeout time.Duration) (*Probe, error) {
	data, err := os.ReadFile(filepath.Join(paths.ProcRoot, "sys/kernel/osrelease"))
	if err != nil {
		return nil, fmt.Errorf("memcg probe: %w", err)
	}
	kv, err := ParseKernelVersion(data)
	if err != nil {
		return nil, fmt.Errorf("memcg probe: %w", err)
	}
	if statTimeout <= 0 {
		return nil, fmt.Errorf("memcg probe: stat timeout must be positive")
	}
	return &Probe{paths: paths, statTimeout: statTimeout, kernel: kv}, nil
}

// Kernel is the running kernel's version.
func (p *Probe) Kernel() KernelVersion { return p.kernel }

// Paths returns what the probe reads.
func (p *Probe) Paths() Paths { return p.paths }

// Sample reads every signal once. An error means the dying count could not
// be read; the context (meminfo, PSI) is best effort.
func (p *Probe) Sample(ctx context.Context) (Sample, error) {
	s := Sample{Time: time.Now(), V2: p.paths.V2, PodDying: -1, Kernel: p.kernel}
	var err error
	if p.paths.V2 {
		err = p.countV2(&s)
	} else {
		err = p.countV1(&s)
	}
	if err != nil {
		return Sample{}, err
	}
	p.latency(ctx, &s)
	proc := p.paths.ProcRoot
	if data, err := os.ReadFile(filepath.Join(proc, "meminfo")); err == nil {
		s.Meminfo, _ = ParseMeminfo(data)
	}
	s.MemoryPSI = readPSI(filepath.Join(proc, "pressure/memory"))
	s.IOPSI = readPSI(filepath.Join(proc, "pressure/io"))
	return s, nil
}

func readPSI(path string) *PSI {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	p, err := ParsePSI(data)
	if err != nil {
		return nil
	}
	return &p
}

func (p *Probe) countV2(s *Sample) error {
	root, err := readCgroupStat(p.paths.MemoryRoot)
	if err != nil {
		return err
	}
	s.Dying = int64(min(root.Dying(), 1<<62))
	if root.LiveMemory >= 0 {
		s.Live = root.LiveMemory
	} else {
		s.Live = int64(min(root.Descendants, 1<<62)) + 1
	}
	if dir := p.paths.PodRootDir(); dir != "" {
		pod, err := readCgroupStat(dir)
		if err != nil {
			return err
		}
		s.PodDying = int64(min(pod.Dying(), 1<<62))
	}
	return nil
}

func readCgroupStat(dir string) (CgroupStat, error) {
	path := filepath.Join(dir, "cgroup.stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return CgroupStat{}, fmt.Errorf("dying memcg count: %w", err)
	}
	cs, err := ParseCgroupStat(data)
	if err != nil {
		return CgroupStat{}, fmt.Errorf("dying memcg count: %s: %w", path, err)
	}
	return cs, nil
}

// countV1 subtracts the memory hierarchy's directories from /proc/cgroups'
// num_cgroups. Both are read again if the total moved during the walk, so a
// cgroup created meanwhile is not counted as dying.
func (p *Probe) countV1(s *Sample) error {
	path := filepath.Join(p.paths.ProcRoot, "cgroups")
	readNum := func() (int64, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("dying memcg count: %w", err)
		}
		n, err := MemoryNumCgroups(data)
		if err != nil {
			return 0, fmt.Errorf("dying memcg count: %w", err)
		}
		return n, nil
	}
	var before, after, dirs int64
	for try := 0; try < 3; try++ {
		var err error
		if before, err = readNum(); err != nil {
			return err
		}
		if dirs, err = CountDirs(p.paths.MemoryRoot); err != nil {
			return fmt.Errorf("dying memcg count: %w", err)
		}
		if after, err = readNum(); err != nil {
			return err
		}
		if before == after {
			break
		}
	}
	s.Live = dirs
	s.Dying = max(min(before, after)-dirs, 0)
	return nil
}

// CountDirs counts the cgroup directories of a hierarchy, root included.
// It uses the entry types getdents returns, never opening control files,
// and reads relative to open directories without garbage (cgfs.At, one
// per depth: a listing may not hold another on the same At): the memory
// hierarchy of a big node has hundreds of thousands of entries, and a
// DirEntry per entry set the peak RSS of a whole `scan`.
func CountDirs(root string) (int64, error) {
	fd, err := cgfs.Open(root)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var n int64
	var ats []*cgfs.At
	var openErr error // a directory that exists but cannot be opened fails the count
	var walk func(fd, depth int) error
	walk = func(fd, depth int) error {
		n++
		if depth == len(ats) {
			ats = append(ats, &cgfs.At{})
		}
		at := ats[depth]
		return at.Each(fd, func(name string, link bool) error {
			if link {
				return nil
			}
			sub, err := at.OpenAt(fd, name)
			if err == unix.ENOENT || err == unix.ENOTDIR {
				return nil // removed during the walk, or not a directory
			}
			if err != nil {
				openErr = fmt.Errorf("open %s below %s: %w", name, root, err)
				return openErr
			}
			defer unix.Close(sub)
			// A directory that cannot be listed still counts.
			if err := walk(sub, depth+1); openErr != nil {
				return err
			}
			return nil
		})
	}
	if err := walk(fd, 0); openErr != nil {
		return n, openErr
	} else if err != nil {
		return n, fmt.Errorf("read %s: %w", root, err)
	}
	return n, nil
}

type statResult struct {
	root, pod time.Duration
	fileBytes int64
}

// latency times the memory.stat reads kubelet makes, in a goroutine so a
// read stuck in the kernel is bounded by the timeout.
func (p *Probe) latency(ctx context.Context, s *Sample) {
	p.mu.Lock()
	if !p.inflightSince.IsZero() {
		s.RootLatency = time.Since(p.inflightSince)
		s.LatencyCensored = true
		p.mu.Unlock()
		return
	}
	start := time.Now()
	p.inflightSince = start
	p.mu.Unlock()

	done := make(chan statResult, 1)
	go func() {
		defer func() {
			p.mu.Lock()
			p.inflightSince = time.Time{}
			p.mu.Unlock()
		}()
		var r statResult
		var data []byte
		r.root, data = timedRead(filepath.Join(p.paths.MemoryRoot, "memory.stat"))
		if dir := p.paths.PodRootDir(); dir != "" {
			r.pod, data = timedRead(filepath.Join(dir, "memory.stat"))
		}
		r.fileBytes = fileBytes(data, p.paths.V2)
		done <- r
	}()
	timer := time.NewTimer(p.statTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		s.RootLatency, s.PodLatency, s.PodFileBytes = r.root, r.pod, r.fileBytes
	case <-timer.C:
		s.RootLatency, s.LatencyCensored = time.Since(start), true
	case <-ctx.Done():
		s.RootLatency, s.LatencyCensored = time.Since(start), true
	}
}

// timedRead is open, read, close of one file on the monotonic clock. A
// failed read reports its time too: the cost is what kubelet sees.
func timedRead(path string) (time.Duration, []byte) {
	start := time.Now()
	data, _ := os.ReadFile(path)
	return time.Since(start), data
}

func fileBytes(memoryStat []byte, v2 bool) int64 {
	kv, err := ParseFlatKeyed(memoryStat)
	if err != nil {
		return 0
	}
	key := "total_cache" // v1: hierarchical, zombies' cache included
	if v2 {
		key = "file"
	}
	return int64(min(kv[key], 1<<62))
}

// Env reports what the node offers for the watchdog's steps.
func (p *Probe) Env() Env {
	e := Env{V2: p.paths.V2, Kernel: p.kernel}
	dir := p.paths.PodRootDir()
	if dir == "" {
		return e
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		e.PodRoot = true
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.reclaim")); err == nil && p.paths.V2 {
		e.MemoryReclaim = true
	}
	return e
}
