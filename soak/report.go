// Package soak is `make soak`: the real cgroupcleand binary runs at a
// one-second interval against a real containerd while the harness
// creates and deletes pods without pause and injects faults (containerd
// SIGKILLed and restarted, containerd stalled with SIGSTOP, the daemon
// SIGKILLed mid-pass, a pod cgroup whose rmdir the kernel refuses, the
// systemd D-Bus going away). After every step it checks that no live
// sandbox lost a cgroup directory in any hierarchy. The harness is
// TestSoak in soak_test.go (skipped unless CGROUPCLEAN_SOAK is set); this
// file holds the pure part: the figures and the report.
package soak

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
)

// Durations summarises a set of waits.
type Durations []time.Duration

// Quantile returns the q-quantile (0..1) by the nearest-rank method: the
// smallest value with at least q of the set at or below it.
func (d Durations) Quantile(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	v := append(Durations(nil), d...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	rank := int(math.Ceil(q * float64(len(v))))
	rank = max(rank, 1)
	return v[min(rank, len(v))-1]
}

// Summary is "median / p95 / max", or "—" for an empty set.
func (d Durations) Summary() string {
	if len(d) == 0 {
		return "—"
	}
	f := func(x time.Duration) string { return fmt.Sprintf("%.2f s", x.Seconds()) }
	return f(d.Quantile(0.5)) + " / " + f(d.Quantile(0.95)) + " / " + f(d.Quantile(1))
}

// Counter counts by name; Sorted lists the names most frequent first.
type Counter map[string]int

// Sorted returns the names by count (descending), then by name.
func (c Counter) Sorted() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if c[out[i]] != c[out[j]] {
			return c[out[i]] > c[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// Total is the sum of the counts.
func (c Counter) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Fault is one kind of injected fault and what was seen around it.
type Fault struct {
	Kind  string
	Count int
	// Detail says how it was injected and what was checked.
	Detail string
}

// OrphanKind is one way of making an orphan, with its outcomes.
type OrphanKind struct {
	Kind string
	// How says how the orphan is made and when its clock starts.
	How     string
	Made    int
	Removed int
	// Waits are from the moment the orphan became removable to the moment
	// its directory was gone from every hierarchy.
	Waits Durations
}

// Report is everything one soak run measured.
type Report struct {
	Date        time.Time
	Planned     time.Duration
	Ran         time.Duration
	Smoke       bool
	Seed        uint64
	Kernel      string
	CPUs        int
	GoVersion   string
	LoadAvg     string
	Containerd  string
	Hierarchies []string
	Config      string // the daemon's settings, one line
	Note        string

	Steps           int
	Checks          int
	PodsCreated     int
	PodsByQoS       Counter
	WithContainer   int
	WithKubeletDir  int
	DeletedCleanly  int
	MaxLive         int
	Orphans         []*OrphanKind
	LeftAtEnd       int // orphans still there after the drain: must be 0
	RemovalEntries  int
	UnloggedRemoved int     // removed by a pass the harness SIGKILLed before it logged
	Kept            Counter // cgroups kept, by REASON: see AddKept
	Failed          Counter
	Faults          []*Fault
	Passes          int
	DaemonStarts    int
	UnexpectedExits int
	NonJSONLines    int

	LostDirs          int // live sandboxes' directories that vanished: must be 0
	LostPods          int
	LiveRemovalLogged int // removal entries naming a live pod: must be 0
	OutageRemovals    int // removals while the runtime could not be asked: must be 0
	Violations        []string
	KillsMidApply     int // daemon SIGKILLs that hit a pass between two removals
	UnitsStopped      int // unit-stopped entries (systemd driver)
}

// AddKept counts one kept record of the daemon's log in Kept, by REASON:
// a kept summary (MESSAGE_ID=75d082cc..., one per pass and reason) adds
// its COUNT, a refusal of the final check before a removal (9b2e..., a
// warning) adds 1. The per-cgroup 9b2e... records written at log level
// debug repeat what the summaries count and add nothing.
func (r *Report) AddKept(id, level, reason string, count int) {
	switch {
	case id == audit.IDKeptSummary:
		r.Kept[reason] += count
	case id == audit.IDRemovalRefused && level != "debug":
		r.Kept[reason]++
	}
}

// Write renders the report as Markdown.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# cgroupclean churn soak\n\n")
	p("Written by `make soak` (`soak/run.sh`, harness `soak/soak_test.go`). Do not edit by hand.\n\n")
	kind := "soak"
	if r.Smoke {
		kind = "smoke run (CI; proves the harness, short)"
	}
	p("- Date: %s; %s of %s planned, ran %s; seed %d\n", r.Date.UTC().Format(time.RFC3339), kind, r.Planned, r.Ran.Round(time.Second), r.Seed)
	p("- Machine: kernel %s, %d CPUs, %s; load average at start: %s\n", r.Kernel, r.CPUs, r.GoVersion, r.LoadAvg)
	if r.Note != "" {
		p("- Note: %s\n", r.Note)
	}
	p("- Runtime: real containerd (%s), its CRI plugin, cgroupfs driver, own root and sockets\n", r.Containerd)
	p("- Daemon: the real `cgroupcleand run` binary (built for the run), a child process of the harness, JSON log to a file; %s\n", r.Config)
	p("- Hierarchies (%d, every pod cgroup is in each): %s\n\n", len(r.Hierarchies), strings.Join(r.Hierarchies, ", "))

	p("## Verdict\n\n")
	p("| check (after every one of %d steps, %d checks) | result |\n|---|---|\n", r.Steps, r.Checks)
	p("| live sandboxes' cgroup directories lost (any hierarchy) | **%d** (%d pods) |\n", r.LostDirs, r.LostPods)
	p("| removal entries naming a live pod | %d |\n", r.LiveRemovalLogged)
	p("| removals while the runtime was down or stalled | %d |\n", r.OutageRemovals)
	p("| orphans still there at the end (after lifting every blocker and a drain) | %d |\n", r.LeftAtEnd)
	p("| daemon exits the harness did not cause | %d |\n", r.UnexpectedExits)
	if len(r.Violations) > 0 {
		p("\nViolations:\n\n")
		for _, v := range r.Violations {
			p("- %s\n", v)
		}
	}

	p("\n## Pods\n\n")
	p("| pods created | by QoS | with a container | with a kubelet pod dir | deleted cleanly | most live at once |\n|---|---|---|---|---|---|\n")
	var qos []string
	for _, k := range r.PodsByQoS.Sorted() {
		qos = append(qos, fmt.Sprintf("%s %d", k, r.PodsByQoS[k]))
	}
	p("| %d | %s | %d | %d | %d | %d |\n\n", r.PodsCreated, strings.Join(qos, ", "), r.WithContainer, r.WithKubeletDir, r.DeletedCleanly, r.MaxLive)

	p("## Orphans\n\n")
	p("Wait = from the moment the orphan became removable (sandbox removed; or the kubelet pod dir deleted, the process ended, the rmdir blocker lifted) to the moment its directory was gone from every hierarchy, seen by the harness polling every 100 ms. With interval 1s and confirm_passes 2, 1-2 s is the design; waits that overlap a fault (runtime down 3-4 s, daemon restarting) are longer, which is the point. An orphan kept because kubelet still tracks it is confirmed afresh once kubelet lets go (1-2 s); one kept for its processes already counts as sighted, so it goes at the first pass after they end (under 1 s).\n\n")
	p("| kind | how | made | removed | wait median / p95 / max |\n|---|---|---|---|---|\n")
	var all Durations
	made, removed := 0, 0
	for _, o := range r.Orphans {
		p("| %s | %s | %d | %d | %s |\n", o.Kind, o.How, o.Made, o.Removed, o.Waits.Summary())
		all = append(all, o.Waits...)
		made += o.Made
		removed += o.Removed
	}
	p("| **all** | | %d | %d | %s |\n\n", made, removed, all.Summary())
	p("Removal entries in the daemon's log (MESSAGE_ID=4f0d1c7e2b8a4d6f9a1e3c5b7d9f0a21): %d. Orphans removed by a pass that the harness SIGKILLed before it wrote its entries: %d (the daemon writes each removal's entry as that removal ends: at most the one in flight can be lost). Units stopped through D-Bus before removal (MESSAGE_ID=c3a5e7f9b1d34f2a8c4e6a8b0d2f4a65): %d.\n\n", r.RemovalEntries, r.UnloggedRemoved, r.UnitsStopped)

	p("## Refusals, from the daemon's log\n\n")
	p("Cgroups kept, by REASON: the COUNT of the per-pass kept summaries (MESSAGE_ID=75d082cc6dac4c5ea06d6e905105246f; orphans, and cgroups of unknown state while the runtime or kubelet could not be asked) plus the refusals of the final check before a removal (MESSAGE_ID=9b2e4f6a8c0d4e1f8a3b5c7d9e1f2a43, one per cgroup); a cgroup kept in N passes counts N times.\n\n")
	p("| reason | cgroups kept |\n|---|---|\n")
	for _, k := range r.Kept.Sorted() {
		p("| `%s` | %d |\n", k, r.Kept[k])
	}
	p("\nRemoval failures (MESSAGE_ID=2d4f6b8a0c1e4a3b9c5d7e9f1b3d5fed) by REASON:\n\n| reason | entries |\n|---|---|\n")
	for _, k := range r.Failed.Sorted() {
		p("| `%s` | %d |\n", k, r.Failed[k])
	}
	if len(r.Failed) == 0 {
		p("| (none) | 0 |\n")
	}

	p("\n## Faults injected\n\n| fault | count | how, and what was checked |\n|---|---|---|\n")
	for _, f := range r.Faults {
		p("| %s | %d | %s |\n", f.Kind, f.Count, f.Detail)
	}
	p("\nDaemon: %d starts, %d pass summaries logged, %d non-JSON log lines.\n", r.DaemonStarts, r.Passes, r.NonJSONLines)
	_, err := io.WriteString(w, b.String())
	return err
}
