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
	// In lists the hierarchies (by name) that hold the directory, in the
	// inventory's order. It is shared between cgroups: read-only.
	In []string
	// Changed is the latest ctime/mtime of the directory across
	// hierarchies: a pod cgroup is as young as its last change.
	Changed    time.Time
	Containers []*Container
	// Other counts child cgroups whose names are not containers we know.
	// They are removed with the pod (they are inside it), never alone.
	Other []string

	in hierSet // while reading
}

// Container is one container-level cgroup inside a pod cgroup.
type Container struct {
	ID      string
	Kind    names.ContainerKind
	Path    string
	In      []string
	Changed time.Time

	in hierSet // while reading
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
	if len(hs) > maxHierarchies {
		return nil, fmt.Errorf("%d cgroup hierarchies mounted: at most %d are supported", len(hs), maxHierarchies)
	}
	inv := &Inventory{Driver: driver, PodRoot: filepath.Clean("/" + podRoot), Hierarchies: hs, opts: opts}
	if opts.Cache != nil {
		opts.Cache.nextPass()
	}
	r := reader{inv: inv, pods: map[string]*Pod{}}
	found := false
	for i, h := range hs {
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
					if err := r.addPod(h, i, qos, rel, p); err != nil {
						return nil, err
					}
				}
				continue
			}
			if err := r.addPod(h, i, names.Guaranteed, inv.PodRoot, e); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrNoPodRoot, inv.PodRoot)
	}
	// Nearly every cgroup is in the same hierarchies: one shared,
	// read-only list per distinct set instead of one per cgroup.
	sets := map[hierSet][]string{}
	in := func(s hierSet) []string {
		l, ok := sets[s]
		if !ok {
			for i, h := range hs {
				if s&(1<<i) != 0 {
					l = append(l, h.Name)
				}
			}
			l = l[:len(l):len(l)]
			sets[s] = l
		}
		return l
	}
	inv.Pods = make([]*Pod, 0, len(r.pods))
	for _, p := range r.pods {
		p.In = in(p.in)
		for _, c := range p.Containers {
			c.In = in(c.in)
		}
		inv.Pods = append(inv.Pods, p)
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Path < p.Containers[j].Path })
	}
	sort.Slice(inv.Pods, func(i, j int) bool { return inv.Pods[i].Path < inv.Pods[j].Path })
	sort.Slice(inv.Skipped, func(i, j int) bool { return inv.Skipped[i].Path < inv.Skipped[j].Path })
	inv.opts = Options{} // its live set is the caller's to keep or drop
	return inv, nil
}

// hierSet is a set of hierarchies by their index in the inventory's list.
type hierSet uint64

// maxHierarchies is how many hierarchies a hierSet holds. A node has one
// v1 hierarchy per controller (about a dozen) plus named ones and v2.
const maxHierarchies = 64

// reader builds an inventory. A pod or container met again in another
// hierarchy is found by its path without making a string for it: each
// path is allocated once, when first met, and IDs and UIDs are parts of it.
type reader struct {
	inv  *Inventory
	pods map[string]*Pod
	key  []byte
}

