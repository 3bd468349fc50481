package inventory

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// On real cgroupfs, without a cache: a pod's children in the hierarchies
// after the first are taken from the names already seen when they account
// for the link count. Whatever differs between hierarchies, the inventory
// must equal a full listing of every hierarchy.
func TestKnownChildrenMatchListing(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "known")
	if len(r.Hierarchies) < 2 {
		t.Skip("needs two hierarchies")
	}
	first, last := r.Hierarchies[0], r.Hierarchies[len(r.Hierarchies)-1]
	ctr := func(n string) string { return strings.Repeat(n, 64) }
	uid := "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	pod := func(i int) string { return "kubepods/burstable/pod" + uid[:len(uid)-1] + string(rune('0'+i)) }
	layouts := []struct {
		name  string
		every []string // in every hierarchy
		first []string // in the first only
		last  []string // in the last only
	}{
		{"same everywhere", []string{ctr("a"), ctr("b")}, nil, nil},
		{"one leaked in the last only", []string{ctr("a")}, nil, []string{ctr("c")}},
		{"one in the first only", []string{ctr("a")}, []string{ctr("d")}, nil},
		{"replaced in the last (same count)", nil, []string{ctr("e")}, []string{ctr("f")}},
		{"unknown name in the last", []string{ctr("a")}, nil, []string{"extra"}},
		{"none", nil, nil, nil},
	}
	for i, l := range layouts {
		if err := r.Mkdir(pod(i)); err != nil {
			t.Fatal(err)
		}
		for _, c := range l.every {
			if err := r.Mkdir(pod(i) + "/" + c); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range l.first {
			if err := r.MkdirIn(first, pod(i)+"/"+c); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range l.last {
			if err := r.MkdirIn(last, pod(i)+"/"+c); err != nil {
				t.Fatal(err)
			}
		}
	}
	inv, err := Read(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Pods) != len(layouts) {
		t.Fatalf("%d pods, want %d", len(inv.Pods), len(layouts))
	}
	for _, p := range inv.Pods {
		// The truth: every hierarchy listed.
		want := map[string][]string{}
		for _, h := range r.Hierarchies {
			ents, err := os.ReadDir(h.Path(p.Path))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.IsDir() {
					want[e.Name()] = append(want[e.Name()], h.Name)
				}
			}
		}
		got := map[string][]string{}
		for _, c := range p.Containers {
			got[c.Base()] = c.In
		}
		for _, o := range p.Other {
			got[o[strings.LastIndexByte(o, '/')+1:]] = []string{"(other)"}
		}
		var g, w []string
		for n, in := range got {
			if in[0] == "(other)" {
				in = want[n] // Other does not say where
			}
			g = append(g, n+":"+strings.Join(in, ","))
		}
		for n, in := range want {
			w = append(w, n+":"+strings.Join(in, ","))
		}
		sort.Strings(g)
		sort.Strings(w)
		if strings.Join(g, " ") != strings.Join(w, " ") {
			t.Errorf("%s:\n got %v\nwant %v", p.Path, g, w)
		}
	}
}

// Containers the runtime lists are counted, not kept: only the others
// (what the decision acts on) are in Containers, with their times.
func TestListedContainersCounted(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "listed")
	ctr := func(n string) string { return strings.Repeat(n, 64) }
	pod := "kubepods/burstable/pod3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	for _, c := range []string{ctr("a"), ctr("b"), ctr("c")} {
		if err := r.Mkdir(pod + "/" + c); err != nil {
			t.Fatal(err)
		}
	}
	listed := map[string]bool{ctr("a"): true, ctr("b"): true}
	inv, err := ReadWith(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs, Options{Live: func(_, id string) bool { return listed[id] }})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Pods) != 1 {
		t.Fatalf("%d pods", len(inv.Pods))
	}
	p := inv.Pods[0]
	if p.LiveContainers != 2 || len(p.Containers) != 1 || p.Containers[0].ID != ctr("c") || p.Containers[0].Changed.IsZero() || len(p.Containers[0].In) != len(r.Hierarchies) {
		t.Fatalf("live %d, containers %+v", p.LiveContainers, p.Containers)
	}
	if len(p.In) != len(r.Hierarchies) || p.Changed.IsZero() {
		t.Fatalf("pod in %v, changed %v", p.In, p.Changed)
	}
}

// Read with the runtime's answer, the inventory records it: each pod says
// whether a sandbox of its is listed, the listed containers are counted,
// and the inventory names the answer it was read with.
func TestRuntimeAnswerRecorded(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "recorded")
	ctr := func(n string) string { return strings.Repeat(n, 64) }
	livePod, orphanPod := "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f", "4f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	for _, d := range []string{"kubepods/burstable/pod" + livePod + "/" + ctr("a"), "kubepods/burstable/pod" + livePod + "/" + ctr("b"), "kubepods/besteffort/pod" + orphanPod + "/" + ctr("c")} {
		if err := r.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	idx := live.NewIndex(live.Snapshot{
		Sandboxes:  []live.Sandbox{{ID: ctr("a"), PodUID: livePod}},
		Containers: []live.Container{{ID: ctr("9"), SandboxID: ctr("a")}},
	})
	inv, err := ReadWith(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs, Options{Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Listed != idx || len(inv.Pods) != 2 {
		t.Fatalf("listed %p (want %p), %d pods", inv.Listed, idx, len(inv.Pods))
	}
	for _, p := range inv.Pods {
		switch p.UID {
		case livePod:
			if !p.Listed || p.LiveContainers != 1 || len(p.Containers) != 1 || p.Containers[0].ID != ctr("b") {
				t.Errorf("live pod: listed %v, live containers %d, containers %+v", p.Listed, p.LiveContainers, p.Containers)
			}
		case orphanPod:
			if p.Listed || p.LiveContainers != 0 || len(p.Containers) != 1 || p.Changed.IsZero() {
				t.Errorf("orphan pod: listed %v, live containers %d, containers %+v, changed %v", p.Listed, p.LiveContainers, p.Containers, p.Changed)
			}
		}
	}
	// Without the answer nothing is recorded.
	inv, err = ReadWith(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inv.Pods {
		if p.Listed || inv.Listed != nil || p.LiveContainers != 0 {
			t.Fatalf("read without an answer: pod %s listed %v, inventory %p", p.Path, p.Listed, inv.Listed)
		}
	}
}
