package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
)

// ThrottleThreshold is the share of CFS periods throttled above which a
// cgroup is flagged: the kubernetes-mixin CPUThrottlingHigh alert's 25%.
const ThrottleThreshold = 0.25

// minPeriods is how many CFS periods must pass in the interval for a share
// to mean anything (100 ms periods: 1 s of a busy quota).
const minPeriods = 10

const throttleSource = "kubernetes-mixin alert CPUThrottlingHigh: rate(container_cpu_cfs_throttled_periods_total) / rate(container_cpu_cfs_periods_total) > 25%"

// CPUStat is the CFS bandwidth part of cpu.stat.
type CPUStat struct {
	Periods, Throttled uint64
	// ThrottledTime is the total time throttled (v1 throttled_time ns, v2
	// throttled_usec).
	ThrottledTime time.Duration
}

// ParseCPUStat reads cpu.stat of v1 (nr_periods nr_throttled
// throttled_time, in ns) or v2 (nr_periods nr_throttled throttled_usec).
func ParseCPUStat(data []byte) (CPUStat, error) {
	kv, err := memcg.ParseFlatKeyed(data)
	if err != nil {
		return CPUStat{}, err
	}
	p, ok1 := kv["nr_periods"]
	t, ok2 := kv["nr_throttled"]
	if !ok1 || !ok2 {
		return CPUStat{}, fmt.Errorf("cpu.stat: no nr_periods/nr_throttled: %w", memcg.ErrFormat)
	}
	s := CPUStat{Periods: p, Throttled: t}
	if us, ok := kv["throttled_usec"]; ok {
		s.ThrottledTime = time.Duration(us) * time.Microsecond
	} else if ns, ok := kv["throttled_time"]; ok {
		s.ThrottledTime = time.Duration(ns)
	}
	return s, nil
}

