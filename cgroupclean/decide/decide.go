// Package decide is the pure decision step: from the inventory of pod
// cgroups, what the runtime and kubelet say is alive, the policy and the
// clock, it makes a plan that says for every pod and container cgroup
// whether it is live, orphaned, and what to do, with a named reason for
// every orphan that is kept. It touches no file and no socket, so every
// safety rule is tested as a table.
package decide

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

// State is what the sources of truth say about a cgroup.
type State uint8

// States.
const (
	Live State = iota + 1
	Orphan
	// Unknown: a source of truth could not be asked (the runtime, or
	// kubelet for a pod the runtime does not list), so the cgroup may
	// well be live. It is kept, and never called an orphan.
	Unknown
)

// Action is what the plan does with a cgroup.
type Action uint8

// Actions.
const (
	Keep Action = iota + 1
	// Remove removes the cgroup in every hierarchy (after stopping its
	// systemd unit when it has one).
	Remove
	// KillRemove first kills the processes inside (opt-in).
	KillRemove
)

// Kind is what an item is.
type Kind uint8

// Kinds.
const (
	PodKind Kind = iota + 1
	ContainerKind
)

// State, Action and Kind are bytes, not strings (a plan holds three items
// per pod), and read and write as their names.
var (
	stateNames  = []string{"", "live", "orphan", "unknown"}
	actionNames = []string{"", "keep", "remove", "kill-and-remove"}
	kindNames   = []string{"", "pod", "container"}
)

func (s State) String() string  { return enumName(stateNames, int(s)) }
func (a Action) String() string { return enumName(actionNames, int(a)) }
func (k Kind) String() string   { return enumName(kindNames, int(k)) }

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalText writes the action's name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error { return enumParse(stateNames, "state", b, (*uint8)(s)) }

// UnmarshalText reads an action's name.
func (a *Action) UnmarshalText(b []byte) error {
	return enumParse(actionNames, "action", b, (*uint8)(a))
}

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error { return enumParse(kindNames, "kind", b, (*uint8)(k)) }

func enumName(names []string, i int) string {
	if i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("unknown(%d)", i)
}

