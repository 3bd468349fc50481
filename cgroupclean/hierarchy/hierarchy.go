// Package hierarchy finds every mounted cgroup hierarchy from mountinfo:
// each cgroup v1 controller hierarchy (misc and named ones such as
// name=systemd included) and the v2 unified one. A pod cgroup exists once in
// each of them and must be removed from all: leaks came from tools that
// skipped a hierarchy they did not know (kubernetes#112124).
package hierarchy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Hierarchy is one mounted cgroup hierarchy.
type Hierarchy struct {
	// Name is "memory", "cpu,cpuacct", "name=systemd" or "unified".
	Name string
	// Mountpoint is where it is mounted, e.g. /sys/fs/cgroup/memory.
	Mountpoint string
	// Version is 1 or 2.
	Version int
	// Controllers are the v1 controllers bound to it (none for a named or
	// v2 hierarchy).
	Controllers []string
}

// Has reports whether the hierarchy carries a v1 controller.
func (h Hierarchy) Has(controller string) bool {
	for _, c := range h.Controllers {
		if c == controller {
			return true
		}
	}
	return false
}

// Path joins a cgroup path (relative to the hierarchy root) to the mountpoint.
func (h Hierarchy) Path(rel string) string {
	return filepath.Join(h.Mountpoint, rel)
}

// Mode names the node's cgroup layout from its hierarchies: "v1", "v2" or
// "hybrid"; "" when none of them is v2 or carries a v1 controller.
func Mode(hs []Hierarchy) string {
	v1, v2 := false, false
	for _, h := range hs {
		if h.Version == 2 {
			v2 = true
		} else if len(h.Controllers) > 0 {
			v1 = true
		}
	}
	switch {
	case v1 && v2:
		return "hybrid"
	case v2:
		return "v2"
	case v1:
		return "v1"
	}
	return ""
}

// Discover reads /proc/self/mountinfo and returns the hierarchies mounted
// under mountRoot.
func Discover(mountRoot string) ([]Hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("discover cgroup hierarchies: %w", err)
	}
	defer f.Close()
	return Parse(f, mountRoot)
}

// Parse returns the cgroup hierarchies in a mountinfo stream that are
// mounted at or under mountRoot, one per hierarchy (a hierarchy bind-mounted
// twice is listed once, at its first mountpoint), sorted by mountpoint. It
// skips mounts of a sub-tree of a hierarchy (mount root other than "/"):
// their paths are not the ones kubelet names.
func Parse(r io.Reader, mountRoot string) ([]Hierarchy, error) {
	mounts, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("parse mountinfo: %w", err)
	}
	mountRoot = filepath.Clean(mountRoot)
	seen := map[string]bool{}
	var out []Hierarchy
	for _, m := range mounts {
		if m.Root != "/" || !under(m.Mountpoint, mountRoot) {
			continue
		}
		h := Hierarchy{Mountpoint: filepath.Clean(m.Mountpoint)}
		if m.FSType == "cgroup2" {
			h.Version, h.Name = 2, "unified"
		} else {
			h.Version = 1
			h.Name, h.Controllers = v1Identity(m.VFSOptions)
			if h.Name == "" {
				continue
			}
		}
		// One hierarchy can be mounted more than once; its identity is
		// its set of controllers (or name), not the mountpoint.
		if seen[h.Name] {
			continue
		}
		seen[h.Name] = true
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mountpoint < out[j].Mountpoint })
	return out, nil
}

// v1Identity picks the controllers and the name= option out of a v1 mount's
// super options, e.g. "rw,cpu,cpuacct" or "rw,xattr,name=systemd".
func v1Identity(superOpts string) (string, []string) {
	var ctrls []string
	named := ""
	for _, o := range strings.Split(superOpts, ",") {
		switch {
		case strings.HasPrefix(o, "name="):
			named = o
		case knownMountOption[o], strings.Contains(o, "="):
		case o != "":
			ctrls = append(ctrls, o)
		}
	}
	sort.Strings(ctrls)
	switch {
	case len(ctrls) > 0:
		return strings.Join(ctrls, ","), ctrls
	case named != "":
		return named, nil
	}
	return "", nil
}

// knownMountOption lists v1 super options that are not controllers.
var knownMountOption = map[string]bool{
	"rw": true, "ro": true, "none": true, "xattr": true, "noprefix": true,
	"clone_children": true, "cpuset_v2_mode": true, "favordynmods": true,
	"nsdelegate": true, "memory_recursiveprot": true, "memory_localevents": true,
	"memory_hugetlb_accounting": true, "pids_localevents": true,
}

func under(p, root string) bool {
	p = filepath.Clean(p)
	return p == root || strings.HasPrefix(p, root+"/") || root == "/"
}