// cpuHierarchy is where cpu.stat with CFS bandwidth lives: the v1 cpu
// controller, or v2 when it has the cpu controller.
func cpuHierarchy(hs []hierarchy.Hierarchy) (hierarchy.Hierarchy, bool) {
	for _, h := range hs {
		if h.Version == 1 && h.Has("cpu") {
			return h, true
		}
	}
	for _, h := range hs {
		if h.Version == 2 {
			c, err := os.ReadFile(filepath.Join(h.Mountpoint, "cgroup.controllers"))
			if err == nil && hasWord(string(c), "cpu") {
				return h, true
			}
		}
	}
	return hierarchy.Hierarchy{}, false
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

type cpuTarget struct {
	path, subject string
	before        CPUStat
}

// CPUReading is the cpu.stat of every pod and container cgroup at one
// time: the first of the two reads the throttling share is made of.
type CPUReading struct {
	at      time.Time
	cpu     hierarchy.Hierarchy
	targets []*cpuTarget
}

// ReadCPU reads cpu.stat of every pod and container cgroup of the scan,
// the live ones too (the scan's inventory only counts those the runtime
// lists). It says why when it cannot.
func ReadCPU(in Input) (*CPUReading, error) {
	if in.Scan == nil || in.Scan.NoPodRoot || in.Scan.Inventory == nil {
		return nil, errors.New("no pod cgroups scanned")
	}
	h, ok := cpuHierarchy(in.Scan.Hierarchies)
	if !ok {
		return nil, errors.New("no hierarchy with the cpu controller")
	}
	inv, err := inventory.Read(in.Scan.Hierarchies, in.Scan.PodRoot, in.Scan.Driver)
	if err != nil {
		return nil, err
	}
	nm := newNamer(in)
	c := &CPUReading{at: time.Now(), cpu: h}
	for _, p := range inv.Pods {
		if s, err := readCPUStat(h, p.Path); err == nil {
			c.targets = append(c.targets, &cpuTarget{path: p.Path, subject: nm.pod(p.UID, p.Path), before: s})
		}
		for _, ct := range p.Containers {
			if s, err := readCPUStat(h, ct.Path); err == nil {
				c.targets = append(c.targets, &cpuTarget{path: ct.Path, subject: nm.container(p.UID, ct.ID, ct.Path), before: s})
			}
		}
	}
	return c, nil
}

func readCPUStat(h hierarchy.Hierarchy, path string) (CPUStat, error) {
	data, err := os.ReadFile(filepath.Join(h.Mountpoint, path, "cpu.stat"))
	if err != nil {
		return CPUStat{}, err
	}
	return ParseCPUStat(data)
}

// checkCPU reads cpu.stat of every pod and container cgroup twice,
// Interval apart, and flags those throttled in more than 25% of their CFS
// periods. It also says whether the kernel has the CFS quota fix.
func checkCPU(ctx context.Context, in Input, r *Report) {
	checkCFSFix(in.ProcRoot, r)
	if in.Scan == nil || in.Scan.NoPodRoot || in.Scan.Inventory == nil {
		return
	}
	before, err := ReadCPU(in)
	if err != nil {
		r.notRun("CFS throttling", err)
		return
	}
	interval := in.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	select {
	case <-ctx.Done():
		r.notRun("CFS throttling", ctx.Err())
		return
	case <-time.After(interval):
	}
	checkThrottling(before, r)
}

// checkThrottling reads cpu.stat again and flags the cgroups throttled in
// more than 25% of their CFS periods since the reading before.
func checkThrottling(before *CPUReading, r *Report) {
	elapsed := time.Since(before.at)
	measured, flagged := 0, 0
	for _, t := range before.targets {
		after, err := readCPUStat(before.cpu, t.path)
		if err != nil || after.Periods < t.before.Periods {
			continue // gone, or recreated, during the interval
		}
		dp := after.Periods - t.before.Periods
		if dp < minPeriods {
			continue // no quota, or idle: nothing to throttle
		}
		measured++
		dt := after.Throttled - t.before.Throttled
		share := float64(dt) / float64(dp)
		perSec := (after.ThrottledTime - t.before.ThrottledTime).Seconds() / elapsed.Seconds()
		if share <= ThrottleThreshold {
			continue
		}
		flagged++
		r.add(Finding{ID: IDThrottled, Severity: Warn, Subject: t.subject, Value: share,
			Measured:  fmt.Sprintf("%d of %d CFS periods throttled (%.0f%%), %.3f s throttled per second, over %s (cgroup %s)", dt, dp, 100*share, perSec, elapsed.Round(time.Millisecond), t.path),
			Threshold: "> 25% of periods", Source: throttleSource,
			Action: "raise (or remove) the CPU limit of this pod/container, or lower its parallelism: it wants more CPU than its quota; on kernels before 5.4 see " + IDCFSFix})
	}
	sev := OK
	if flagged > 0 {
		sev = Warn
	}
	r.add(Finding{ID: IDThrottling, Severity: sev, Value: float64(flagged),
		Measured:  fmt.Sprintf("%d of %d pod and container cgroups ran against a CFS quota during %s; %d throttled in more than 25%% of their periods", measured, len(before.targets), elapsed.Round(time.Millisecond), flagged),
		Threshold: "> 25% of periods", Source: throttleSource})
}

// checkCFSFix: mainline 5.4 has de53fd7aedb1 ("sched/fair: Fix low cpu
// usage with high throttling by removing expiration of cpu-local slices");
// before it, quota-limited pods were throttled while using far less than
// their quota.
func checkCFSFix(proc string, r *Report) {
	rel := kernelRelease(proc)
	kv, err := memcg.ParseKernelVersion([]byte(rel))
	if err != nil {
		r.notRun("CFS quota fix", err)
		return
	}
	f := Finding{ID: IDCFSFix, Subject: rel, Value: float64(kv.Major) + float64(kv.Minor)/1000,
		Threshold: "kernel version >= 5.4",
		Source:    "mainline commit de53fd7aedb1 \"sched/fair: Fix low cpu usage with high throttling by removing expiration of cpu-local slices\", first in v5.4",
		Refs:      []string{"https://github.com/kubernetes/kubernetes/issues/67577"}}
	if kv.AtLeast(5, 4) {
		f.Severity, f.Measured = OK, fmt.Sprintf("kernel %s is 5.4 or newer: it has the CFS quota fix", rel)
	} else {
		f.Severity = Warn
		f.Measured = fmt.Sprintf("kernel %s is older than 5.4: the check is by version only, and distributions backported the fix to older kernels", rel)
		f.Action = "check your kernel's changelog for de53fd7aedb1; without it, throttling shows on pods far below their quota: raise limits or upgrade the kernel"
	}
	r.add(f)
}