func enumParse(names []string, what string, b []byte, v *uint8) error {
	for i, n := range names {
		if n == string(b) {
			*v = uint8(i)
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q", what, b)
}

// Policy is the configured safety gates.
type Policy struct {
	MinAge              time.Duration
	MaxRemovalsPerPass  int
	MaxRemovalShare     float64
	MassGuardMinPods    int
	KillOrphanProcesses bool
	ConfirmPasses       int
	RemoveContainers    bool
}

// Procs is the result of counting the processes inside a cgroup's subtree
// in every hierarchy.
type Procs struct {
	Count int
	Err   error
}

// Counted is the process count of one candidate (Input.Counted).
type Counted struct {
	Path string
	Procs
}

// Input is everything the decision looks at.
type Input struct {
	Inventory *inventory.Inventory
	Snapshot  live.Snapshot
	// Index is Snapshot indexed; nil: built from Snapshot.
	Index       *live.Index
	RuntimeErr  error
	KubeletPods map[string]bool
	KubeletErr  error
	// Procs holds process counts by cgroup path. A candidate without an
	// entry is kept (ProcessCheckFailed): see Candidates.
	Procs map[string]Procs
	// Counted holds process counts in the order of Candidates of the
	// decision made without them, as engine.Scan counts them: the decision
	// meets its candidates in that order and takes each entry in turn, with
	// no lookup. An entry counts only for its own path; a candidate that
	// is not the next entry is looked up in Procs.
	Counted []Counted
	// Sightings counts, by path, the consecutive earlier passes that saw
	// the cgroup orphaned (see NextSightings). Nil means every orphan is
	// confirmed (one-shot clean).
	Sightings map[string]int
	Now       time.Time
}

// Item is the verdict on one pod or container cgroup.
type Item struct {
	Kind        Kind          `json:"kind"`
	State       State         `json:"state"`
	Action      Action        `json:"action"`
	PodUID      string        `json:"pod_uid"`
	ContainerID string        `json:"container_id,omitempty"`
	QoS         names.QoS     `json:"qos,omitempty"`
	Path        string        `json:"path"`
	Hierarchies []string      `json:"hierarchies"`
	Age         time.Duration `json:"age_ns,omitempty"` // 0: not measured (see age)
	Reason      Reason        `json:"reason,omitempty"`
	Processes   int           `json:"processes,omitempty"`
	// Unit is the unit name the directory's name would have (.slice,
	// .scope), for apply to ask systemd about. Not in the JSON: no one has
	// asked systemd yet, and mkdir'd directories have no unit (the unit
	// systemd confirmed is engine.Result.Unit).
	Unit string `json:"-"`
	// LiveContainers counts the pod's container cgroups the runtime lists
	// that the inventory only counted (see inventory.Pod.LiveContainers).
	LiveContainers int `json:"live_containers,omitempty"`
	// Children are the container cgroups inside a pod cgroup.
	Children []Item `json:"containers,omitempty"`
}

// Removes reports whether the plan removes the item.
func (it Item) Removes() bool { return it.Action == Remove || it.Action == KillRemove }

// Plan is the outcome of one decision.
type Plan struct {
	Items        []Item         `json:"items"`
	RuntimeError string         `json:"runtime_error,omitempty"`
	Summary      Summary        `json:"summary"`
	Policy       Policy         `json:"-"`
	Now          time.Time      `json:"time"`
	Sandboxes    int            `json:"sandboxes"`
	Kept         map[Reason]int `json:"kept_by_reason"`

	// kids is the block every pod's Children is part of (see Redecide).
	kids []Item
}

// Summary counts the plan.
type Summary struct {
	Pods             int `json:"pods"`
	LivePods         int `json:"live_pods"`
	OrphanPods       int `json:"orphan_pods"`
	UnknownPods      int `json:"unknown_pods"`
	OrphanContainers int `json:"orphan_containers"`
	Remove           int `json:"remove"`
	Keep             int `json:"keep_orphans"`
}

// Decide makes the plan. It is deterministic for a given input.
func Decide(in Input, pol Policy) Plan {
	return decideInto(nil, nil, in, pol)
}

// Redecide is Decide writing into the memory of prev, a plan that is no
// longer used (its items are overwritten): the scan decides twice, before
// and after counting processes, and at 10,000 pods each plan is 5 MiB.
func Redecide(prev Plan, in Input, pol Policy) Plan {
	return decideInto(prev.Items, prev.kids, in, pol)
}

func decideInto(items, kidsBuf []Item, in Input, pol Policy) Plan {
	plan := Plan{Items: []Item{}, Policy: pol, Now: in.Now, Sandboxes: len(in.Snapshot.Sandboxes), Kept: map[Reason]int{}}
	if in.RuntimeErr != nil {
		plan.RuntimeError = in.RuntimeErr.Error()
	}
	idx := in.Index
	if idx == nil {
		idx = live.NewIndex(in.Snapshot)
	}
	var lc liveContainers
	if in.Inventory != nil {
		plan.Items = reuse(items, len(in.Inventory.Pods))
		// One block holds every pod's container items (one allocation
		// per plan, not one per pod).
		n := 0
		for _, p := range in.Inventory.Pods {
			n += len(p.Containers)
		}
		kids := reuse(kidsBuf, n)
		counted := 0 // the next entry of in.Counted
		for _, p := range in.Inventory.Pods {
			var it Item
			it, kids = decidePod(&in, pol, p, idx, kids, &counted)
			if it.State == Live {
				lc.add(&it)
			}
			plan.Items = append(plan.Items, it)
		}
		plan.kids = kids
	}
	plan.passGates(in, pol, lc)
	plan.count()
	return plan
}

// reuse is buf emptied when it holds n items, else a new slice. Its old
// items are cleared: the plan appends whole items, but a stale one must
// not keep its strings alive.
func reuse(buf []Item, n int) []Item {
	if cap(buf) < n {
		return make([]Item, 0, n)
	}
	clear(buf[:cap(buf)])
	return buf[:0]
}

// decidePod decides pod p and its containers. The container items are
// appended to kids (a block shared by the whole plan) and the pod's
// Children is its own part of that block, capped so that an append to
// one pod's Children never writes into the next pod's.
func decidePod(in *Input, pol Policy, p *inventory.Pod, idx *live.Index, kids []Item, counted *int) (Item, []Item) {
	it := Item{Kind: PodKind, PodUID: p.UID, QoS: p.QoS, Path: p.Path, Hierarchies: p.In, Age: age(in.Now, p.Changed), Action: Keep, LiveContainers: p.LiveContainers}
	if in.Inventory.Driver == names.Systemd {
		if base := baseName(p.Path); names.IsSystemdUnit(base) {
			it.Unit = base
		}
	}
	// The inventory read with this very answer recorded it: no lookup.
	recorded := in.Inventory.Listed != nil && in.Inventory.Listed == idx
	podLive := p.Listed
	if !recorded {
		podLive = idx.PodListed(p.UID)
	}
	first := len(kids)
	anyListed := p.LiveContainers > 0
	for _, c := range p.Containers {
		kids = append(kids, Item{Kind: ContainerKind, PodUID: p.UID, ContainerID: c.ID, QoS: p.QoS, Path: c.Path, Hierarchies: c.In, Age: age(in.Now, c.Changed), Action: Keep})
		ci := &kids[len(kids)-1]
		if in.Inventory.Driver == names.Systemd {
			if base := baseName(c.Path); names.IsSystemdUnit(base) {
				ci.Unit = base
			}
		}
		if !recorded && idx.IDListed(c.ID) {
			ci.State, ci.Reason = Live, LiveContainer
			anyListed = true
		} else {
			ci.State = Orphan
			if podLive {
				ci.Action, ci.Reason, ci.Processes = gate(in, pol, c.Path, ci.Age, containerGate(pol), counted)
			}
		}
	}
	if len(kids) > first {
		it.Children = kids[first:len(kids):len(kids)]
	}
	switch {
	case in.RuntimeErr != nil:
		// Nothing is known about any pod: not live, not orphaned.
		return unknownPod(it, RuntimeUnreachable), kids
	case podLive:
		it.State, it.Reason = Live, LiveSandbox
		return it, kids
	case in.KubeletErr != nil:
		return unknownPod(it, KubeletStateUnknown), kids
	case in.KubeletPods[p.UID]:
		it.State, it.Reason = Orphan, KubeletTracksPod
	case anyListed:
		it.State, it.Reason = Orphan, RuntimeListsContainer
	default:
		it.State = Orphan
		it.Action, it.Reason, it.Processes = gate(in, pol, p.Path, it.Age, "", counted)
	}
	// Containers of an orphan pod share its fate: they go with it.
	for i := range it.Children {
		if it.Children[i].State == Orphan {
			it.Children[i].Action, it.Children[i].Reason = it.Action, it.Reason
		}
	}
	return it, kids
}

// baseName is filepath.Base without its byte-by-byte scan on the common
// case (a path not ending in "/"), which the plan meets once per item.
func baseName(path string) string {
	if path == "" || path[len(path)-1] == '/' {
		return filepath.Base(path)
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}

// unknownPod keeps a pod and its containers as of unknown state.
func unknownPod(it Item, why Reason) Item {
	it.State, it.Action, it.Reason = Unknown, Keep, why
	for i := range it.Children {
		c := &it.Children[i]
		c.State, c.Action, c.Reason, c.Processes = Unknown, Keep, why, 0
	}
	return it
}

// age is how long ago a cgroup last changed. An unknown time (zero: not
// read) counts as "just now", so the min_age gate keeps it.
func age(now, changed time.Time) time.Duration {
	if changed.IsZero() {
		return 0
	}
	return now.Sub(changed)
}

func containerGate(pol Policy) Reason {
	if !pol.RemoveContainers {
		return ContainerRemovalOff
	}
	return ""
}

// gate runs the per-cgroup gates for an orphan, in order. counted is the
// next entry of in.Counted.
func gate(in *Input, pol Policy, path string, age time.Duration, pre Reason, counted *int) (Action, Reason, int) {
	if pre != "" {
		return Keep, pre, 0
	}
	if age < pol.MinAge {
		return Keep, TooYoung, 0
	}
	if in.Sightings != nil && in.Sightings[path]+1 < pol.ConfirmPasses {
		return Keep, AwaitingConfirmation, 0
	}
	var pr Procs
	ok := false
	if i := *counted; i < len(in.Counted) && in.Counted[i].Path == path {
		pr, ok = in.Counted[i].Procs, true
		*counted = i + 1
	} else {
		pr, ok = in.Procs[path]
	}
	switch {
	case !ok || pr.Err != nil:
		return Keep, ProcessCheckFailed, 0
	case pr.Count > 0 && !pol.KillOrphanProcesses:
		return Keep, HasProcesses, pr.Count
	case pr.Count > 0:
		return KillRemove, "", pr.Count
	}
	return Remove, "", 0
}

// liveContainers counts the container cgroups inside live pods: the base
// of the container mass guards.
type liveContainers struct {
	total   int // every container cgroup in a live pod, listed or not
	orphans int // those the runtime does not list
}

func (lc *liveContainers) add(pod *Item) {
	lc.total += pod.LiveContainers + len(pod.Children)
	for i := range pod.Children {
		if pod.Children[i].State == Orphan {
			lc.orphans++
		}
	}
}

// passGates applies the rules that look at the whole pass.
//
// The container guards look at the runtime's answer, not at what the
// per-cgroup gates let through: a runtime that lists every sandbox but few
// or none of their containers (restarting, truncated, buggy) makes every
// container cgroup of every live pod look orphaned, and with
// kill_orphan_processes those are live workloads. So they measure the
// orphans before the removal limit, which would otherwise let
// max_removals_per_pass of them through in every pass.
func (plan *Plan) passGates(in Input, pol Policy, lc liveContainers) {
	refuseAll := func(r Reason) {
		plan.each(func(it *Item) {
			if it.Removes() {
				it.Action, it.Reason = Keep, r
			}
		})
	}
	if in.RuntimeErr != nil {
		return // every item is of unknown state and kept
	}
	pods := len(plan.Items)
	if len(in.Snapshot.Sandboxes) == 0 && pods >= pol.MassGuardMinPods && pods > 0 {
		refuseAll(MassGuardRuntimeEmpty)
		return
	}
	if lc.orphans > 0 && lc.total >= pol.MassGuardMinPods && plan.removesContainers() {
		switch {
		case len(in.Snapshot.Containers) == 0:
			refuseAll(MassGuardContainersUnlisted)
			return
		case float64(lc.orphans) > pol.MaxRemovalShare*float64(lc.total):
			refuseAll(MassGuardContainerShare)
			return
		}
	}
	// Oldest first, so a limit keeps the newest for the next pass. Under
	// the limit nothing is refused: no list, no sort.
	nRemovals := 0
	plan.each(func(it *Item) {
		if it.Removes() {
			nRemovals++
		}
	})
	if nRemovals > pol.MaxRemovalsPerPass {
		removals := make([]*Item, 0, nRemovals)
		plan.each(func(it *Item) {
			if it.Removes() {
				removals = append(removals, it)
			}
		})
		slices.SortStableFunc(removals, func(a, b *Item) int { return cmp.Compare(b.Age, a.Age) })
		for i, it := range removals {
			if i >= pol.MaxRemovalsPerPass {
				it.Action, it.Reason = Keep, RemovalLimit
			}
		}
	}
	podRemovals := 0
	for _, it := range plan.Items {
		if it.Removes() {
			podRemovals++
		}
	}
	if pods >= pol.MassGuardMinPods && podRemovals > 0 && float64(podRemovals) > pol.MaxRemovalShare*float64(pods) {
		refuseAll(MassGuardShare)
	}
}

// removesContainers reports whether the plan removes a container cgroup
// of a live pod on its own.
func (plan *Plan) removesContainers() bool {
	for i := range plan.Items {
		if p := &plan.Items[i]; p.State == Live {
			for j := range p.Children {
				if p.Children[j].Removes() {
					return true
				}
			}
		}
	}
	return false
}

// each visits every pod item and every container item that is decided on
// its own (orphan containers of live pods).
func (plan *Plan) each(f func(*Item)) {
	for i := range plan.Items {
		p := &plan.Items[i]
		f(p)
		if p.State == Live {
			for j := range p.Children {
				f(&p.Children[j])
			}
		} else {
			// Children follow the pod.
			for j := range p.Children {
				if p.Children[j].State == Orphan {
					p.Children[j].Action, p.Children[j].Reason = p.Action, p.Reason
				}
			}
		}
	}
}

func (plan *Plan) count() {
	s := Summary{Pods: len(plan.Items)}
	plan.each(func(it *Item) {
		switch {
		case it.Kind == PodKind && it.State == Live:
			s.LivePods++
		case it.Kind == PodKind && it.State == Unknown:
			s.UnknownPods++
		case it.Kind == PodKind:
			s.OrphanPods++
		case it.State == Orphan:
			s.OrphanContainers++
		}
		if it.State != Orphan {
			return
		}
		if it.Removes() {
			s.Remove++
		} else {
			s.Keep++
			plan.Kept[it.Reason]++
		}
	})
	plan.Summary = s
}

// Candidates returns the paths that passed every gate up to the process
// check: the only cgroups whose processes need counting. Call Decide with
// Procs nil first, count those, then Decide again.
func Candidates(plan Plan) []string {
	var out []string
	plan.each(func(it *Item) {
		if it.Reason == ProcessCheckFailed {
			out = append(out, it.Path)
		}
	})
	return out
}

// Removals returns the items the plan removes: pods first (with their
// containers inside), then orphan containers of live pods.
func Removals(plan Plan) []Item {
	var out []Item
	plan.each(func(it *Item) {
		if it.Removes() {
			out = append(out, *it)
		}
	})
	return out
}

// NextSightings is the Sightings input of the next pass: every cgroup this
// plan saw orphaned counts one more pass, unless kubelet or the runtime
// still claimed it. A pass whose runtime could not be
// asked saw nothing reliable, so it starts the count again.
//
// Its keys are copies, packed in one block: keyed by the plan's paths it
// would keep this pass's whole inventory of paths alive through the next
// pass, two passes of paths at once in the daemon.
func NextSightings(plan Plan, prev map[string]int) map[string]int {
	next := map[string]int{}
	if plan.RuntimeError != "" {
		return next
	}
	sighted := func(it *Item) bool {
		switch {
		case it.State != Orphan:
		case it.Reason == KubeletTracksPod, it.Reason == KubeletStateUnknown, it.Reason == RuntimeListsContainer:
			// Something still claims the pod: once it lets go, the
			// orphan is confirmed afresh.
		default:
			return true
		}
		return false
	}
	size, n := 0, 0
	plan.each(func(it *Item) {
		if sighted(it) {
			size, n = size+len(it.Path), n+1
		}
	})
	if n == 0 {
		return next
	}
	next = make(map[string]int, n)
	keys := make([]byte, 0, size)
	plan.each(func(it *Item) {
		if sighted(it) && it.Path == "" {
			next[""] = prev[""] + 1
		} else if sighted(it) {
			start := len(keys)
			keys = append(keys, it.Path...)
			// keys never grows past size: its bytes never move or change.
			next[unsafe.String(&keys[start], len(it.Path))] = prev[it.Path] + 1
		}
	})
	return next
}
