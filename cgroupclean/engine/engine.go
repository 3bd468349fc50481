// Package engine runs one pass of the pipeline: discover the hierarchies
// and the pod root, read the inventory, ask the runtime and kubelet what is
// live, decide, and (for clean) apply the plan with a last check before
// every removal. `scan` is Scan; `clean` and the daemon are Scan then Apply.
package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/apply"
	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/sirupsen/logrus"
)

// Units is the systemd manager, as the engine needs it.
type Units interface {
	// Lookup reports whether systemd has a loaded unit of that name and
	// the cgroup path it owns.
	Lookup(ctx context.Context, unit string) (loaded bool, cgroup string, err error)
	// Stop stops the unit and waits for the job (and resets it when it
	// ends failed). detail says how it ended.
	Stop(ctx context.Context, unit string) (detail string, err error)
}

// Engine holds what a pass needs. Zero values of the optional fields are
// safe: no Units means units are never stopped (and cgroups systemd owns
// are kept unless use_systemd = "never").
type Engine struct {
	Config  config.Config
	Runtime live.Runtime
	// RuntimeErr, when set, is why Runtime is nil (dial failed).
	RuntimeErr error
	Units      Units
	// UnitsErr is why Units is nil, shown in the kept reason's detail.
	UnitsErr     error
	Log          logrus.FieldLogger
	Now          func() time.Time
	Hierarchies  []hierarchy.Hierarchy
	BeforeRemove apply.BeforeRemove
	// OnResult, when set, is called with each result as soon as it is
	// known (the audit entry is written then, not at the end of the pass:
	// a daemon killed mid-pass loses at most the entry in flight).
	OnResult func(Result)
	// ProcScanFrom is from how many candidates on the scan counts their
	// processes from one pass over /proc instead of reading cgroup.procs in
	// each of their directories (0: 64). ProcRoot is /proc by default.
	ProcScanFrom int
	ProcRoot     string
	// DirCache, kept by the daemon from pass to pass, saves re-reading
	// pod directories that did not change.
	DirCache *inventory.DirCache
	// Pass numbers the audit records of actions (0: a one-shot command,
	// recorded as pass 1).
	Pass uint64
	// Kubelet answers the final checks' question about a pod (nil: the
	// pod dirs under cgroup.kubelet_root).
	Kubelet live.Kubelet
	// Cgroups reads, kills and removes cgroups (nil: apply.Cgroupfs).
	Cgroups Cgroups
	// Clock times the final checks against MaxCheckAge (nil: time.Now).
	Clock func() time.Time
	// Intents takes each intent record before its action, and says
	// whether the audit sink accepted it (nil: written to Log, taken as
	// accepted).
	Intents IntentSink

	// sequentialChecks runs each removal's final checks right before it,
	// not one removal ahead: the model test drives the steps one by one.
	sequentialChecks bool
}

// IntentSink writes intent records. WriteIntent returns nil only once the
// audit sink (journald, or the log output outside systemd) has taken the
// record; an action whose intent it did not take is not done.
type IntentSink interface {
	WriteIntent(fields logrus.Fields, msg string) error
}

// Cgroups is the cgroup and process view the removal steps act through.
type Cgroups interface {
	// ReadTrees walks path in every hierarchy (apply.ReadTreesKnown).
	ReadTrees(hs []hierarchy.Hierarchy, path string, known []string) (apply.Trees, error)
	// KillAll freezes path, lists its processes, calls confirm and, if it
	// returned nil, kills them (apply.KillAllConfirmed).
	KillAll(ctx context.Context, hs []hierarchy.Hierarchy, path string, confirm func() error) (apply.KillResult, error)
	// Remove removes the trees leaf-first (apply.Remove).
	Remove(t apply.Trees, before apply.BeforeRemove) ([]apply.HierarchyResult, error)
}

func (e *Engine) cgroups() Cgroups {
	if e.Cgroups != nil {
		return e.Cgroups
	}
	return apply.Cgroupfs{}
}