// addPod records the pod directory base under the cgroup path parent in
// hierarchy h (index hi).
func (r *reader) addPod(h hierarchy.Hierarchy, hi int, qos names.QoS, parent, base string) error {
	inv := r.inv
	r.key = append(r.key[:0], parent...)
	if parent != "/" {
		r.key = append(r.key, '/')
	}
	r.key = append(r.key, base...)
	p := r.pods[string(r.key)]
	if p == nil {
		if _, ok := names.ParsePodDir(inv.Driver, qos, base); !ok {
			if _, isQoS := names.ParseQoSDir(inv.Driver, base); !isQoS {
				inv.skip(join(parent, base), UnknownName)
			}
			return nil
		}
		rel := join(parent, base)
		uid, _ := names.ParsePodDir(inv.Driver, qos, rel[len(rel)-len(base):])
		p = &Pod{UID: uid, QoS: qos, Path: rel}
	}
	rel := p.Path
	dir := h.Mountpoint + rel
	podLive := inv.opts.Live != nil && inv.opts.Live(p.UID, "")
	seen := p.in != 0
	var st stat
	if !podLive || (seen && inv.opts.Cache == nil) {
		var err error
		if st, err = lstat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we looked
		} else if err != nil {
			return err
		}
	}
	if !seen {
		r.pods[rel] = p
	}
	p.in |= 1 << hi
	if !podLive && st.changed.After(p.Changed) {
		p.Changed = st.changed
	}
	var children []child
	var err error
	if seen && inv.opts.Cache == nil {
		children, err = p.knownChildren(dir, st.nlink)
	} else {
		var names []string
		names, err = inv.opts.Cache.list(dir, rel)
		children = make([]child, len(names))
		for i, n := range names {
			children[i].name = n
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		ct := p.container(c.name)
		if ct == nil {
			crel := join(rel, c.name)
			id, kind, ok := names.ParseContainerDir(crel[len(rel)+1:])
			if !ok {
				if !contains(p.Other, crel) {
					p.Other = append(p.Other, crel)
				}
				continue
			}
			ct = &Container{ID: id, Kind: kind, Path: crel}
		}
		var cchanged time.Time
		if inv.opts.Live == nil || !inv.opts.Live("", ct.ID) {
			if c.statted {
				cchanged = c.changed
			} else {
				cst, err := lstat(h.Mountpoint + ct.Path)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return err
				}
				cchanged = cst.changed
			}
		}
		if ct.in == 0 {
			p.Containers = append(p.Containers, ct)
		}
		ct.in |= 1 << hi
		if cchanged.After(ct.Changed) {
			ct.Changed = cchanged
		}
	}
	return nil
}

// child is a subdirectory of a pod directory, with its times when they
// were read on the way.
type child struct {
	name    string
	changed time.Time
	statted bool
}

// knownChildren lists the subdirectories of the pod's directory dir in
// another hierarchy than the first it was met in, whose link count is
// nlink. When the subdirectories already seen that exist in dir are as
// many as nlink reports, they are all of them (see cgfs.ReadTreeKnown),
// and their stats give their times: no listing of dir's dozens of control
// files. Otherwise dir is listed.
func (p *Pod) knownChildren(dir string, nlink uint64) ([]child, error) {
	want := int(nlink) - 2
	if want == 0 {
		return nil, nil
	}
	known := len(p.Containers) + len(p.Other)
	if want > 0 && known >= want {
		out := make([]child, 0, known)
		add := func(name string) bool {
			st, err := lstat(dir + "/" + name)
			switch {
			case err == nil && st.dir:
				out = append(out, child{name: name, changed: st.changed, statted: true})
			case errors.Is(err, fs.ErrNotExist):
			default:
				return false // not a directory, or unreadable: list dir
			}
			return true
		}
		ok := true
		for _, c := range p.Containers {
			ok = ok && add(c.Base())
		}
		for _, o := range p.Other {
			ok = ok && add(filepath.Base(o))
		}
		if ok && len(out) == want {
			return out, nil
		}
	}
	names, err := readDirs(dir)
	if err != nil {
		return nil, err
	}
	out := make([]child, len(names))
	for i, n := range names {
		out[i].name = n
	}
	return out, nil
}

// container returns the pod's container cgroup named base, or nil.
func (p *Pod) container(base string) *Container {
	for _, c := range p.Containers {
		if len(c.Path) == len(p.Path)+1+len(base) && c.Path[len(p.Path)+1:] == base {
			return c
		}
	}
	return nil
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

// stat is what the inventory reads of a directory's inode.
type stat struct {
	// changed is the later of ctime and mtime.
	changed time.Time
	nlink   uint64
	dir     bool
}

func lstat(dir string) (stat, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return stat{}, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	c := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	m := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if m.After(c) {
		c = m
	}
	return stat{changed: c, nlink: uint64(st.Nlink), dir: st.Mode&syscall.S_IFMT == syscall.S_IFDIR}, nil
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
