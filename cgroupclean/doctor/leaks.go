package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

// Leak forms: how an orphan came to be, where the tree shows it.
const (
	FormMiscOnly        = "misc-only"                    // only in the v1 misc hierarchy old runc did not know
	FormContainerdScope = "containerd-scope-in-live-pod" // a cri-containerd-*.scope left in a live pod
	FormConmon          = "conmon-without-container"     // crio-conmon-<id> whose crio-<id> is gone
	FormEmptyPod        = "pod-without-containers"       // a pod cgroup with no container left
	FormUnknown         = "unknown"
)

// form is a leak form: what the tree shows, the public issues where that
// shape was seen, and what to do. A shape seldom proves how the orphan
// leaked, so the cause is given only where the shape itself is the
// evidence; elsewhere it is "unknown" and the issues are one known way.
type form struct {
	name     string
	observed string
	cause    string // "" when the tree does not show it: reported as unknown
	refs     []string
	action   string
}

// CauseUnknown is the cause of an orphan whose tree does not show it.
const CauseUnknown = "unknown"

var forms = map[string]form{
	FormMiscOnly: {FormMiscOnly, "left only in the v1 misc hierarchy, gone from every other",
		"what removed it from the other hierarchies did not know the misc controller, as runc before 1.1.6 (runc#3849)",
		[]string{"https://github.com/opencontainers/runc/issues/3849", "https://github.com/kubernetes/kubernetes/issues/117647"},
		"check the runtime's runc and kubelet's vendored runc against runc#3849 (fixed in 1.1.6) and kubernetes#117647"},
	FormContainerdScope: {FormContainerdScope, "a cri-containerd-<id>.scope the runtime does not list, in a pod it lists", "",
		[]string{"https://github.com/kubernetes/kubernetes/issues/112151"},
		"look in containerd's and the system journal for the container ID; kubernetes#112151 is one known way (cgroup v2, systemd driver), and a process in D state can hold a scope"},
	FormConmon: {FormConmon, "a crio-conmon-<id> cgroup whose crio-<id> is gone", "",
		[]string{"https://github.com/cri-o/cri-o/issues/838"},
		"look in CRI-O's journal for the container ID (CRI-O removes conmon's cgroup after its container); cri-o#838 is one known way, in CRI-O of 2017"},
	FormEmptyPod: {FormEmptyPod, "a pod cgroup with no container cgroup left and no container the runtime lists", "",
		[]string{"https://github.com/cri-o/cri-o/issues/5490"},
		"look in kubelet's journal for the pod UID: kubelet deletes a pod's cgroup when it removes the pod, and never does when the sandbox went while kubelet was not running (cri-o#5490, one known way)"},
	FormUnknown: {FormUnknown, "nothing in the tree shows how it leaked", "", nil,
		"`cgroupcleand clean` removes it once it passes the safety gates"},
}

// LeakForm names the leak form of an orphan. pod is the orphan's pod item
// (the orphan itself for a pod cgroup); podLive says whether the runtime
// lists that pod.
func LeakForm(it decide.Item, podLive bool, siblings []string) string {
	if len(it.Hierarchies) == 1 && it.Hierarchies[0] == "misc" {
		return FormMiscOnly
	}
	if it.Kind == decide.ContainerKind {
		_, kind, ok := names.ParseContainerDir(filepath.Base(it.Path))
		switch {
		case ok && kind == names.ContainerdScope && podLive:
			return FormContainerdScope
		case ok && kind == names.CrioConmon:
			scope := strings.HasSuffix(filepath.Base(it.Path), ".scope")
			want := "crio-" + it.ContainerID
			if scope {
				want += ".scope"
			}
			for _, s := range siblings {
				if s == want {
					return FormUnknown
				}
			}
			return FormConmon
		}
		return FormUnknown
	}
	if len(it.Children) == 0 && it.LiveContainers == 0 {
		return FormEmptyPod
	}
	return FormUnknown
}

func checkLeaks(ctx context.Context, in Input, r *Report) {
	if in.Scan == nil {
		err := in.ScanErr
		if err == nil {
			err = errors.New("no scan")
		}
		r.notRun("leaked cgroups (scan)", err)
		return
	}
	checkOrphans(in.Scan, r)
	checkDying(in, r)
	checkUnits(ctx, in, r)
}

