package main

import (
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
)

// scanDoc is the document `scan --json` and `clean --json` print. Every key
// is snake_case; durations are in nanoseconds (keys end in _ns).
type scanDoc struct {
	Config  string          `json:"config"`
	Scan    *engine.Scan    `json:"scan"`
	Results []engine.Result `json:"results,omitempty"`
	// OtherDirs are the directories under the pod root that are neither pod
	// nor container cgroups.
	OtherDirs []otherDir `json:"other_dirs,omitempty"`
	Memcg     *memcgDoc  `json:"memcg,omitempty"`
	DryRun    bool       `json:"dry_run,omitempty"`
}

func newScanDoc(src string, s *engine.Scan, results []engine.Result, health *memcg.Decision, dryRun bool) scanDoc {
	return scanDoc{Config: src, Scan: s, Results: results, OtherDirs: otherDirs(s), Memcg: newMemcgDoc(health), DryRun: dryRun}
}

// otherDir is a directory under the pod root that is neither a pod nor a
// container cgroup.
type otherDir struct {
	Path string `json:"path"`
	Why  string `json:"why"`
	// InPod is the pod cgroup it is inside, where it goes with the pod;
	// "" at the pod root or a QoS level, where it is never touched.
	InPod string `json:"in_pod,omitempty"`
}

func otherDirs(s *engine.Scan) []otherDir {
	if s.Inventory == nil {
		return nil
	}
	var out []otherDir
	for _, sk := range s.Inventory.Skipped {
		out = append(out, otherDir{Path: sk.Path, Why: sk.Why})
	}
	inPods := otherDirsByPod(s)
	for _, it := range s.Plan.Items {
		for _, o := range inPods[it.Path] {
			out = append(out, otherDir{Path: o, Why: "not a container cgroup name: goes with its pod", InPod: it.Path})
		}
	}
	return out
}

// memcgDoc is memcg.Decision with snake_case keys and units in their
// names. A test fails when memcg.Decision gains a field this leaves out.
type memcgDoc struct {
	Time            time.Time     `json:"time"`
	Mode            string        `json:"mode"`
	Dying           int64         `json:"dying"`
	Live            int64         `json:"live"`
	PodDying        int64         `json:"pod_dying"` // -1: not known
	LatencyP50      time.Duration `json:"latency_p50_ns"`
	LatencyMax      time.Duration `json:"latency_max_ns"`
	LatencyCensored bool          `json:"latency_censored"`
	Level           string        `json:"level"`
	Trigger         string        `json:"trigger,omitempty"`
	Would           string        `json:"would,omitempty"`
	Reason          string        `json:"reason,omitempty"`
	Kernel          string        `json:"kernel"`
	Meminfo         meminfoDoc    `json:"meminfo"`
	MemoryPSI       *psiDoc       `json:"memory_psi,omitempty"`
	IOPSI           *psiDoc       `json:"io_psi,omitempty"`
	Action          string        `json:"action"`
	DropValue       int           `json:"drop_value,omitempty"`
	Skipped         []memcgSkip   `json:"skipped,omitempty"`
}

type meminfoDoc struct {
	Slab         int64 `json:"slab_bytes"`
	Percpu       int64 `json:"percpu_bytes"`
	Cached       int64 `json:"cached_bytes"`
	MemTotal     int64 `json:"mem_total_bytes"`
	MemAvailable int64 `json:"mem_available_bytes"`
}

type psiDoc struct {
	Some psiLineDoc `json:"some"`
	Full psiLineDoc `json:"full"`
}

type psiLineDoc struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	Total  uint64  `json:"total_us"`
}

type memcgSkip struct {
	Action string    `json:"action"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
}

func newMemcgDoc(d *memcg.Decision) *memcgDoc {
	if d == nil {
		return nil
	}
	h := d.Health
	doc := &memcgDoc{
		Time: h.Time, Mode: h.Mode, Dying: h.Dying, Live: h.Live, PodDying: h.PodDying,
		LatencyP50: h.LatencyP50, LatencyMax: h.LatencyMax, LatencyCensored: h.LatencyCensored,
		Level: string(h.Level), Trigger: string(h.Trigger), Would: string(h.Would), Reason: string(h.Reason),
		Kernel: h.Kernel,
		Meminfo: meminfoDoc{Slab: h.Meminfo.Slab, Percpu: h.Meminfo.Percpu, Cached: h.Meminfo.Cached,
			MemTotal: h.Meminfo.MemTotal, MemAvailable: h.Meminfo.MemAvailable},
		MemoryPSI: newPSIDoc(h.MemoryPSI), IOPSI: newPSIDoc(h.IOPSI),
		Action: string(d.Action), DropValue: d.DropValue,
	}
	for _, sk := range d.Skipped {
		doc.Skipped = append(doc.Skipped, memcgSkip{Action: string(sk.Action), Reason: string(sk.Reason), Until: sk.Until})
	}
	return doc
}

func newPSIDoc(p *memcg.PSI) *psiDoc {
	if p == nil {
		return nil
	}
	line := func(l memcg.PSILine) psiLineDoc {
		return psiLineDoc{Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300, Total: l.Total}
	}
	return &psiDoc{Some: line(p.Some), Full: line(p.Full)}
}
