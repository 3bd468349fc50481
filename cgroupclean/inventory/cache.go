package inventory

import (
	"io/fs"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DirCache remembers the subdirectories of pod cgroups between the passes
// of the daemon. A directory's link count is 2 plus its subdirectories
// (kernfs keeps it so), so while it is unchanged a stat stands in for
// reading the dozens of control files of the pod directory in every
// hierarchy: on an idle node that is most of a pass's cost.
//
// A pod's directory is stat'ed in the first hierarchy it is met in; while
// its count there is unchanged, its cached listings in the other
// hierarchies are used without a stat (a new container makes its directory
// in every hierarchy, so one is enough to see it).
//
// A cached listing can be stale when one container cgroup replaced another
// between two passes (the count stays), or when a container directory
// leaked in another hierarchy only. That only delays: a cached child
// that is gone is dropped when its time is read (only non-live ones are
// read), and apply re-reads every tree before it removes anything. Every
// listing is read again after Refresh passes, which bounds the delay.
type DirCache struct {
	// Refresh is after how many passes a listing is read again (default 10).
	Refresh int

	mu   sync.Mutex
	pass int
	// pods holds, by pod cgroup path, the pod directory's listing in each
	// hierarchy. One entry per pod (not per directory) and one listing
	// shared by the hierarchies that hold the same names: at 10,000 pods
	// in a dozen hierarchies a cache keyed by full path, with a copy of
	// every name per hierarchy, was most of the daemon's memory.
	pods map[string]*cachedPod
}

type cachedPod struct {
	// changed records, for checkedPass, whether the pod's directory
	// changed in the first hierarchy it was met in.
	checkedPass int
	changed     bool
	dirs        []cachedDir // by hierarchy index
}

// cachedDir is 16 bytes: one per pod per hierarchy, and the hierarchies
// that list the same names share one listing.
type cachedDir struct {
	nlink    uint32 // of a pod dir: 2 plus its few container dirs
	readPass int32  // 0: none
	children *[]string
}

func (d cachedDir) names() []string {
	if d.children == nil {
		return nil
	}
	return *d.children
}

// nextPass starts a pass and forgets listings older than Refresh passes.
func (c *DirCache) nextPass() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pass++
	if c.pods == nil {
		c.pods = map[string]*cachedPod{}
	}
	for k, p := range c.pods {
		kept := false
		for i := range p.dirs {
			if d := &p.dirs[i]; d.readPass != 0 && int(d.readPass) < c.pass-c.refresh() {
				*d = cachedDir{}
			} else if d.readPass != 0 {
				kept = true
			}
		}
		if !kept {
			delete(c.pods, k)
		}
	}
}

func (c *DirCache) refresh() int {
	if c.Refresh > 0 {
		return c.Refresh
	}
	return 10
}

// list returns the subdirectories of the directory of pod (a cgroup path)
// in hierarchy hi of nh, mounted at mountpoint, from the cache when its
// link count is the one seen when it was last read.
func (c *DirCache) list(mountpoint string, hi, nh int, pod string) ([]string, error) {
	if c == nil {
		return readDirs(mountpoint + pod)
	}
	c.mu.Lock()
	p := c.pods[pod]
	if p == nil {
		p = &cachedPod{dirs: make([]cachedDir, max(nh, hi+1))}
		c.pods[strings.Clone(pod)] = p
	}
	for len(p.dirs) <= hi {
		p.dirs = append(p.dirs, cachedDir{})
	}
	checked := p.checkedPass == c.pass
	changed := p.changed
	d := p.dirs[hi]
	ok := d.readPass != 0
	trusted := checked && !changed && ok && c.pass-int(d.readPass) < c.refresh()
	c.mu.Unlock()
	if trusted {
		return d.names(), nil
	}
	dir := mountpoint + pod
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	c.mu.Lock()
	fresh := ok && uint64(d.nlink) == uint64(st.Nlink) && c.pass-int(d.readPass) < c.refresh()
	if !checked {
		p.checkedPass, p.changed = c.pass, !fresh
	}
	c.mu.Unlock()
	if fresh {
		return d.names(), nil
	}
	children, err := readDirs(dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// The same names in another hierarchy: share that listing.
	var shared *[]string
	for i := range p.dirs {
		if o := p.dirs[i]; i != hi && o.readPass != 0 && o.children != nil && slices.Equal(*o.children, children) {
			shared = o.children
			break
		}
	}
	if shared == nil {
		shared = &children
	}
	p.dirs[hi] = cachedDir{nlink: uint32(st.Nlink), readPass: int32(c.pass), children: shared}
	c.mu.Unlock()
	return *shared, nil
}