func checkOrphans(s *engine.Scan, r *Report) {
	if s.NoPodRoot {
		r.add(Finding{ID: IDOrphans, Severity: OK, Measured: "no pod cgroup root on this node: no pods, nothing leaked"})
		return
	}
	sum := s.Plan.Summary
	n := sum.OrphanPods + sum.OrphanContainers
	sev := OK
	if n > 0 {
		sev = Warn
	}
	if s.Plan.RuntimeError != "" {
		r.add(Finding{ID: IDOrphans, Severity: Critical, Measured: "the runtime could not be asked: " + s.Plan.RuntimeError,
			Action: "fix the CRI endpoint (runtime.endpoint); without the runtime's answer nothing can be called orphaned"})
		return
	}
	r.add(Finding{ID: IDOrphans, Severity: sev, Value: float64(n),
		Measured:  fmt.Sprintf("%d pod cgroups: %d live, %d orphaned, +%d orphan container cgroups in live pods", sum.Pods, sum.LivePods, sum.OrphanPods, sum.OrphanContainers),
		Threshold: "> 0", Source: "any orphan makes kubelet retry its Destroy every housekeeping (kubernetes#106957, okd#1310)",
		Action: "`cgroupcleand scan` shows each one and why it is kept; `cgroupcleand clean` (or the service) removes those that pass every gate",
		Refs:   []string{"https://github.com/kubernetes/kubernetes/issues/106957", "https://github.com/okd-project/okd/issues/1310"}})
	for _, it := range s.Plan.Items {
		var kids []string
		for _, c := range it.Children {
			kids = append(kids, filepath.Base(c.Path))
		}
		if it.State == decide.Orphan {
			r.add(orphanFinding(it, LeakForm(it, false, nil)))
		}
		for _, c := range it.Children {
			if c.State == decide.Orphan {
				r.add(orphanFinding(c, LeakForm(c, it.State == decide.Live, kids)))
			}
		}
	}
}

func orphanFinding(it decide.Item, formName string) Finding {
	f := forms[formName]
	plan := "clean would remove it"
	if !it.Removes() {
		plan = "kept: " + string(it.Reason)
	}
	observed := f.observed
	switch {
	case it.Processes == 1:
		observed += ", with 1 process in it"
	case it.Processes > 1:
		observed += fmt.Sprintf(", with %d processes in it", it.Processes)
	}
	cause := f.cause
	if cause == "" {
		cause = CauseUnknown
	}
	return Finding{
		ID: IDOrphan, Severity: Warn, Subject: it.Path, Value: it.Age.Seconds(), Form: formName, Cause: cause, Refs: f.refs,
		Measured: fmt.Sprintf("orphaned %s cgroup (pod %s) in %d hierarchies (%s), unchanged for %s; %s; %s",
			it.Kind, it.PodUID, len(it.Hierarchies), strings.Join(it.Hierarchies, ","), it.Age.Round(1e9), observed, plan),
		Action: f.action,
	}
}

// checkDying compares, per hierarchy, the cgroups the kernel counts with
// the directories that can be seen: the difference is dying cgroups, held
// by charges (page cache) after their rmdir.
func checkDying(in Input, r *Report) {
	data, err := os.ReadFile(filepath.Join(in.ProcRoot, "cgroups"))
	if err != nil {
		r.notRun("dying cgroups", err)
		return
	}
	subs, err := memcg.ParseProcCgroups(data)
	if err != nil {
		r.notRun("dying cgroups", err)
		return
	}
	warn, crit := float64(in.Config.Memcg.DyingWarn), float64(in.Config.Memcg.DyingAct)
	thr := fmt.Sprintf("warn >= %d, critical >= %d", in.Config.Memcg.DyingWarn, in.Config.Memcg.DyingAct)
	src := "config memcg.dying_warn / memcg.dying_act"
	for _, h := range in.Scan.Hierarchies {
		var num int64 = -1
		var dying int64
		var how string
		if h.Version == 2 {
			st, err := os.ReadFile(filepath.Join(h.Mountpoint, "cgroup.stat"))
			if err != nil {
				r.notRun("dying cgroups in "+h.Name, err)
				continue
			}
			cs, err := memcg.ParseCgroupStat(st)
			if err != nil {
				r.notRun("dying cgroups in "+h.Name, err)
				continue
			}
			dying = int64(cs.DyingDescendants)
			how = fmt.Sprintf("cgroup.stat nr_dying_descendants %d (live descendants %d)", dying, cs.Descendants)
		} else {
			num = numCgroups(subs, h)
			if num < 0 {
				continue // a named hierarchy: /proc/cgroups does not count it
			}
			var dirs int64
			var err error
			// Counted again when cgroups came or went during the walk, so
			// churn is not taken for dying cgroups.
			for try := 0; try < 3; try++ {
				if dirs, err = memcg.CountDirs(h.Mountpoint); err != nil {
					break
				}
				again := numCgroups(readSubs(in.ProcRoot), h)
				if again == num {
					break
				}
				num = again
			}
			if err != nil {
				r.notRun("dying cgroups in "+h.Name, err)
				continue
			}
			dying = max(num-dirs, 0)
			how = fmt.Sprintf("/proc/cgroups num_cgroups %d - %d directories = %d dying", num, dirs, dying)
		}
		r.add(Finding{ID: IDDying, Severity: level(float64(dying), warn, crit), Subject: h.Name, Value: float64(dying),
			Measured: how, Threshold: thr, Source: src,
			Action: "dying cgroups are freed by reclaim above them: `cgroupcleand scan` shows the memcg watchdog's view; memcg.mode = \"act\" lets the service reclaim (or drop caches) when the count stays high"})
		if h.Has("memory") && num >= 0 {
			checkMemcgIDs(num, r)
		}
	}
}

