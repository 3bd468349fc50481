package decide

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func id(n int) string { return fmt.Sprintf("%064x", n) }
func uid(n int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)
}

var policy = Policy{MinAge: 10 * time.Minute, MaxRemovalsPerPass: 50, MaxRemovalShare: 0.5, MassGuardMinPods: 5, ConfirmPasses: 2, RemoveContainers: true}

// pod builds an inventory pod of the given driver and QoS, aged age, with
// container dirs for the given IDs.
func pod(d names.Driver, q names.QoS, n int, age time.Duration, ctrs ...string) *inventory.Pod {
	var path string
	switch {
	case d == names.Systemd && q == names.Guaranteed:
		path = "/kubepods.slice/" + names.SystemdPodSlice(q, uid(n))
	case d == names.Systemd:
		path = "/kubepods.slice/kubepods-" + string(q) + ".slice/" + names.SystemdPodSlice(q, uid(n))
	case q == names.Guaranteed:
		path = "/kubepods/pod" + uid(n)
	default:
		path = "/kubepods/" + string(q) + "/pod" + uid(n)
	}
	p := &inventory.Pod{UID: uid(n), QoS: q, Path: path, In: []string{"memory", "name=systemd", "unified"}, Changed: now.Add(-age)}
	for _, c := range ctrs {
		base := c
		kind := names.BareID
		if d == names.Systemd {
			base, kind = "crio-"+c+".scope", names.CrioContainer
		}
		p.Containers = append(p.Containers, &inventory.Container{ID: c, Kind: kind, Path: path + "/" + base, In: p.In, Changed: now.Add(-age)})
	}
	return p
}

func sandbox(n int) live.Sandbox { return live.Sandbox{ID: id(1000 + n), PodUID: uid(n), Ready: true} }

// noProcs reports zero processes for every path in the inventory.
func noProcs(inv *inventory.Inventory) map[string]Procs {
	m := map[string]Procs{}
	for _, p := range inv.Pods {
		m[p.Path] = Procs{}
		for _, c := range p.Containers {
			m[c.Path] = Procs{}
		}
	}
	return m
}

type want struct {
	state  State
	action Action
	reason Reason
}

