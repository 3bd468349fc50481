package apply

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned when the kernel refuses an rmdir because the cgroup
// still has tasks or children.
var ErrBusy = errors.New("cgroup busy")

// HierarchyResult is what happened to one directory.
type HierarchyResult struct {
	Hierarchy string `json:"hierarchy"`
	Removed   int    `json:"removed_dirs"`
	Absent    bool   `json:"absent,omitempty"`
	Err       error  `json:"-"`
}

// BeforeRemove runs right before the directories of one hierarchy are
// removed (the memcg watchdog reclaims a memory cgroup's charges there so
// it does not linger as a dying memcg). Its error is logged, not fatal.
type BeforeRemove func(h hierarchy.Hierarchy, dir string)

// Remove removes trees read by ReadTrees: in every hierarchy, the
// directories deepest first, each with a single non-recursive rmdir. It
// never unlinks a file and never follows a symlink (ReadTrees refuses a
// tree holding one). It goes on with the other hierarchies after a
// failure, so a cgroup leaked in one hierarchy does not block the others,
// and reports every outcome. A directory created since the trees were read
// makes its parent's rmdir fail with EBUSY: kept and reported.
//
// The hierarchies are removed last to first (results stay in their
// order): the engine reads the next cgroup's trees first to last while
// this runs, and the two then seldom meet in one hierarchy, whose kernfs
// and cgroup locks they would contend for.
func Remove(t Trees, before BeforeRemove) ([]HierarchyResult, error) {
	results := make([]HierarchyResult, len(t.ByHierarchy))
	var errs []error
	for i := len(t.ByHierarchy) - 1; i >= 0; i-- {
		ht := t.ByHierarchy[i]
		res := HierarchyResult{Hierarchy: ht.Hierarchy.Name, Absent: len(ht.Dirs) == 0}
		if len(ht.Dirs) > 0 && before != nil {
			before(ht.Hierarchy, ht.Dirs[len(ht.Dirs)-1])
		}
		for _, d := range ht.Dirs {
			if err := rmdir(d); err != nil {
				res.Err = err
				break
			}
			res.Removed++
		}
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ht.Hierarchy.Name, res.Err))
		}
		results[i] = res
	}
	return results, errors.Join(errs...)
}

func rmdir(dir string) error {
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("rmdir %s: %w (%w)", dir, ErrBusy, err)
		}
		return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
	}
}