// MemcgIDMax is MEM_CGROUP_ID_MAX (mm/memcontrol.c, include/linux/memcontrol.h):
// memory cgroups, live and dying, share 65535 IDs; mkdir fails with ENOSPC
// when they run out.
const MemcgIDMax = 65535

func checkMemcgIDs(num int64, r *Report) {
	share := float64(num) / MemcgIDMax
	r.add(Finding{ID: IDMemcgIDs, Severity: level(share, 0.5, 0.9), Subject: "memory", Value: float64(num),
		Measured:  fmt.Sprintf("%d of %d memory cgroup IDs in use, live and dying (%.1f%%)", num, MemcgIDMax, 100*share),
		Threshold: "warn >= 50%, critical >= 90% of the IDs",
		Source:    "kernel MEM_CGROUP_ID_MAX = 65535: past it, creating a memory cgroup (every new pod and container) fails with ENOSPC; 50% leaves room for a burst of churn",
		Action:    "free dying memcgs (reclaim) and remove orphans before the node stops starting pods"})
}

// numCgroups is /proc/cgroups' num_cgroups of a v1 hierarchy (-1 when it
// carries no controller /proc/cgroups lists).
func numCgroups(subs []memcg.Subsys, h hierarchy.Hierarchy) int64 {
	for _, c := range h.Controllers {
		for _, s := range subs {
			if s.Name == c && s.Hierarchy > 0 {
				return s.NumCgroups
			}
		}
	}
	return -1
}

// unitPatterns are kubepods slices and container scopes.
var unitPatterns = []string{"kubepods*.slice", "crio-*.scope", "cri-containerd-*.scope"}

// checkUnits lists the transient units of pods and containers: a failed
// one, or an active one whose cgroup holds no process and no child, is a
// leftover kubelet or the runtime did not clean up.
func checkUnits(ctx context.Context, in Input, r *Report) {
	if in.Units == nil {
		if in.UnitsErr != nil {
			r.notRun("leftover transient units (systemd)", in.UnitsErr)
		}
		return
	}
	units, err := in.Units.List(ctx, unitPatterns...)
	if err != nil {
		r.notRun("leftover transient units (systemd)", err)
		return
	}
	var sdh *hierarchy.Hierarchy
	for i, h := range in.Scan.Hierarchies {
		if h.Version == 2 || h.Name == "name=systemd" {
			sdh = &in.Scan.Hierarchies[i]
			if h.Name == "name=systemd" {
				break
			}
		}
	}
	bad := 0
	for _, u := range units {
		switch {
		case u.ActiveState == "failed":
			bad++
			r.add(Finding{ID: IDUnit, Severity: Warn, Subject: u.Name, Value: 1,
				Measured: fmt.Sprintf("unit %s is failed (%s)", u.Name, u.SubState),
				Action:   "systemctl reset-failed " + u.Name + " (cgroupcleand does this after stopping an orphan's unit)"})
		case u.ActiveState == "active" && sdh != nil && !isQoSSlice(u.Name):
			info, err := in.Units.Lookup(ctx, u.Name)
			if err != nil || info.ControlGroup == "" {
				continue
			}
			if empty, err := cgroupEmpty(filepath.Join(sdh.Mountpoint, info.ControlGroup)); err == nil && empty {
				bad++
				r.add(Finding{ID: IDUnit, Severity: Warn, Subject: u.Name, Value: 1,
					Measured: fmt.Sprintf("unit %s is active but its cgroup %s holds no process and no child", u.Name, info.ControlGroup),
					Action:   "a leftover: if no pod owns it (`cgroupcleand scan`), cgroupcleand stops it, or `systemctl stop " + u.Name + "`"})
			}
		}
	}
	if bad == 0 {
		r.add(Finding{ID: IDUnit, Severity: OK, Measured: fmt.Sprintf("%d kubepods slices and container scopes, none failed or empty", len(units))})
	}
}

func isQoSSlice(name string) bool {
	switch name {
	case "kubepods.slice", "kubepods-burstable.slice", "kubepods-besteffort.slice":
		return true
	}
	return false
}

// cgroupEmpty reports whether dir has no process and no child cgroup.
func cgroupEmpty(dir string) (bool, error) {
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return false, err
	}
	if len(strings.TrimSpace(string(procs))) > 0 {
		return false, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.IsDir() {
			return false, nil
		}
	}
	return true, nil
}

func readSubs(proc string) []memcg.Subsys {
	data, err := os.ReadFile(filepath.Join(proc, "cgroups"))
	if err != nil {
		return nil
	}
	subs, _ := memcg.ParseProcCgroups(data)
	return subs
}
