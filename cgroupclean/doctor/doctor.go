// Package doctor is `cgroupcleand doctor`: a read-only report that answers
// "why is this node slow, and is it the cgroups?". Each check reads the
// node (cgroupfs, /proc, the runtime over CRI, systemd over D-Bus) and
// returns findings; none writes anything.
//
// Every finding has a stable ID for scripts (leak.orphan, cpu.throttled,
// ...), what was measured, the threshold it was held against and where
// that threshold comes from, and what to do.
package doctor

import (
	"context"
	"sort"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
)

// Severity orders findings.
type Severity string

// Severities, least to most.
const (
	OK       Severity = "ok"
	Info     Severity = "info"
	Warn     Severity = "warn"
	Critical Severity = "critical"
)

func (s Severity) rank() int {
	switch s {
	case Info:
		return 1
	case Warn:
		return 2
	case Critical:
		return 3
	}
	return 0
}

// Stable finding IDs. Add new ones; never rename.
const (
	IDOrphans      = "leak.orphans"       // count of orphaned pod and container cgroups (scan)
	IDOrphan       = "leak.orphan"        // one orphan, with its leak form
	IDDying        = "leak.dying"         // per hierarchy: num_cgroups minus the directories seen
	IDMemcgIDs     = "leak.memcg-ids"     // v1: memory cgroups against the kernel's 65535 IDs
	IDUnit         = "leak.unit"          // a failed or empty kubepods slice or container scope
	IDMemcgDying   = "memcg.dying"        // zombie memcgs from the memcg probe
	IDMemcgLatency = "memcg.stat-latency" // memory.stat read latency from the memcg probe
	IDThrottling   = "cpu.throttling"     // summary of the throttling check
	IDThrottled    = "cpu.throttled"      // one pod or container over the threshold
	IDCFSFix       = "cpu.cfs-quota-fix"  // whether the kernel has the CFS quota fix
	IDLayers       = "layer.inodes"       // summary of the writable layer check
	IDLayerHigh    = "layer.inodes-high"  // one container over the inode threshold
)

// Finding is one result of one check.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: a cgroup path, a pod as
	// namespace/name, a hierarchy, a unit. Empty for node-wide findings.
	Subject string `json:"subject,omitempty"`
	// Measured says what was read and its value; Value is the number
	// alerts and scripts compare.
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	// Threshold is what Value was held against, Source where it comes from.
	Threshold string `json:"threshold,omitempty"`
	Source    string `json:"threshold_source,omitempty"`
	// Form names the shape an orphan's tree shows (leak.orphan only);
	// Cause is how it leaked where that shape shows it, else "unknown".
	Form  string `json:"form,omitempty"`
	Cause string `json:"cause,omitempty"`
	// Action is what to do about it.
	Action string `json:"action,omitempty"`
	// Refs are public issues behind the finding.
	Refs []string `json:"refs,omitempty"`
}

// Report is the doctor's answer.
type Report struct {
	Time       time.Time     `json:"time"`
	Kernel     string        `json:"kernel,omitempty"`
	CgroupMode string        `json:"cgroup_mode,omitempty"`
	Driver     string        `json:"driver,omitempty"`
	PodRoot    string        `json:"pod_root,omitempty"`
	Interval   time.Duration `json:"interval_ns"`
	Findings   []Finding     `json:"findings"`
	// NotRun lists the checks that could not run, and why.
	NotRun []string `json:"checks_not_run,omitempty"`
}

// Worst is the highest severity among the findings.
func (r Report) Worst() Severity {
	w := OK
	for _, f := range r.Findings {
		if f.Severity.rank() > w.rank() {
			w = f.Severity
		}
	}
	return w
}

// Find returns the findings with that ID.
func (r Report) Find(id string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// Units is the part of systemd the doctor asks.
type Units interface {
	List(ctx context.Context, patterns ...string) ([]sdunit.Unit, error)
	Lookup(ctx context.Context, unit string) (sdunit.Unit, error)
}

// DefaultInodeThreshold is the writable-layer inode count above which a
// container is flagged (see layers.go for why).
const DefaultInodeThreshold = 100_000

// Input is what the checks read. Scan comes from the engine (discover,
// inventory, the runtime's answer, decide); the rest is read here.
type Input struct {
	Config config.Config
	Scan   *engine.Scan
	// ScanErr is why Scan is nil.
	ScanErr error
	// Containers are the runtime's containers with their writable layer
	// figures; ContainersErr is why they are missing.
	Containers    []cri.ContainerInfo
	ContainersErr error
	// Units is systemd; nil with UnitsErr when it cannot be asked.
	Units    Units
	UnitsErr error
	// ProcRoot is /proc unless tests say otherwise.
	ProcRoot string
	// Interval is the time between the two cpu.stat reads.
	Interval time.Duration
	// InodeThreshold: 0 means DefaultInodeThreshold.
	InodeThreshold uint64
}

// Run runs every check and sorts the findings, worst first, by ID within.
func Run(ctx context.Context, in Input) Report {
	if in.ProcRoot == "" {
		in.ProcRoot = "/proc"
	}
	if in.InodeThreshold == 0 {
		in.InodeThreshold = DefaultInodeThreshold
	}
	r := &Report{Time: time.Now(), Interval: in.Interval, Kernel: kernelRelease(in.ProcRoot)}
	if in.Scan != nil {
		r.Driver, r.PodRoot = string(in.Scan.Driver), in.Scan.PodRoot
		r.CgroupMode = hierarchy.Mode(in.Scan.Hierarchies)
	}
	checkLeaks(ctx, in, r)
	checkMemcg(ctx, in, r)
	// Both sample CPU over in.Interval: side by side.
	busy := startBusy(ctx, in)
	checkCPU(ctx, in, r)
	busy(r)
	checkLayers(in, r)
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() > b.Severity.rank()
		}
		return a.ID < b.ID
	})
	return *r
}

func (r *Report) add(f Finding)                  { r.Findings = append(r.Findings, f) }
func (r *Report) notRun(check string, err error) { r.NotRun = append(r.NotRun, check+": "+err.Error()) }

// level grades v against a warn and a critical threshold (0 = none).
func level(v, warn, crit float64) Severity {
	switch {
	case crit > 0 && v >= crit:
		return Critical
	case warn > 0 && v >= warn:
		return Warn
	}
	return OK
}