func TestDecidePodGates(t *testing.T) {
	old := time.Hour
	for _, d := range []names.Driver{names.Systemd, names.Cgroupfs} {
		for _, q := range []names.QoS{names.Guaranteed, names.Burstable, names.BestEffort} {
			tests := []struct {
				name   string
				pod    *inventory.Pod
				mutate func(*Input, *Policy)
				want   want
			}{
				{"live sandbox ready", pod(d, q, 1, old), nil, want{Live, Keep, LiveSandbox}},
				{"live sandbox notready", pod(d, q, 1, old), func(in *Input, _ *Policy) { in.Snapshot.Sandboxes[0].Ready = false }, want{Live, Keep, LiveSandbox}},
				{"orphan removed", pod(d, q, 2, old), nil, want{Orphan, Remove, ""}},
				{"runtime unreachable", pod(d, q, 2, old), func(in *Input, _ *Policy) { in.RuntimeErr = errors.New("dial: refused") }, want{Unknown, Keep, RuntimeUnreachable}},
				{"kubelet tracks", pod(d, q, 2, old), func(in *Input, _ *Policy) { in.KubeletPods[uid(2)] = true }, want{Orphan, Keep, KubeletTracksPod}},
				{"kubelet unreadable", pod(d, q, 2, old), func(in *Input, _ *Policy) { in.KubeletErr = errors.New("EACCES") }, want{Unknown, Keep, KubeletStateUnknown}},
				{"container still listed", pod(d, q, 2, old, id(7)), func(in *Input, _ *Policy) {
					in.Snapshot.Containers = append(in.Snapshot.Containers, live.Container{ID: id(7), SandboxID: id(1001)})
				}, want{Orphan, Keep, RuntimeListsContainer}},
				{"sandbox id dir still listed", pod(d, q, 2, old, id(1001)), nil, want{Orphan, Keep, RuntimeListsContainer}},
				// The inventory only counts the containers the runtime lists.
				{"listed container counted", func() *inventory.Pod { p := pod(d, q, 2, old, id(7)); p.LiveContainers = 1; return p }(), nil, want{Orphan, Keep, RuntimeListsContainer}},
				{"too young", pod(d, q, 2, 5*time.Minute), nil, want{Orphan, Keep, TooYoung}},
				{"min age boundary", pod(d, q, 2, 10*time.Minute), nil, want{Orphan, Remove, ""}},
				{"awaiting confirmation", pod(d, q, 2, old), func(in *Input, _ *Policy) { in.Sightings = map[string]int{} }, want{Orphan, Keep, AwaitingConfirmation}},
				{"processes unknown", pod(d, q, 2, old), func(in *Input, _ *Policy) { in.Procs = nil }, want{Orphan, Keep, ProcessCheckFailed}},
				{"process count error", pod(d, q, 2, old), func(in *Input, _ *Policy) {
					for k := range in.Procs {
						in.Procs[k] = Procs{Err: errors.New("read cgroup.procs: EIO")}
					}
				}, want{Orphan, Keep, ProcessCheckFailed}},
				{"has processes", pod(d, q, 2, old), func(in *Input, _ *Policy) {
					for k := range in.Procs {
						in.Procs[k] = Procs{Count: 2}
					}
				}, want{Orphan, Keep, HasProcesses}},
				{"kill opt-in", pod(d, q, 2, old), func(in *Input, p *Policy) {
					p.KillOrphanProcesses = true
					for k := range in.Procs {
						in.Procs[k] = Procs{Count: 2}
					}
				}, want{Orphan, KillRemove, ""}},
			}
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%s/%s/%s", d, q, tt.name), func(t *testing.T) {
					inv := &inventory.Inventory{Driver: d, Pods: []*inventory.Pod{tt.pod}}
					// Other live pods keep the mass guards quiet.
					for n := 10; n < 14; n++ {
						inv.Pods = append(inv.Pods, pod(d, q, n, old))
					}
					in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Procs: noProcs(inv), Now: now,
						Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(1), sandbox(10), sandbox(11), sandbox(12), sandbox(13)}}}
					pol := policy
					if tt.mutate != nil {
						tt.mutate(&in, &pol)
					}
					plan := Decide(in, pol)
					got := plan.Items[0]
					if got.Path != tt.pod.Path {
						t.Fatalf("item order: got %s first", got.Path)
					}
					if got.State != tt.want.state || got.Action != tt.want.action || got.Reason != tt.want.reason {
						t.Fatalf("got %s/%s/%q, want %s/%s/%q", got.State, got.Action, got.Reason, tt.want.state, tt.want.action, tt.want.reason)
					}
					if d == names.Systemd && got.Unit != tt.pod.Base() {
						t.Fatalf("systemd unit %q, want %q", got.Unit, tt.pod.Base())
					}
					if d == names.Cgroupfs && got.Unit != "" {
						t.Fatalf("cgroupfs pod has unit %q", got.Unit)
					}
					wantOther := Live
					if in.RuntimeErr != nil {
						wantOther = Unknown
					}
					for _, other := range plan.Items[1:] {
						if other.Action != Keep || other.State != wantOther {
							t.Fatalf("live pod %s got %s/%s", other.Path, other.State, other.Action)
						}
					}
				})
			}
		}
	}
}

