package inventory

import (
	"io/fs"
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
	dirs map[string]cachedDir
	// changed records, for this pass, whether each pod's directory changed
	// in the first hierarchy it was met in.
	changed map[string]bool
}

type cachedDir struct {
	nlink    uint64
	readPass int
	children []string
}

// nextPass starts a pass and forgets directories not seen in the last one.
func (c *DirCache) nextPass() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pass++
	if c.dirs == nil {
		c.dirs = map[string]cachedDir{}
	}
	c.changed = map[string]bool{}
	for k, d := range c.dirs {
		if d.readPass < c.pass-c.refresh() {
			delete(c.dirs, k)
		}
	}
}

func (c *DirCache) refresh() int {
	if c.Refresh > 0 {
		return c.Refresh
	}
	return 10
}

// list returns the subdirectories of pod directory dir (the cgroup path
// pod in one hierarchy), from the cache when its link count is the one seen
// when it was last read.
func (c *DirCache) list(dir, pod string) ([]string, error) {
	if c == nil {
		return readDirs(dir)
	}
	c.mu.Lock()
	changed, checked := c.changed[pod]
	d, ok := c.dirs[dir]
	trusted := checked && !changed && ok && c.pass-d.readPass < c.refresh()
	c.mu.Unlock()
	if trusted {
		return d.children, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	c.mu.Lock()
	fresh := ok && d.nlink == uint64(st.Nlink) && c.pass-d.readPass < c.refresh()
	if !checked {
		c.changed[pod] = !fresh
	}
	c.mu.Unlock()
	if fresh {
		return d.children, nil
	}
	children, err := readDirs(dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.dirs[dir] = cachedDir{nlink: uint64(st.Nlink), readPass: c.pass, children: children}
	c.mu.Unlock()
	return children, nil
}