func (e *Engine) kubelet() live.Kubelet {
	if e.Kubelet != nil {
		return e.Kubelet
	}
	return live.KubeletDir{Root: e.Config.Cgroup.KubeletRoot}
}

// clock is the time of the final checks and of their age.
func (e *Engine) clock() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// Scan is the outcome of the read-only part of a pass.
type Scan struct {
	Hierarchies []hierarchy.Hierarchy `json:"-"`
	PodRoot     string                `json:"pod_root"`
	Endpoint    string                `json:"cri_endpoint"`
	Driver      names.Driver          `json:"driver"`
	// RuntimeDriver is the driver the runtime reports, if any.
	RuntimeDriver string `json:"runtime_driver,omitempty"`
	// NoPodRoot is set when no hierarchy has a pod root: nothing to do.
	NoPodRoot bool                 `json:"no_pod_root,omitempty"`
	Inventory *inventory.Inventory `json:"-"`
	Snapshot  live.Snapshot        `json:"-"`
	Plan      decide.Plan          `json:"plan"`
	Took      time.Duration        `json:"took_ns"`
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) pass() uint64 { return max(e.Pass, 1) }

func (e *Engine) log() logrus.FieldLogger {
	if e.Log != nil {
		return e.Log
	}
	l := logrus.New()
	l.SetLevel(logrus.PanicLevel)
	return l
}

// Policy turns the configuration into decision policy.
func Policy(c config.Config) decide.Policy {
	return decide.Policy{
		MinAge:              c.Clean.MinAge.Duration,
		MaxRemovalsPerPass:  c.Clean.MaxRemovalsPerPass,
		MaxRemovalShare:     c.Clean.MaxRemovalShare,
		MassGuardMinPods:    c.Clean.MassGuardMinPods,
		KillOrphanProcesses: c.Clean.KillOrphanProcesses,
		ConfirmPasses:       c.Clean.ConfirmPasses,
		RemoveContainers:    c.Clean.RemoveContainerLevel,
	}
}

// Discover finds the hierarchies (unless given), the pod root and the driver.
func (e *Engine) Discover() (hs []hierarchy.Hierarchy, podRoot string, driver names.Driver, err error) {
	hs = e.Hierarchies
	if hs == nil {
		if hs, err = hierarchy.Discover(e.Config.Cgroup.MountRoot); err != nil {
			return nil, "", "", err
		}
	}
	if len(hs) == 0 {
		return nil, "", "", fmt.Errorf("no cgroup hierarchy mounted under %s", e.Config.Cgroup.MountRoot)
	}
	podRoot = e.Config.Cgroup.PodRoot
	if podRoot == "" {
		if podRoot, err = inventory.DetectPodRoot(hs); err != nil {
			return hs, "", "", err
		}
	}
	driver = names.Driver(e.Config.Cgroup.Driver)
	if e.Config.Cgroup.Driver == "auto" {
		driver = names.DriverOfPodRoot(podRoot)
	}
	return hs, podRoot, driver, nil
}

