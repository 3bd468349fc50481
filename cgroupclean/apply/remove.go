package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

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

// RemoveTree removes path in every hierarchy: its subdirectories first,
// deepest first, each with a single non-recursive rmdir. It never unlinks a
// file and never follows a symlink. It goes on with the other hierarchies
// after a failure, so a cgroup leaked in one hierarchy does not block the
// others, and reports every outcome.
func RemoveTree(hs []hierarchy.Hierarchy, path string, before BeforeRemove) ([]HierarchyResult, error) {
	var results []HierarchyResult
	var errs []error
	for _, h := range hs {
		dir := h.Path(path)
		res := HierarchyResult{Hierarchy: h.Name}
		dirs, err := subtree(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Absent = true
		case err != nil:
			res.Err = err
		default:
			if before != nil {
				before(h, dir)
			}
			for _, d := range dirs {
				if err := rmdir(d); err != nil {
					res.Err = err
					break
				}
				res.Removed++
			}
		}
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, res.Err))
		}
		results = append(results, res)
	}
	return results, errors.Join(errs...)
}

// subtree lists dir and every directory below it, deepest first. A symlink
// is not a cgroup: it is neither followed nor removed, and since rmdir of
// its parent then fails, the tree is kept.
func subtree(dir string) ([]string, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	var dirs []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Longer paths are deeper: children before their parent.
	sort.SliceStable(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs, nil
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
