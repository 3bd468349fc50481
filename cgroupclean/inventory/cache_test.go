package inventory

import (
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"golang.org/x/sys/unix"
)

// On real cgroupfs: a new container dir changes the pod dir's link count
// and is seen at once; a dir replaced by another (same count) is seen
// after Refresh passes at the latest, and a cached dir that is gone is
// dropped as soon as its time is read.
func TestDirCacheOnCgroupfs(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "dircache")
	uid := "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	pod := "kubepods/burstable/pod" + uid
	ctr := func(n string) string { return strings.Repeat(n, 64) }
	if err := r.Mkdir(pod + "/" + ctr("a")); err != nil {
		t.Fatal(err)
	}
	cache := &DirCache{Refresh: 3}
	read := func() []string {
		t.Helper()
		inv, err := ReadWith(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs, Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range inv.Pods[0].Containers {
			ids = append(ids, c.ID[:1])
		}
		return ids
	}
	if got := strings.Join(read(), ""); got != "a" {
		t.Fatalf("pass 1: %s", got)
	}
	if err := r.Mkdir(pod + "/" + ctr("b")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(read(), ""); got != "ab" {
		t.Fatalf("a new dir must be seen at once, got %s", got)
	}
	// Replace b with c: the count stays, the listing is stale, but the
	// gone dir b is dropped when its time is read.
	for _, h := range r.Hierarchies {
		if err := unix.Rmdir(h.Path(r.Rel(pod + "/" + ctr("b")))); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Mkdir(pod + "/" + ctr("c")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(read(), ""); got != "a" {
		t.Fatalf("stale pass: want the gone dir dropped and the new one not yet seen, got %s", got)
	}
	seen := false
	for i := 0; i < 3 && !seen; i++ {
		seen = strings.Join(read(), "") == "ac"
	}
	if !seen {
		t.Fatal("the replaced dir was not seen within Refresh passes")
	}
	// A container dir leaked in one (not the first) hierarchy only: seen
	// within Refresh passes.
	last := r.Hierarchies[len(r.Hierarchies)-1]
	if err := r.MkdirIn(last, pod+"/"+ctr("d")); err != nil {
		t.Fatal(err)
	}
	seen = false
	for i := 0; i < 4 && !seen; i++ {
		seen = strings.Join(read(), "") == "acd"
	}
	if !seen {
		t.Fatal("a dir leaked in one hierarchy was not seen within Refresh passes")
	}
}

// The cache holds one entry per pod, and hierarchies whose pod directory
// lists the same names share one listing (the daemon's memory at 10,000
// pods); a hierarchy with other names keeps its own.
func TestDirCacheSharesListings(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "dircacheshare")
	testbed.Need(t, len(r.Hierarchies) >= 3, "at least 3 cgroup hierarchies")
	pod := "kubepods/burstable/pod3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	if err := r.Mkdir(pod + "/" + strings.Repeat("a", 64)); err != nil {
		t.Fatal(err)
	}
	last := r.Hierarchies[len(r.Hierarchies)-1]
	if err := r.MkdirIn(last, pod+"/"+strings.Repeat("b", 64)); err != nil {
		t.Fatal(err)
	}
	cache := &DirCache{}
	inv, err := ReadWith(r.Hierarchies, r.Rel("kubepods"), names.Cgroupfs, Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Pods) != 1 || len(inv.Pods[0].Containers) != 2 {
		t.Fatalf("inventory: %+v", inv.Pods)
	}
	if len(cache.pods) != 1 {
		t.Fatalf("%d cache entries, want 1 (one per pod)", len(cache.pods))
	}
	for _, p := range cache.pods {
		if len(p.dirs) != len(r.Hierarchies) {
			t.Fatalf("%d listings, want one per hierarchy (%d)", len(p.dirs), len(r.Hierarchies))
		}
		first := &p.dirs[0].names()[0]
		for i, d := range p.dirs[:len(p.dirs)-1] {
			if len(d.names()) != 1 || &d.names()[0] != first {
				t.Errorf("hierarchy %d: listing %v not shared with the first", i, d.names())
			}
		}
		if d := p.dirs[len(p.dirs)-1]; len(d.names()) != 2 {
			t.Errorf("the hierarchy with another name lists %v", d.names())
		}
	}
}
