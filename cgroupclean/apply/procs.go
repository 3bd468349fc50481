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
	"path/filepath"
	"strconv"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/opencontainers/cgroups"
)

// Pids returns the distinct PIDs inside path's subtree in every hierarchy.
// A hierarchy without the directory contributes nothing; any other read
// error is returned, since an unreadable cgroup must be kept.
func Pids(hs []hierarchy.Hierarchy, path string) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, h := range hs {
		dir := h.Path(path)
		if h.Version == 2 {
			populated, err := v2Populated(dir)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !populated {
				continue
			}
		} else if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		pids, err := cgroups.GetAllPids(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("count processes in %s: %w", dir, err)
		}
		for _, p := range pids {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// v2Populated reads "populated" from cgroup.events: 1 when any process is
// in the subtree. It saves walking every child of an empty cgroup.
func v2Populated(dir string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
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
