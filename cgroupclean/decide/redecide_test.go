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
// time: the live index built once per pass (the inventory used it too) and
// the first plan's memory reused. BenchmarkDecide100k builds both anew.
func BenchmarkRedecide100k(b *testing.B) {
	in, pol := bench100k()
	in.Index = live.NewIndex(in.Snapshot)
	plan := Decide(in, pol)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plan = Redecide(plan, in, pol)
		if plan.Summary.Pods != 100000 {
			b.Fatal("bad plan")
		}
	}
}
