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
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"golang.org/x/sys/unix"
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
	// Listed is the runtime's answer the inventory was read with
	// (Options.Index), nil if none: every Pod.Listed is its answer for the
	// pod, and no container it lists is among the Containers. The decision
	// takes these answers instead of asking the index again, when its
	// index is this one.
	Listed *live.Index
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
	// LiveContainers counts the container cgroups inside that the runtime
	// lists (Options.Live), the most in any one hierarchy: on a healthy
	// node that is nearly all of them, and nothing is decided about them,
	// so they are counted, not kept.
	LiveContainers int
	// Other counts child cgroups whose names are not containers we know.
	// They are removed with the pod (they are inside it), never alone.
	Other []string
	// Listed: the runtime lists a sandbox of the pod (Options.Live).
	Listed bool

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
	// the decision treats as "just changed". The strings it is given are
	// only valid during the call (they point into a directory buffer).
	Live func(podUID, containerID string) bool
	// Cache, when set, keeps pod directories' listings between passes.
	Cache *DirCache
	// Index, when set and Live is not, is the runtime's answer that Live
	// asks; the inventory records it (Inventory.Listed).
	Index *live.Index
}

// ReadWith is Read with options.
func ReadWith(hs []hierarchy.Hierarchy, podRoot string, driver names.Driver, opts Options) (*Inventory, error) {
	if len(hs) > maxHierarchies {
		return nil, fmt.Errorf("%d cgroup hierarchies mounted: at most %d are supported", len(hs), maxHierarchies)
	}
	inv := &Inventory{Driver: driver, PodRoot: filepath.Clean("/" + podRoot), Hierarchies: hs}
	if idx := opts.Index; idx != nil && opts.Live == nil {
		opts.Live = func(podUID, containerID string) bool {
			if containerID != "" {
				return idx.IDListed(containerID)
			}
			return idx.PodListed(podUID)
		}
		inv.Listed = idx
	}
	if opts.Cache != nil {
		opts.Cache.nextPass()
	}
	r := reader{inv: inv, opts: opts, pods: map[string]*Pod{}}
	found := false
	for i, h := range hs {
		root := h.Path(inv.PodRoot)
		if err := checkInside(h, root); err != nil {
			return nil, err
		}
		rootfd, err := cgfs.Open(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		err = r.readRoot(h, i, rootfd, root)
		unix.Close(rootfd)
		if err != nil {
			return nil, err
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
// Directories are read relative to open ones (cgfs.At), with no garbage
// per lookup.
type reader struct {
	inv  *Inventory
	opts Options
	pods map[string]*Pod
	key  []byte
	mem  arena
	// at looks up and opens; list lists the pod root and QoS dirs, and
	// podList the pod dirs inside them.
	at, list, podList cgfs.At
	kids              []cgfs.Kid
	listed            int // listed containers in the pod dir being read
}

type qosDir struct {
	name string
	qos  names.QoS
}

// readRoot reads the pod root of hierarchy h (index hi), open as rootfd.
func (r *reader) readRoot(h hierarchy.Hierarchy, hi int, rootfd int, root string) error {
	inv := r.inv
	var qosDirs []qosDir
	err := r.list.Each(rootfd, func(name string, link bool) error {
		if link {
			inv.skip(join(inv.PodRoot, name), NotADir)
			return nil
		}
		if qos, ok := names.ParseQoSDir(inv.Driver, name); ok {
			qosDirs = append(qosDirs, qosDir{strings.Clone(name), qos})
			return nil
		}
		return r.addPod(h, hi, names.Guaranteed, rootfd, inv.PodRoot, name)
	})
	if err != nil {
		return wrapRead(root, err)
	}
	for _, q := range qosDirs {
		rel := join(inv.PodRoot, q.name)
		fd, err := r.at.OpenAt(rootfd, q.name)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: h.Mountpoint + rel, Err: err}
		}
		err = r.list.Each(fd, func(name string, link bool) error {
			if link {
				inv.skip(join(rel, name), NotADir)
				return nil
			}
			return r.addPod(h, hi, q.qos, fd, rel, name)
		})
		unix.Close(fd)
		if err != nil {
			return wrapRead(h.Mountpoint+rel, err)
		}
	}
	return nil
}

// wrapRead names the directory in an error of listing it; errors of
// reading what is inside already name their path.
func wrapRead(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("read %s: %w", dir, err)
}

// addPod records the pod directory base, an entry of the open directory
// parentfd (the cgroup path parent), in hierarchy h (index hi). base is
// only valid during the call.
func (r *reader) addPod(h hierarchy.Hierarchy, hi int, qos names.QoS, parentfd int, parent, base string) error {
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
		rel := r.mem.join(parent, base)
		base = rel[len(rel)-len(base):]
		uid, _ := names.ParsePodDir(inv.Driver, qos, base)
		if inv.Driver == names.Systemd {
			uid = r.mem.str(uid) // made from the name, not a part of it
		}
		p = r.mem.pod()
		p.UID, p.QoS, p.Path = uid, qos, rel
	}
	rel := p.Path
	podLive := r.opts.Live != nil && r.opts.Live(p.UID, "")
	seen := p.in != 0
	var st unix.Stat_t
	if !podLive || (seen && r.opts.Cache == nil) {
		if err := r.at.Stat(parentfd, &st, base); err == unix.ENOENT {
			return nil // removed while we looked
		} else if err != nil {
			return &fs.PathError{Op: "stat", Path: h.Mountpoint + rel, Err: err}
		}
	}
	if !seen {
		r.pods[rel] = p
	}
	p.in |= 1 << hi
	p.Listed = podLive
	if c := changedAt(&st); !podLive && c.After(p.Changed) {
		p.Changed = c
	}
	r.listed = 0
	done := false
	if seen && r.opts.Cache == nil {
		var err error
		if done, err = r.knownChildren(h, hi, p, parentfd, base, st.Nlink); err != nil {
			return err
		}
	}
	if !done && r.opts.Cache != nil {
		children, err := r.opts.Cache.list(h.Mountpoint, hi, len(r.inv.Hierarchies), rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := r.addChild(h, hi, p, parentfd, base, c, nil); err != nil {
				return err
			}
		}
	} else if !done {
		fd, err := r.at.OpenAt(parentfd, base)
		if err == unix.ENOENT {
			return nil
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: h.Mountpoint + rel, Err: err}
		}
		err = r.podList.Each(fd, func(name string, link bool) error {
			if link {
				return nil // not a cgroup; apply refuses a tree holding one
			}
			return r.addChild(h, hi, p, fd, "", name, nil)
		})
		unix.Close(fd)
		if err != nil {
			return wrapRead(h.Mountpoint+rel, err)
		}
	}
	p.LiveContainers = max(p.LiveContainers, r.listed)
	return nil
}

