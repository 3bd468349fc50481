// Package apply holds the actions that change a node: counting and killing
// the processes of a cgroup, and removing its directories leaf-first with
// non-recursive rmdir in every hierarchy. The kernel refuses rmdir of a
// cgroup with tasks or children (EBUSY), which makes it the last guard.
package apply

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// Trees is a cgroup's subtree in every hierarchy that has it, read in one
// walk each: the directories (deepest first) and the processes in them.
type Trees struct {
	ByHierarchy []HierarchyTree
	Pids        []int // distinct
}

// Absent reports whether no hierarchy has the cgroup.
func (t Trees) Absent() bool {
	for _, h := range t.ByHierarchy {
		if len(h.Dirs) > 0 {
			return false
		}
	}
	return true
}

// HierarchyTree is the subtree in one hierarchy; Dirs is nil when the
// hierarchy does not have the cgroup.
type HierarchyTree struct {
	Hierarchy hierarchy.Hierarchy
	Dirs      []string
}

// ReadTrees walks path in every hierarchy once. A v2 tree whose
// cgroup.events says it is not populated has no process, so its
// cgroup.procs files are not read. Any read error is returned: a cgroup
// that cannot be read must be kept.
func ReadTrees(hs []hierarchy.Hierarchy, path string) (Trees, error) {
	return ReadTreesKnown(hs, path, nil)
}

// ReadTreesKnown is ReadTrees given the names of path's subdirectories as
// the scan saw them (see cgfs.ReadTreeKnown): the result is the same, it
// only saves listing path where those are still all there is.
func ReadTreesKnown(hs []hierarchy.Hierarchy, path string, known []string) (Trees, error) {
	var out Trees
	seen := map[int]bool{}
	for _, h := range hs {
		dir := h.Path(path)
		// v2: cgroup.events is read relative to the directory the walk
		// opens, not by its whole path once more.
		procs := func(int) (bool, error) { return true, nil }
		if h.Version == 2 {
			procs = func(dirfd int) (bool, error) { return v2PopulatedAt(dirfd, dir) }
		}
		t, err := cgfs.ReadTreeKnownIf(dir, known, procs)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) {
				out.ByHierarchy = append(out.ByHierarchy, HierarchyTree{Hierarchy: h})
				continue
			}
		}
		if err != nil {
			return Trees{}, fmt.Errorf("read cgroup tree %s: %w", dir, err)
		}
		out.ByHierarchy = append(out.ByHierarchy, HierarchyTree{Hierarchy: h, Dirs: t.Dirs})
		for _, p := range t.Pids {
			if !seen[p] {
				seen[p] = true
				out.Pids = append(out.Pids, p)
			}
		}
	}
	return out, nil
}

// Pids returns the distinct PIDs inside path's subtree in every hierarchy.
func Pids(hs []hierarchy.Hierarchy, path string) ([]int, error) {
	t, err := ReadTrees(hs, path)
	return t.Pids, err
}

// v2PopulatedAt reads "populated" from cgroup.events of dir, open as
// dirfd: 1 when any process is in the subtree. It saves reading every
// child of an empty cgroup.
func v2PopulatedAt(dirfd int, dir string) (bool, error) {
	data, err := cgfs.ReadSmallAt(dirfd, "cgroup.events")
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			pe.Path = dir + "/cgroup.events"
		}
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == "populated" {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return false, fmt.Errorf("parse %s/cgroup.events: %q", dir, sc.Text())
			}
			return n != 0, nil
		}
	}
	return false, fmt.Errorf("parse %s/cgroup.events: no populated line", dir)
}
