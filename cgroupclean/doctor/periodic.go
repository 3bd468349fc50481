package doctor

import (
	"time"
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
	{IDDying, "hierarchies whose dying cgroups reach memcg.dying_warn"},
	{IDMemcgIDs, "memory hierarchies with half or more of the 65,535 memcg IDs in use, live and dying"},
	{IDLayerHigh, "containers whose writable layer holds more than 100,000 inodes (the runtime's figures)"},
}

// Metric severities: every finding of warn or critical counts as warning.
const (
	MetricWarning = "warning"
	MetricInfo    = "info"
)

// PeriodicKey is one series of the findings metric.
type PeriodicKey struct{ ID, Severity string }

// RunPeriodic runs the checks the daemon can afford every few passes:
// dying cgroups and memcg ID headroom, CFS throttling since before (the
// reading of the pass before; nil skips the check) and writable layer
// inodes from in.Containers. Nothing sleeps: the throttling share spans
// the time since before.
func RunPeriodic(in Input, before *CPUReading) Report {
	if in.ProcRoot == "" {
		in.ProcRoot = "/proc"
	}
	if in.InodeThreshold == 0 {
		in.InodeThreshold = DefaultInodeThreshold
	}
	r := &Report{Time: time.Now()}
	if in.Scan != nil {
		checkDying(in, r)
	}
	if before != nil {
		r.Interval = time.Since(before.at)
		checkThrottling(before, r)
	}
	checkLayers(in, r)
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