func TestContainerOrphansInLivePod(t *testing.T) {
	for _, d := range []names.Driver{names.Systemd, names.Cgroupfs} {
		t.Run(string(d), func(t *testing.T) {
			p := pod(d, names.Burstable, 1, time.Hour, id(1001), id(5), id(6))
			inv := &inventory.Inventory{Driver: d, Pods: []*inventory.Pod{p}}
			in := Input{Inventory: inv, KubeletPods: map[string]bool{uid(1): true}, Procs: noProcs(inv), Now: now,
				Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(1)}, Containers: []live.Container{{ID: id(5), SandboxID: id(1001)}}}}
			pol := policy
			pol.MassGuardMinPods = 100
			plan := Decide(in, pol)
			it := plan.Items[0]
			if it.State != Live || it.Action != Keep {
				t.Fatalf("pod: %s/%s", it.State, it.Action)
			}
			got := map[string]string{}
			for _, c := range it.Children {
				got[c.ContainerID] = fmt.Sprintf("%s/%s/%s", c.State, c.Action, c.Reason)
			}
			wantC := map[string]string{
				id(1001): "live/keep/live-container", // the sandbox's own dir
				id(5):    "live/keep/live-container",
				id(6):    "orphan/remove/",
			}
			for k, v := range wantC {
				if got[k] != v {
					t.Errorf("container %s: got %s, want %s", k[:8], got[k], v)
				}
			}
			rm := Removals(plan)
			if len(rm) != 1 || rm[0].ContainerID != id(6) {
				t.Fatalf("removals: %+v", rm)
			}
			// The same orphan container is kept when container removal is off,
			// when young, or with processes.
			for _, c := range []struct {
				mut    func(*Input, *Policy)
				reason Reason
			}{
				{func(_ *Input, p *Policy) { p.RemoveContainers = false }, ContainerRemovalOff},
				{func(_ *Input, p *Policy) { p.MinAge = 2 * time.Hour }, TooYoung},
				{func(in *Input, _ *Policy) { in.Procs[p.Containers[2].Path] = Procs{Count: 1} }, HasProcesses},
				{func(in *Input, _ *Policy) { in.RuntimeErr = errors.New("x") }, RuntimeUnreachable},
			} {
				in2 := in
				in2.Procs = noProcs(inv)
				pol2 := pol
				c.mut(&in2, &pol2)
				plan := Decide(in2, pol2)
				if r := plan.Items[0].Children[2]; r.Action != Keep || r.Reason != c.reason {
					t.Errorf("want kept for %s, got %s/%s", c.reason, r.Action, r.Reason)
				}
			}
		})
	}
}

