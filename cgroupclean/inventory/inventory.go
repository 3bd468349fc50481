// Package inventory reads the pod cgroup trees of every hierarchy and
// returns typed pod and container cgroups. It opens only the pod root, the
// QoS dirs and the pod dirs (getdents gives each entry's type, so cgroup
// children are known without opening the leaves), in every hierarchy.
package inventory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

// Inventory is every pod and container cgroup found under the pod root.
type Inventory struct {
	Driver      names.Driver
	PodRoot     string // cgroup path, e.g. /kubepods.slice
	Hierarchies []hierarchy.Hierarchy
	Pods        []*Pod
	// Skipped are entries under the pod root that are not cgroups we know
	// (left alone); reported so an operator sees them.
	Skipped []Skipped

	opts Options
}

// Skipped is an entry the inventory leaves alone, and why.
type Skipped struct {
	Path string `json:"path"`
	Why  string `json:"why"`
}

// Why an entry is skipped.
const (
	UnknownName = "not a pod cgroup name"
	NotADir     = "symlink, not a cgroup directory"
)

// Pod is one pod cgroup: the same path in one or more hierarchies.
type Pod struct {
	UID  string
	QoS  names.QoS
	Path string // cgroup path, the same in every hierarchy
	// In lists the hierarchies (by name) that hold the directory.
	In []string
	// Changed is the latest ctime/mtime of the directory across
	// hierarchies: a pod cgroup is as young as its last change.
	Changed    time.Time
	Containers []*Container
	// Other counts child cgroups whose names are not containers we know.
	// They are removed with the pod (they are inside it), never alone.
	Other []string
}

// Container is one container-level cgroup inside a pod cgroup.
type Container struct {
	ID      string
	Kind    names.ContainerKind
	Path    string
	In      []string
	Changed time.Time
}

// Base is the last element of the pod's path (its unit name with systemd).
func (p *Pod) Base() string { return filepath.Base(p.Path) }

// Base is the last element of the container's path.
func (c *Container) Base() string { return filepath.Base(c.Path) }

// ErrNoPodRoot means no hierarchy has the pod root: nothing to do (not a
// Kubernetes node, or kubelet has not started yet).
var ErrNoPodRoot = errors.New("pod cgroup root not found in any hierarchy")

// DetectPodRoot returns "/kubepods.slice" or "/kubepods", whichever exists
// in the most hierarchies, or ErrNoPodRoot.
func DetectPodRoot(hs []hierarchy.Hierarchy) (string, error) {
	best, bestN := "", 0
	for _, cand := range []string{"/kubepods.slice", "/kubepods"} {
		n := 0
		for _, h := range hs {
			if fi, err := os.Stat(h.Path(cand)); err == nil && fi.IsDir() {
				n++
			}
		}
		if n > bestN {
			best, bestN = cand, n
		}
	}
	if best == "" {
		return "", ErrNoPodRoot
	}
	return best, nil
}

// Read walks podRoot in every hierarchy. A hierarchy that lacks the pod
// root is fine (the pod root may be created lazily per controller); a
// directory that cannot be read is an error, because a partial inventory
// could make a cgroup look like it exists in fewer places than it does.
func Read(hs []hierarchy.Hierarchy, podRoot string, driver names.Driver) (*Inventory, error) {
	return ReadWith(hs, podRoot, driver, Options{})
}

// Options tune Read.
type Options struct {
	// Live, when set, names the pods (by UID) and containers (by ID) the
	// runtime lists: their directories' times are not read (a pass on an
	// idle node then stats nothing), and their Changed stays zero, which
	// the decision treats as "just changed".
	Live func(podUID, containerID string) bool
	// Cache, when set, keeps pod directories' listings between passes.
	Cache *DirCache
}

