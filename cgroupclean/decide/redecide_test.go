package decide

import (
	"reflect"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

// Redecide into the memory of the first plan gives the plan Decide gives,
// whatever the first plan held (the scan decides without, then with,
// process counts), and the first plan's items are not left behind in it.
func TestRedecideIsDecide(t *testing.T) {
	inv := &inventory.Inventory{Driver: names.Systemd}
	in := Input{Inventory: inv, KubeletPods: map[string]bool{uid(3): true}, Now: now}
	for n := range 12 {
		var ctrs []string
		for c := range n % 3 {
			ctrs = append(ctrs, id(10*n+c))
		}
		inv.Pods = append(inv.Pods, pod(names.Systemd, names.Burstable, n, time.Hour, ctrs...))
		if n%4 == 0 {
			in.Snapshot.Sandboxes = append(in.Snapshot.Sandboxes, sandbox(n))
			if len(ctrs) > 0 {
				in.Snapshot.Containers = append(in.Snapshot.Containers, live.Container{ID: ctrs[0], SandboxID: sandbox(n).ID})
			}
		}
	}
	pol := policy
	pol.MaxRemovalsPerPass = 3
	first := Decide(in, pol)
	if len(Candidates(first)) == 0 {
		t.Fatal("the fixture must have candidates")
	}
	in.Procs = noProcs(inv)
	in.Procs[inv.Pods[1].Path] = Procs{Count: 2}
	want := Decide(in, pol)
	got := Redecide(first, in, pol)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Redecide differs from Decide:\n got %+v\nwant %+v", got.Items, want.Items)
	}
	if &got.Items[0] != &first.Items[0] {
		t.Error("Redecide did not reuse the first plan's items")
	}
	// Fewer pods than the buffer holds: no item of the old plan remains.
	in.Inventory = &inventory.Inventory{Driver: names.Systemd, Pods: inv.Pods[:2]}
	small := Redecide(want, in, pol)
	if !reflect.DeepEqual(small, Decide(in, pol)) || len(small.Items) != 2 {
		t.Fatalf("Redecide into a larger plan: %+v", small.Items)
	}
	if rest := want.Items[:cap(want.Items)][2:]; !reflect.DeepEqual(rest, make([]Item, len(rest))) {
		t.Error("items of the old plan are left in its memory")
	}
}

// BenchmarkRedecide100k is the decision as the scan makes it the second
// time: the inventory recorded the runtime's answer and the first plan's
// memory is reused. BenchmarkDecide100k makes the plan anew;
// BenchmarkRedecide100kAsked is the baseline of the same run, where the
// decision asks the index about every pod and container.
func BenchmarkRedecide100k(b *testing.B) { benchRedecide(b, true) }

func BenchmarkRedecide100kAsked(b *testing.B) { benchRedecide(b, false) }

func benchRedecide(b *testing.B, recorded bool) {
	in, pol := benchInput(100000, recorded)
	plan := Decide(in, pol)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		plan = Redecide(plan, in, pol)
		if plan.Summary.Pods != 100000 {
			b.Fatal("bad plan")
		}
	}
}

// The runtime's answers the inventory recorded decide as asking the index
// does: the same verdict on every pod and on every container cgroup it
// kept, the same counts, the same guards.
func TestRecordedAnswersDecideAsTheIndex(t *testing.T) {
	for _, pol := range []Policy{policy, {MinAge: 0, MaxRemovalsPerPass: 1 << 30, MaxRemovalShare: 1, MassGuardMinPods: 1 << 30, ConfirmPasses: 1, RemoveContainers: true}} {
		rec, _ := benchInput(200, true)
		asked, _ := benchInput(200, false)
		got, want := Decide(rec, pol), Decide(asked, pol)
		if got.Summary != want.Summary || !reflect.DeepEqual(got.Kept, want.Kept) {
			t.Fatalf("recorded: %+v %v\nasked: %+v %v", got.Summary, got.Kept, want.Summary, want.Kept)
		}
		if got.Summary.Remove == 0 || got.Summary.LivePods != 100 {
			t.Fatalf("the fixture must have live pods and removals: %+v", got.Summary)
		}
		for i := range got.Items {
			g, w := got.Items[i], want.Items[i]
			if g.Path != w.Path || g.State != w.State || g.Action != w.Action || g.Reason != w.Reason {
				t.Fatalf("pod %s: recorded %s/%s/%s, asked %s/%s/%s", g.Path, g.State, g.Action, g.Reason, w.State, w.Action, w.Reason)
			}
			// The asked plan also holds the listed container, which the
			// recorded inventory only counted.
			for _, gc := range g.Children {
				var wc *Item
				for j := range w.Children {
					if w.Children[j].Path == gc.Path {
						wc = &w.Children[j]
					}
				}
				if wc == nil || gc.State != wc.State || gc.Action != wc.Action || gc.Reason != wc.Reason {
					t.Fatalf("container %s: recorded %+v, asked %+v", gc.Path, gc, wc)
				}
			}
		}
	}
}

