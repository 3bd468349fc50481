package hierarchy

import (
	"strings"
	"testing"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/misc rw,relatime - cgroup cgroup rw,misc
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:32 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
51 31 0:32 /kubepods /sys/fs/cgroup/kp rw,relatime - cgroup cgroup rw,memory
`

func TestParseHybrid(t *testing.T) {
	hs, err := Parse(strings.NewReader(hybridMountinfo), "/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hs {
		got = append(got, h.Name+"@"+h.Mountpoint)
	}
	want := "cpu,cpuacct@/sys/fs/cgroup/cpu,cpuacct cpuset@/sys/fs/cgroup/cpuset memory@/sys/fs/cgroup/memory misc@/sys/fs/cgroup/misc name=systemd@/sys/fs/cgroup/systemd unified@/sys/fs/cgroup/unified"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if !hs[0].Has("cpuacct") || hs[0].Version != 1 || hs[5].Version != 2 {
		t.Fatalf("bad identity: %+v", hs)
	}
}

func TestParseV2Only(t *testing.T) {
	hs, err := Parse(strings.NewReader("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"), "/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].Name != "unified" || hs[0].Mountpoint != "/sys/fs/cgroup" {
		t.Fatalf("got %+v", hs)
	}
}

func TestParseSkipsOtherRoots(t *testing.T) {
	hs, err := Parse(strings.NewReader(hybridMountinfo), "/mnt")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].Mountpoint != "/mnt/memory-again" {
		t.Fatalf("got %+v", hs)
	}
}

func TestDiscoverThisMachine(t *testing.T) {
	hs, err := Discover("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) == 0 {
		t.Fatal("no cgroup hierarchy mounted under /sys/fs/cgroup")
	}
	for _, h := range hs {
		if h.Version != 1 && h.Version != 2 {
			t.Errorf("%s: version %d", h.Name, h.Version)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(hybridMountinfo, "/sys/fs/cgroup")
	f.Add("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "/")
	f.Fuzz(func(t *testing.T, text, root string) {
		hs, err := Parse(strings.NewReader(text), root)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, h := range hs {
			if names[h.Name] {
				t.Fatalf("hierarchy %q listed twice", h.Name)
			}
			names[h.Name] = true
			if h.Name == "" || h.Mountpoint == "" {
				t.Fatalf("empty identity %+v", h)
			}
		}
	})
}

func TestMode(t *testing.T) {
	v1 := Hierarchy{Name: "memory", Version: 1, Controllers: []string{"memory"}}
	named := Hierarchy{Name: "name=systemd", Version: 1}
	v2 := Hierarchy{Name: "unified", Version: 2}
	for _, tc := range []struct {
		hs   []Hierarchy
		want string
	}{
		{[]Hierarchy{v1, named, v2}, "hybrid"},
		{[]Hierarchy{v2}, "v2"},
		{[]Hierarchy{v1, named}, "v1"},
		{[]Hierarchy{named}, ""},
		{nil, ""},
	} {
		if got := Mode(tc.hs); got != tc.want {
			t.Errorf("Mode(%v) = %q, want %q", tc.hs, got, tc.want)
		}
	}
}