// TestContainerMassGuards: a runtime that lists every sandbox but few or
// none of their containers makes the container cgroups of live pods look
// orphaned. The container guards keep them, with kill_orphan_processes on
// too (they hold live processes), whatever the removal limit.
func TestContainerMassGuards(t *testing.T) {
	const pods = 4 // live pods, each with its sandbox dir and two containers
	ctr := func(n, k int) string { return id(10*n + k) }
	mk := func(listed func(n, k int) bool) (Input, Policy) {
		inv := &inventory.Inventory{Driver: names.Systemd}
		in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Now: now}
		for n := 1; n <= pods; n++ {
			inv.Pods = append(inv.Pods, pod(names.Systemd, names.Burstable, n, time.Hour, id(1000+n), ctr(n, 1), ctr(n, 2)))
			in.Snapshot.Sandboxes = append(in.Snapshot.Sandboxes, sandbox(n))
			for k := 1; k <= 2; k++ {
				if listed(n, k) {
					in.Snapshot.Containers = append(in.Snapshot.Containers, live.Container{ID: ctr(n, k), SandboxID: sandbox(n).ID})
				}
			}
		}
		// Every cgroup holds a process: were they removed, live
		// workloads would be killed.
		in.Procs = noProcs(inv)
		for k := range in.Procs {
			in.Procs[k] = Procs{Count: 1}
		}
		pol := policy
		pol.KillOrphanProcesses = true
		return in, pol
	}
	all := func(int, int) bool { return true }
	none := func(int, int) bool { return false }
	one := func(n, k int) bool { return n == 1 && k == 1 }
	half := func(n, k int) bool { return k == 1 }
	tests := []struct {
		name    string
		listed  func(n, k int) bool
		mutate  func(*Input, *Policy)
		removes int
		reason  Reason
	}{
		{"all listed: nothing to remove", all, nil, 0, ""},
		{"runtime lists no container", none, nil, 0, MassGuardContainersUnlisted},
		{"no container, share guard off", none, func(_ *Input, p *Policy) { p.MaxRemovalShare = 1 }, 0, MassGuardContainersUnlisted},
		{"no container, removal limit 1", none, func(_ *Input, p *Policy) { p.MaxRemovalsPerPass = 1 }, 0, MassGuardContainersUnlisted},
		{"one container of eight listed", one, nil, 0, MassGuardContainerShare},
		{"one listed, removal limit 1", one, func(_ *Input, p *Policy) { p.MaxRemovalsPerPass = 1 }, 0, MassGuardContainerShare},
		// 4 of 12 container cgroups unlisted: a third, under the share.
		{"half the containers listed", half, nil, 4, ""},
		{"half listed, share .3", half, func(_ *Input, p *Policy) { p.MaxRemovalShare = 0.3 }, 0, MassGuardContainerShare},
		// At the share exactly: 6 of 12 with share .5 pass, 7 do not.
		{"at the share", func(n, k int) bool { return n == 1 }, nil, 6, ""},
		{"one over the share", func(n, k int) bool { return n == 1 && k == 1 }, nil, 0, MassGuardContainerShare},
		// Below mass_guard_min_pods container cgroups the guards do not
		// apply, as for pods.
		{"small node", none, func(_ *Input, p *Policy) { p.MassGuardMinPods = 13 }, 8, ""},
		{"container removal off", none, func(_ *Input, p *Policy) { p.RemoveContainers = false }, 0, ContainerRemovalOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, pol := mk(tt.listed)
			if tt.mutate != nil {
				tt.mutate(&in, &pol)
			}
			plan := Decide(in, pol)
			if got := len(Removals(plan)); got != tt.removes {
				t.Fatalf("removals %d, want %d (kept %v)", got, tt.removes, plan.Kept)
			}
			for _, it := range plan.Items {
				if it.State != Live || it.Removes() {
					t.Fatalf("pod %s: %s/%s", it.Path, it.State, it.Action)
				}
				for _, c := range it.Children {
					if c.State == Orphan && !c.Removes() && tt.reason != "" && c.Reason != tt.reason {
						t.Errorf("%s kept for %s, want %s", c.Path, c.Reason, tt.reason)
					}
				}
			}
			if tt.reason != "" && plan.Kept[tt.reason] == 0 {
				t.Errorf("no item kept for %s: %v", tt.reason, plan.Kept)
			}
		})
	}
	// A tripped container guard holds the whole pass: the runtime's
	// answer is suspect, so an orphan pod waits too.
	in, pol := mk(none)
	orphan := pod(names.Systemd, names.Burstable, 50, time.Hour)
	in.Inventory.Pods = append(in.Inventory.Pods, orphan)
	in.Procs[orphan.Path] = Procs{}
	plan := Decide(in, pol)
	if rm := Removals(plan); len(rm) != 0 {
		t.Fatalf("removed %d with the container guard tripped", len(rm))
	}
	if it := plan.Items[len(plan.Items)-1]; it.State != Orphan || it.Reason != MassGuardContainersUnlisted {
		t.Fatalf("orphan pod: %s/%s", it.State, it.Reason)
	}
}

func TestOrphanPodTakesContainers(t *testing.T) {
	p := pod(names.Cgroupfs, names.BestEffort, 3, time.Hour, id(8))
	inv := &inventory.Inventory{Driver: names.Cgroupfs, Pods: []*inventory.Pod{p}}
	plan := Decide(Input{Inventory: inv, KubeletPods: map[string]bool{}, Procs: noProcs(inv), Now: now, Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(99)}}}, policy)
	it := plan.Items[0]
	if it.Action != Remove || it.Children[0].Action != Remove {
		t.Fatalf("pod %s, container %s", it.Action, it.Children[0].Action)
	}
	if rm := Removals(plan); len(rm) != 1 || rm[0].Kind != PodKind {
		t.Fatalf("one removal of the pod expected, got %+v", rm)
	}
}