// Answers recorded from another index than the decision's (another
// pass's, or a stale one) are not taken: the decision asks its own index,
// so a pod the recording calls listed but the index does not is not kept
// live by it, and one the recording missed is live.
func TestAnswersOfAnotherIndexAreAsked(t *testing.T) {
	in, pol := benchInput(20, true)
	other := live.NewIndex(live.Snapshot{})
	in.Inventory.Listed = other
	// Turn every recording upside down: the index must decide alone.
	for _, p := range in.Inventory.Pods {
		p.Listed = !p.Listed
	}
	plan := Decide(in, pol)
	for _, it := range plan.Items {
		if want := in.Index.PodListed(it.PodUID); (it.State == Live) != want {
			t.Fatalf("pod %s: state %s, the decision's index lists it: %v", it.Path, it.State, want)
		}
	}
	if plan.Summary.LivePods != 10 {
		t.Fatalf("live pods %d, want 10", plan.Summary.LivePods)
	}
	// Without an index of its own the decision builds one from the
	// snapshot: a recording is never enough.
	in.Index, in.Inventory.Listed = nil, nil
	for _, p := range in.Inventory.Pods {
		p.Listed = true
	}
	if plan := Decide(in, pol); plan.Summary.LivePods != 10 {
		t.Fatalf("without an index: live pods %d, want 10", plan.Summary.LivePods)
	}
}

// Counts are taken in the candidates' order, each for its own path only:
// an entry out of place or of another path counts for nothing, and the
// candidate is looked up in Procs, else kept (ProcessCheckFailed).
func TestCountedOnlyForItsOwnPath(t *testing.T) {
	in, pol := benchInput(8, true)
	first := Decide(Input{Inventory: in.Inventory, Snapshot: in.Snapshot, Index: in.Index, KubeletPods: in.KubeletPods, Now: in.Now}, pol)
	cands := Candidates(first)
	if len(cands) < 4 {
		t.Fatalf("the fixture must have candidates: %v", cands)
	}
	count := func(plan Plan, path string) (Action, Reason, int) {
		var found *Item
		plan.each(func(it *Item) {
			if it.Path == path {
				found = it
			}
		})
		if found == nil {
			t.Fatalf("%s not in the plan", path)
		}
		return found.Action, found.Reason, found.Processes
	}
	// In order: every count is taken, a busy one keeps its cgroup.
	in.Counted = nil
	for i, p := range cands {
		in.Counted = append(in.Counted, Counted{Path: p, Procs: Procs{Count: i % 2}})
	}
	plan := Decide(in, pol)
	for i, p := range cands {
		a, r, n := count(plan, p)
		if (i%2 == 1) != (r == HasProcesses && a == Keep && n == 1) || (i%2 == 0 && a != Remove) {
			t.Fatalf("%s: %s/%s/%d with %d processes counted", p, a, r, n, i%2)
		}
	}
	// Swapped: the first candidate's place holds the second's count,
	// which is not its count: it is kept; the second still finds its own.
	in.Counted[0], in.Counted[1] = in.Counted[1], in.Counted[0]
	plan = Decide(in, pol)
	if a, r, _ := count(plan, cands[0]); a != Keep || r != ProcessCheckFailed {
		t.Fatalf("%s with a count out of place: %s/%s", cands[0], a, r)
	}
	if a, r, n := count(plan, cands[1]); a != Keep || r != HasProcesses || n != 1 {
		t.Fatalf("%s with its own count: %s/%s/%d", cands[1], a, r, n)
	}
	// Without counts in order, Procs answers by path.
	in.Counted, in.Procs = nil, map[string]Procs{cands[1]: {Count: 3}}
	plan = Decide(in, pol)
	if a, r, _ := count(plan, cands[0]); a != Keep || r != ProcessCheckFailed {
		t.Fatalf("%s counted nowhere: %s/%s", cands[0], a, r)
	}
	if a, r, n := count(plan, cands[1]); a != Keep || r != HasProcesses || n != 3 {
		t.Fatalf("%s counted in Procs: %s/%s/%d", cands[1], a, r, n)
	}
	// A count of another path in a candidate's place is not its count.
	in.Procs = nil
	for i, p := range cands {
		in.Counted = append(in.Counted, Counted{Path: p, Procs: Procs{Count: i % 2}})
	}
	in.Counted[2].Path = cands[2] + "x"
	plan = Decide(in, pol)
	if a, r, _ := count(plan, cands[2]); a != Keep || r != ProcessCheckFailed {
		t.Fatalf("%s with another path's count: %s/%s", cands[2], a, r)
	}
}
