package doctor

import (
	"context"
	"errors"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
)

// Periodic is a finding the daemon exports as a metric: the number of
// objects (pods, containers, hierarchies) it flags now. The table is the
// whole list: a new cheap check adds its row here, and the metric's
// label values follow (each row pre-set to 0 at both severities).
type Periodic struct {
	ID string
	// Objects says what is counted, for docs/metrics.md.
	Objects string
}

// PeriodicFindings are the findings of the cheap checks (RunPeriodic).
var PeriodicFindings = []Periodic{
	{IDThrottled, "pod and container cgroups throttled in more than 25% of their CFS periods since the pass before"},
	{IDMemcgDying, "1 when the dying memory cgroups reach memcg.dying_warn (from the memcg watchdog's last probe)"},
	{IDMemcgIDs, "1 when half or more of the 65,535 memcg IDs are in use, live and dying (v1, from the same probe)"},
	{IDLayerHigh, "containers whose writable layer holds more than 100,000 inodes (the runtime's figures)"},
	{IDBusyMount, "orphans that cannot be removed while a mount is on or below their directory"},
	{IDBusyDState, "orphans that cannot be removed while tasks in them are in uninterruptible sleep (state D)"},
	{IDBusyFrozen, "orphans that cannot be removed while they (or a cgroup below) are frozen"},
	{IDKubeletRetry, "1 when kubelet logged \"Failed to delete cgroup paths\" in the last minute (it retries a cgroup it cannot remove, forever)"},
}

// Metric severities: every finding of warn or critical counts as warning.
const (
	MetricWarning = "warning"
	MetricInfo    = "info"
)

// PeriodicKey is one series of the findings metric.
type PeriodicKey struct{ ID, Severity string }

// RunPeriodic runs the checks the daemon can afford every few passes, on
// what it has at hand: CFS throttling since before (the reading of the
// pass before; nil skips it), writable layer inodes from in.Containers,
// and the dying memcgs and memcg ID headroom from memcgSample, the memcg
// watchdog's last probe (nil skips them). Nothing sleeps, and nothing
// walks the whole cgroup tree again: doctor's per-hierarchy dying count
// (leak.dying) walks every directory of every hierarchy, seconds on a node
// with tens of thousands of cgroups, so the daemon leaves it to `doctor`.
// The busy causes of the orphans (BusyFindings) are read without
// kubelet's CPU, which would need a second reading.
func RunPeriodic(ctx context.Context, in Input, before *CPUReading, memcgSample *memcg.Sample) Report {
	if in.InodeThreshold == 0 {
		in.InodeThreshold = DefaultInodeThreshold
	}
	r := &Report{Time: time.Now()}
	if memcgSample != nil {
		r.add(memcgDyingFinding(*memcgSample, in.Config.Memcg))
		if !memcgSample.V2 {
			checkMemcgIDs(memcgSample.Live+memcgSample.Dying, r)
		}
	} else {
		r.notRun("dying memcgs and memcg IDs", errors.New("no memcg probe (memcg.mode = \"off\")"))
	}
	if before != nil {
		r.Interval = time.Since(before.at)
		checkThrottling(before, r)
	}
	checkLayers(in, r)
	in.Interval = 0
	busy, err := BusyFindings(ctx, in)
	for _, f := range busy {
		r.add(f)
	}
	if err != nil {
		r.notRun("busy causes", err)
	}
	return *r
}

// CountPeriodic counts the findings of rep by PeriodicFindings row and
// metric severity, every row present at both severities.
func CountPeriodic(rep Report) map[PeriodicKey]int {
	out := make(map[PeriodicKey]int, 2*len(PeriodicFindings))
	known := map[string]bool{}
	for _, p := range PeriodicFindings {
		known[p.ID] = true
		out[PeriodicKey{p.ID, MetricWarning}] = 0
		out[PeriodicKey{p.ID, MetricInfo}] = 0
	}
	for _, f := range rep.Findings {
		if !known[f.ID] {
			continue
		}
		switch f.Severity {
		case Warn, Critical:
			out[PeriodicKey{f.ID, MetricWarning}]++
		case Info:
			out[PeriodicKey{f.ID, MetricInfo}]++
		}
	}
	return out
}