func TestPassGates(t *testing.T) {
	mk := func(live, orphans int) Input {
		inv := &inventory.Inventory{Driver: names.Cgroupfs}
		in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Now: now}
		for n := 0; n < live+orphans; n++ {
			inv.Pods = append(inv.Pods, pod(names.Cgroupfs, names.Burstable, n, time.Hour+time.Duration(n)*time.Minute))
			if n < live {
				in.Snapshot.Sandboxes = append(in.Snapshot.Sandboxes, sandbox(n))
			}
		}
		in.Procs = noProcs(inv)
		return in
	}
	tests := []struct {
		name       string
		live, orph int
		pol        func(*Policy)
		remove     int
		reason     Reason
		keptN      int // kept for reason; -1 = all orphans not removed
	}{
		{"runtime empty, many pods", 0, 5, nil, 0, MassGuardRuntimeEmpty, -1},
		{"runtime empty, few pods", 0, 4, nil, 4, "", -1},
		{"share exceeded", 4, 5, nil, 0, MassGuardShare, -1},
		{"share at limit", 5, 5, nil, 5, "", -1},
		{"share small node", 1, 3, nil, 3, "", -1},
		{"removal limit", 20, 10, func(p *Policy) { p.MaxRemovalsPerPass = 3 }, 3, RemovalLimit, -1},
		{"limit then share", 4, 10, func(p *Policy) { p.MaxRemovalsPerPass = 7 }, 7, RemovalLimit, -1},
		{"limit 7 share .4", 4, 10, func(p *Policy) { p.MaxRemovalsPerPass = 7; p.MaxRemovalShare = 0.4 }, 0, MassGuardShare, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := policy
			if tt.pol != nil {
				tt.pol(&pol)
			}
			plan := Decide(mk(tt.live, tt.orph), pol)
			if got := len(Removals(plan)); got != tt.remove {
				t.Fatalf("removals %d, want %d (kept %v)", got, tt.remove, plan.Kept)
			}
			wantKept := tt.keptN
			if wantKept < 0 {
				wantKept = tt.orph - tt.remove
			}
			if tt.reason != "" && plan.Kept[tt.reason] != wantKept {
				t.Fatalf("kept by %s: %d, want %d (%v)", tt.reason, plan.Kept[tt.reason], wantKept, plan.Kept)
			}
			if plan.Summary.OrphanPods != tt.orph || plan.Summary.LivePods != tt.live {
				t.Fatalf("summary %+v", plan.Summary)
			}
		})
	}
}

func TestRemovalLimitKeepsNewest(t *testing.T) {
	inv := &inventory.Inventory{Driver: names.Cgroupfs}
	for n := 0; n < 4; n++ {
		inv.Pods = append(inv.Pods, pod(names.Cgroupfs, names.Burstable, n, time.Duration(n+1)*time.Hour))
	}
	pol := policy
	pol.MaxRemovalsPerPass, pol.MassGuardMinPods = 2, 100
	plan := Decide(Input{Inventory: inv, KubeletPods: map[string]bool{}, Procs: noProcs(inv), Now: now, Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(50)}}}, pol)
	var got []string
	for _, r := range Removals(plan) {
		got = append(got, r.PodUID[:8])
	}
	if strings.Join(got, ",") != "00000002,00000003" {
		t.Fatalf("removed %v, want the two oldest", got)
	}
}

func TestCandidatesThenDecide(t *testing.T) {
	inv := &inventory.Inventory{Driver: names.Cgroupfs, Pods: []*inventory.Pod{
		pod(names.Cgroupfs, names.Burstable, 1, time.Hour),
		pod(names.Cgroupfs, names.Burstable, 2, time.Hour),
		pod(names.Cgroupfs, names.Burstable, 3, time.Minute),
	}}
	in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Now: now, Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(1)}}}
	pol := policy
	pol.MassGuardMinPods = 100
	c := Candidates(Decide(in, pol))
	if len(c) != 1 || c[0] != inv.Pods[1].Path {
		t.Fatalf("candidates %v: only the old orphan needs a process count", c)
	}
	in.Procs = map[string]Procs{c[0]: {}}
	if rm := Removals(Decide(in, pol)); len(rm) != 1 || rm[0].Path != c[0] {
		t.Fatalf("removals %+v", rm)
	}
}