// addChild records subdirectory name of pod p in hierarchy h: name is an
// entry of the open directory dirfd, below its entry podBase when that is
// not "". st is its stat if already read. name is only valid during the
// call.
func (r *reader) addChild(h hierarchy.Hierarchy, hi int, p *Pod, dirfd int, podBase, name string, st *unix.Stat_t) error {
	ct := p.container(name)
	if ct == nil {
		id, kind, ok := names.ParseContainerDir(name)
		if !ok {
			if !p.hasOther(name) {
				p.Other = append(p.Other, join(p.Path, name))
			}
			return nil
		}
		if r.opts.Live != nil && r.opts.Live("", id) {
			r.listed++ // counted, not kept
			return nil
		}
		crel := r.mem.join(p.Path, name)
		id, _, _ = names.ParseContainerDir(crel[len(crel)-len(name):]) // a part of crel
		ct = r.mem.container()
		ct.ID, ct.Kind, ct.Path = id, kind, crel
	}
	var changed time.Time
	if r.opts.Live == nil || !r.opts.Live("", ct.ID) {
		if st == nil {
			st = new(unix.Stat_t)
			var err error
			if podBase != "" {
				err = r.at.Stat(dirfd, st, podBase, name)
			} else {
				err = r.at.Stat(dirfd, st, name)
			}
			if err == unix.ENOENT {
				return nil
			}
			if err != nil {
				return &fs.PathError{Op: "stat", Path: h.Mountpoint + ct.Path, Err: err}
			}
		}
		changed = changedAt(st)
	}
	if ct.in == 0 {
		p.Containers = append(p.Containers, ct)
	}
	ct.in |= 1 << hi
	if changed.After(ct.Changed) {
		ct.Changed = changed
	}
	return nil
}

// knownChildren reads the subdirectories of pod p's directory base (an
// entry of parentfd, link count nlink) in another hierarchy than the first
// it was met in, from the names already seen when cgfs.At.Known says they
// are all of them; their stats give their times. done is false when the
// directory must be listed.
func (r *reader) knownChildren(h hierarchy.Hierarchy, hi int, p *Pod, parentfd int, base string, nlink uint64) (done bool, err error) {
	if nlink == 2 {
		return true, nil
	}
	if int(nlink)-2 > len(p.Containers)+len(p.Other) {
		return false, nil // some are not known: no need to stat the rest
	}
	var complete bool
	r.kids, complete = r.at.Known(r.kids[:0], parentfd, base, nlink, p.childNames)
	if !complete {
		return false, nil
	}
	for i := range r.kids {
		if err := r.addChild(h, hi, p, parentfd, base, r.kids[i].Name, &r.kids[i].Stat); err != nil {
			return false, err
		}
	}
	return true, nil
}

// childNames yields the names of the pod's known subdirectories.
func (p *Pod) childNames(yield func(string) bool) {
	for _, c := range p.Containers {
		if !yield(c.Base()) {
			return
		}
	}
	for _, o := range p.Other {
		if !yield(filepath.Base(o)) {
			return
		}
	}
}

// hasOther reports whether base is one of the pod's other children.
func (p *Pod) hasOther(base string) bool {
	for _, o := range p.Other {
		if len(o) == len(p.Path)+1+len(base) && o[len(p.Path)+1:] == base {
			return true
		}
	}
	return false
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

// readDirs lists the subdirectory names of dir (symlinks, foreign to
// cgroupfs, are left out and never followed).
func readDirs(dir string) ([]string, error) {
	e, err := cgfs.SubDirs(dir)
	if err != nil {
		return nil, err
	}
	return e.Dirs, nil
}

// changedAt is the later of a directory's ctime and mtime.
func changedAt(st *unix.Stat_t) time.Time {
	c := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	if m := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); m.After(c) {
		return m
	}
	return c
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