// ReadWith is Read with options.
func ReadWith(hs []hierarchy.Hierarchy, podRoot string, driver names.Driver, opts Options) (*Inventory, error) {
	inv := &Inventory{Driver: driver, PodRoot: filepath.Clean("/" + podRoot), Hierarchies: hs, opts: opts}
	if opts.Cache != nil {
		opts.Cache.nextPass()
	}
	pods := map[string]*Pod{}
	found := false
	for _, h := range hs {
		root := h.Path(inv.PodRoot)
		if err := checkInside(h, root); err != nil {
			return nil, err
		}
		var links []string
		entries, err := readDirs(root, &links)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		for _, l := range links {
			inv.skip(join(inv.PodRoot, l), NotADir)
		}
		for _, e := range entries {
			rel := join(inv.PodRoot, e)
			if qos, ok := names.ParseQoSDir(driver, e); ok {
				var subLinks []string
				sub, err := readDirs(h.Mountpoint+rel, &subLinks)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, err
				}
				for _, l := range subLinks {
					inv.skip(join(rel, l), NotADir)
				}
				for _, p := range sub {
					if err := inv.addPod(pods, h, qos, join(rel, p), p); err != nil {
						return nil, err
					}
				}
				continue
			}
			if err := inv.addPod(pods, h, names.Guaranteed, rel, e); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrNoPodRoot, inv.PodRoot)
	}
	for _, p := range pods {
		inv.Pods = append(inv.Pods, p)
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Path < p.Containers[j].Path })
	}
	sort.Slice(inv.Pods, func(i, j int) bool { return inv.Pods[i].Path < inv.Pods[j].Path })
	sort.Slice(inv.Skipped, func(i, j int) bool { return inv.Skipped[i].Path < inv.Skipped[j].Path })
	return inv, nil
}

func (inv *Inventory) addPod(pods map[string]*Pod, h hierarchy.Hierarchy, qos names.QoS, rel, base string) error {
	uid, ok := names.ParsePodDir(inv.Driver, qos, base)
	if !ok {
		if _, isQoS := names.ParseQoSDir(inv.Driver, base); !isQoS {
			inv.skip(rel, UnknownName)
		}
		return nil
	}
	var changed time.Time
	if inv.opts.Live == nil || !inv.opts.Live(uid, "") {
		var err error
		changed, err = changedAt(h.Mountpoint + rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we looked
		}
		if err != nil {
			return err
		}
	}
	p := pods[rel]
	if p == nil {
		p = &Pod{UID: uid, QoS: qos, Path: rel, In: make([]string, 0, len(inv.Hierarchies))}
		pods[rel] = p
	}
	p.In = append(p.In, h.Name)
	if changed.After(p.Changed) {
		p.Changed = changed
	}
	children, err := inv.opts.Cache.list(h.Mountpoint+rel, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		crel := join(rel, c)
		id, kind, ok := names.ParseContainerDir(c)
		if !ok {
			if !contains(p.Other, crel) {
				p.Other = append(p.Other, crel)
			}
			continue
		}
		var cchanged time.Time
		if inv.opts.Live == nil || !inv.opts.Live("", id) {
			cchanged, err = changedAt(h.Mountpoint + crel)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
		}
		ct := p.container(crel, id, kind)
		ct.In = append(ct.In, h.Name)
		if cchanged.After(ct.Changed) {
			ct.Changed = cchanged
		}
	}
	return nil
}

func (p *Pod) container(path, id string, kind names.ContainerKind) *Container {
	for _, c := range p.Containers {
		if c.Path == path {
			return c
		}
	}
	c := &Container{ID: id, Kind: kind, Path: path, In: make([]string, 0, 4)}
	p.Containers = append(p.Containers, c)
	return c
}

func (inv *Inventory) skip(rel, why string) {
	for _, s := range inv.Skipped {
		if s.Path == rel {
			return
		}
	}
	inv.Skipped = append(inv.Skipped, Skipped{Path: rel, Why: why})
}

// readDirs lists the subdirectory names of dir. Symlinks are not
// directories here: cgroupfs has none, so one is foreign; it is reported
// through links and never followed.
func readDirs(dir string, links ...*[]string) ([]string, error) {
	e, err := cgfs.SubDirs(dir)
	if err != nil {
		return nil, err
	}
	if len(links) > 0 {
		*links[0] = append(*links[0], e.Links...)
	}
	return e.Dirs, nil
}

func changedAt(dir string) (time.Time, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return time.Time{}, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	c := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	m := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if m.After(c) {
		return m, nil
	}
	return c, nil
}

// checkInside refuses a pod root that resolves outside its hierarchy (a
// symlink planted in cgroupfs's place, or a configured path with ..).
func checkInside(h hierarchy.Hierarchy, root string) error {
	real, err := filepath.EvalSymlinks(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve pod root %s: %w", root, err)
	}
	if real != root {
		return fmt.Errorf("pod root %s resolves to %s: refusing a path that is not a plain cgroup directory", root, real)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// join appends a directory entry name to a clean cgroup path. Names from
// getdents hold no "/" and "." and ".." are never returned, so the result
// is clean too: no filepath.Clean per entry, which was a fifth of an idle
// pass.
func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