func TestSightingsConfirm(t *testing.T) {
	inv := &inventory.Inventory{Driver: names.Cgroupfs, Pods: []*inventory.Pod{pod(names.Cgroupfs, names.Burstable, 1, time.Hour), pod(names.Cgroupfs, names.Burstable, 2, time.Hour)}}
	in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Procs: noProcs(inv), Now: now, Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(1)}}, Sightings: map[string]int{}}
	pol := policy
	pol.MassGuardMinPods, pol.ConfirmPasses = 100, 3
	for pass := 1; pass <= 3; pass++ {
		plan := Decide(in, pol)
		removes := len(Removals(plan)) == 1
		if removes != (pass == 3) {
			t.Fatalf("pass %d: removes=%v (kept %v)", pass, removes, plan.Kept)
		}
		in.Sightings = NextSightings(plan, in.Sightings)
		if in.Sightings[inv.Pods[1].Path] != pass || in.Sightings[inv.Pods[0].Path] != 0 {
			t.Fatalf("pass %d: sightings %v", pass, in.Sightings)
		}
		// The keys are copies: they keep no path of the pass alive.
		for k := range in.Sightings {
			if unsafe.StringData(k) == unsafe.StringData(inv.Pods[1].Path) {
				t.Fatalf("pass %d: sightings keyed by the inventory's own path string", pass)
			}
		}
	}
	// While kubelet still tracks the pod, the count starts again.
	in.KubeletPods = map[string]bool{uid(2): true}
	if next := NextSightings(Decide(in, pol), in.Sightings); next[inv.Pods[1].Path] != 0 {
		t.Fatalf("a pod kubelet tracks must not count as sighted: %v", next)
	}
	in.KubeletPods = map[string]bool{}
	in.RuntimeErr = errors.New("down")
	if next := NextSightings(Decide(in, pol), in.Sightings); len(next) != 0 {
		t.Fatalf("an unreachable runtime must reset the count, got %v", next)
	}
}

// TestRuntimeUnreachableStateUnknown: with the runtime unreachable no pod
// is live or orphaned as far as anyone can tell: every pod and container,
// the live ones and the one kubelet tracks included, is of unknown state,
// kept, and counted as such (never LIVE=0 with every pod an orphan).
func TestRuntimeUnreachableStateUnknown(t *testing.T) {
	inv := &inventory.Inventory{Driver: names.Systemd, Pods: []*inventory.Pod{
		pod(names.Systemd, names.Burstable, 1, time.Hour, id(1001), id(5)), // live, with a container
		pod(names.Systemd, names.Guaranteed, 2, time.Hour),                 // kubelet tracks it
		pod(names.Systemd, names.BestEffort, 3, time.Hour, id(6)),          // an orphan, as it happens
	}}
	in := Input{Inventory: inv, KubeletPods: map[string]bool{uid(2): true}, Procs: noProcs(inv), Now: now,
		RuntimeErr: errors.New("dial unix /run/crio/crio.sock: connection refused"), Sightings: map[string]int{inv.Pods[2].Path: 5}}
	pol := policy
	pol.KillOrphanProcesses = true
	plan := Decide(in, pol)
	for _, it := range plan.Items {
		for _, x := range append([]Item{it}, it.Children...) {
			if x.State != Unknown || x.Action != Keep || x.Reason != RuntimeUnreachable {
				t.Errorf("%s %s: %s/%s/%s, want unknown/keep/runtime-unreachable", x.Kind, x.Path, x.State, x.Action, x.Reason)
			}
		}
	}
	want := Summary{Pods: 3, UnknownPods: 3}
	if plan.Summary != want {
		t.Errorf("summary %+v, want %+v", plan.Summary, want)
	}
	if len(plan.Kept) != 0 || len(Removals(plan)) != 0 || len(Candidates(plan)) != 0 {
		t.Errorf("kept %v, removals %d, candidates %d", plan.Kept, len(Removals(plan)), len(Candidates(plan)))
	}
	if next := NextSightings(plan, in.Sightings); len(next) != 0 {
		t.Errorf("sightings after an unknown pass: %v", next)
	}
	if b, _ := json.Marshal(plan.Items[0]); !strings.Contains(string(b), `"state":"unknown"`) {
		t.Errorf("JSON: %s", b)
	}
	var st State
	if err := st.UnmarshalText([]byte("unknown")); err != nil || st != Unknown {
		t.Errorf("state name does not read back: %v %v", st, err)
	}
}