// Scan runs discover, inventory, live set and decide. It changes nothing.
// sightings is the daemon's count of earlier passes that saw each orphan
// (nil for one-shot commands).
func (e *Engine) Scan(ctx context.Context, sightings map[string]int) (*Scan, error) {
	start := time.Now()
	hs, podRoot, driver, err := e.Discover()
	s := &Scan{Hierarchies: hs, PodRoot: podRoot, Driver: driver, Endpoint: e.Config.Runtime.Endpoint}
	if errors.Is(err, inventory.ErrNoPodRoot) {
		s.NoPodRoot = true
		s.Plan = decide.Decide(decide.Input{Now: e.now()}, Policy(e.Config))
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	snap, rtErr := e.snapshot(ctx)
	s.Snapshot, s.RuntimeDriver = snap, snap.CgroupDriver
	if rtErr == nil && snap.CgroupDriver != "" && e.Config.Cgroup.Driver == "auto" && snap.CgroupDriver != string(driver) {
		e.log().WithField("runtime_driver", snap.CgroupDriver).Warnf("the runtime reports cgroup driver %s but the pod root %s is named for %s; using %s names", snap.CgroupDriver, podRoot, driver, driver)
	}
	var idx *live.Index
	if rtErr == nil {
		idx = live.NewIndex(snap)
	}
	inv, err := inventory.ReadWith(hs, podRoot, driver, inventory.Options{Index: idx, Cache: e.DirCache})
	if errors.Is(err, inventory.ErrNoPodRoot) {
		s.NoPodRoot = true
		s.Plan = decide.Decide(decide.Input{Now: e.now()}, Policy(e.Config))
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pod cgroups: %w", err)
	}
	s.Inventory = inv
	var kubelet map[string]bool
	var kErr error
	if rtErr != nil || !allListed(inv, idx) {
		kubelet, kErr = live.KubeletPods(e.Config.Cgroup.KubeletRoot)
		if kErr != nil {
			// Once per pass; each pod it keeps has its own entry too.
			e.log().WithField(audit.Error, kErr.Error()).Warnf("kubelet state unknown, keeping every pod cgroup the runtime does not list: %v", kErr)
		}
	}
	in := decide.Input{Inventory: inv, Snapshot: snap, Index: idx, RuntimeErr: rtErr, KubeletPods: kubelet, KubeletErr: kErr, Sightings: sightings, Now: e.now()}
	pol := Policy(e.Config)
	// Count processes only where every earlier gate passed.
	first := decide.Decide(in, pol)
	if cands := decide.Candidates(first); len(cands) > 0 {
		in.Counted = e.countProcesses(hs, cands)
	}
	s.Plan = decide.Redecide(first, in, pol)
	s.Took = time.Since(start)
	return s, nil
}

// allListed reports whether the inventory, read with idx, recorded that
// the runtime lists a sandbox of every pod: kubelet is asked only about
// the pods it does not list, so on an idle node its pod dirs are not read.
func allListed(inv *inventory.Inventory, idx *live.Index) bool {
	if idx == nil || inv.Listed != idx {
		return false
	}
	for _, p := range inv.Pods {
		if !p.Listed {
			return false
		}
	}
	return true
}

func (e *Engine) snapshot(ctx context.Context) (live.Snapshot, error) {
	if e.Runtime == nil {
		err := e.RuntimeErr
		if err == nil {
			err = errors.New("no container runtime configured")
		}
		return live.Snapshot{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.Config.Runtime.Timeout.Duration)
	defer cancel()
	snap, err := e.Runtime.Snapshot(ctx)
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("ask runtime %s: %w", e.Config.Runtime.Endpoint, err)
	}
	return snap, nil
}

// countProcesses counts the processes of every candidate. Many candidates
// are counted from one pass over /proc (one read per process on the node,
// not one per cgroup directory per hierarchy); few, or when /proc cannot
// be read, from their cgroup.procs files. Either way the final check right
// before each removal reads cgroup.procs again. The counts are in the
// candidates' order (decide.Input.Counted).
func (e *Engine) countProcesses(hs []hierarchy.Hierarchy, cands []string) []decide.Counted {
	out := make([]decide.Counted, len(cands))
	from := e.ProcScanFrom
	if from <= 0 {
		from = 64
	}
	if len(cands) >= from {
		root := e.ProcRoot
		if root == "" {
			root = "/proc"
		}
		if pm, err := apply.ScanProcesses(root, hs); err == nil {
			for i, path := range cands {
				out[i] = decide.Counted{Path: path, Procs: decide.Procs{Count: pm.Count(path)}}
			}
			return out
		}
	}
	for i, path := range cands {
		pids, err := apply.Pids(hs, path)
		out[i] = decide.Counted{Path: path, Procs: decide.Procs{Count: len(pids), Err: err}}
	}
	return out
}