func TestNilInventory(t *testing.T) {
	plan := Decide(Input{Now: now}, policy)
	if len(plan.Items) != 0 || len(Removals(plan)) != 0 {
		t.Fatal("empty plan expected")
	}
}

// benchInput is the decision's input at n pods as engine.Scan makes it:
// half the pods have a listed sandbox, one listed container and one
// orphaned container cgroup, the other half are orphans with two
// container cgroups; the index built once per pass; processes counted for
// the candidates of a first decision (Input.Counted); no removal limit. recorded: the
// inventory was read with the runtime's answer (Inventory.Listed), so it
// counted the listed containers instead of keeping them, as the scan's
// does; else every container is kept and the decision asks the index.
func benchInput(n int, recorded bool) (Input, Policy) {
	inv := &inventory.Inventory{Driver: names.Systemd}
	in := Input{Inventory: inv, KubeletPods: map[string]bool{}, Now: now}
	for i := 0; i < n; i++ {
		if i%2 != 0 {
			inv.Pods = append(inv.Pods, pod(names.Systemd, names.Burstable, i, time.Hour, id(3*i), id(3*i+1)))
			continue
		}
		in.Snapshot.Sandboxes = append(in.Snapshot.Sandboxes, sandbox(i))
		in.Snapshot.Containers = append(in.Snapshot.Containers, live.Container{ID: id(3 * i), SandboxID: sandbox(i).ID})
		if !recorded {
			inv.Pods = append(inv.Pods, pod(names.Systemd, names.Burstable, i, time.Hour, id(3*i), id(3*i+1)))
			continue
		}
		p := pod(names.Systemd, names.Burstable, i, time.Hour, id(3*i+1))
		p.Listed, p.LiveContainers = true, 1
		inv.Pods = append(inv.Pods, p)
	}
	in.Index = live.NewIndex(in.Snapshot)
	if recorded {
		inv.Listed = in.Index
	}
	pol := policy
	pol.MaxRemovalsPerPass = 1 << 30
	for _, path := range Candidates(Decide(in, pol)) {
		in.Counted = append(in.Counted, Counted{Path: path})
	}
	return in, pol
}

func bench100k() (Input, Policy) { return benchInput(100000, true) }

func BenchmarkDecide100k(b *testing.B) {
	in, pol := bench100k()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		plan := Decide(in, pol)
		if plan.Summary.Pods != 100000 {
			b.Fatal("bad plan")
		}
	}
}

// reportCPU adds the process's CPU time per op (user and system, the
// GC's included) to the benchmark's figures: on a shared machine its
// wall time per op also counts the time other jobs held the CPU.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-start)/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// A cgroup whose time was not read is never old enough to remove.
func TestUnknownAgeIsYoung(t *testing.T) {
	p := pod(names.Cgroupfs, names.Burstable, 1, time.Hour)
	p.Changed = time.Time{}
	inv := &inventory.Inventory{Driver: names.Cgroupfs, Pods: []*inventory.Pod{p}}
	plan := Decide(Input{Inventory: inv, KubeletPods: map[string]bool{}, Procs: noProcs(inv), Now: now, Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{sandbox(9)}}}, policy)
	if it := plan.Items[0]; it.Removes() || it.Reason != TooYoung {
		t.Fatalf("got %s/%s", it.Action, it.Reason)
	}
}
