package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// ProcessMap is where every process of the node is, by hierarchy, read
// from /proc/<pid>/cgroup in one pass. Counting the processes of thousands
// of orphan candidates from it costs one read per process instead of one
// cgroup.procs open per directory per hierarchy. It is a snapshot for
// planning only: the final check before each removal reads cgroup.procs.
type ProcessMap struct {
	// paths holds, per hierarchy name, the sorted cgroup path of every
	// process (one entry per process).
	paths map[string][]string
}

// ScanProcesses reads procRoot/<pid>/cgroup for every process. Processes
// that exit meanwhile are skipped. Paths are as this process's cgroup
// namespace shows them, which is the host's for the daemon.
func ScanProcesses(procRoot string, hs []hierarchy.Hierarchy) (*ProcessMap, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	names := map[string]bool{}
	for _, h := range hs {
		names[h.Name] = true
	}
	m := &ProcessMap{paths: map[string][]string{}}
	for _, e := range entries {
		if !isPID(e.Name()) {
			continue
		}
		data, err := readSmallFile(filepath.Join(procRoot, e.Name(), "cgroup"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoSuchProcess) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("scan processes: %w", err)
		}
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			name, path, ok := parseCgroupLine(string(line))
			if ok && names[name] {
				m.paths[name] = append(m.paths[name], path)
			}
		}
	}
	for _, p := range m.paths {
		sort.Strings(p)
	}
	return m, nil
}

// Count returns how many processes are in path or below, summed over the
// hierarchies (a process in the cgroup in several hierarchies counts in
// each: only zero matters).
func (m *ProcessMap) Count(path string) int {
	n := 0
	for _, paths := range m.paths {
		i := sort.SearchStrings(paths, path)
		for ; i < len(paths); i++ {
			p := paths[i]
			if p != path && !strings.HasPrefix(p, path+"/") {
				if !strings.HasPrefix(p, path) {
					break
				}
				continue // a sibling such as path+"-x" sorts between
			}
			n++
		}
	}
	return n
}

// parseCgroupLine turns "4:cpu,cpuacct:/kubepods/x" into the hierarchy
// name used by package hierarchy ("cpu,cpuacct", "name=systemd",
// "unified" for the v2 line "0::/x") and the path.
func parseCgroupLine(line string) (name, path string, ok bool) {
	_, rest, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", false
	}
	ctrls, path, ok := strings.Cut(rest, ":")
	if !ok || !strings.HasPrefix(path, "/") {
		return "", "", false
	}
	if ctrls == "" {
		return "unified", path, true
	}
	var list, named []string
	for _, c := range strings.Split(ctrls, ",") {
		if strings.HasPrefix(c, "name=") {
			named = append(named, c)
		} else if c != "" {
			list = append(list, c)
		}
	}
	if len(list) == 0 {
		if len(named) == 0 {
			return "", "", false
		}
		return named[0], path, true
	}
	sort.Strings(list)
	return strings.Join(list, ","), path, true
}

func isPID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// errNoSuchProcess is what reading /proc/<pid>/cgroup of a process that
// just exited gives (ESRCH).
var errNoSuchProcess = errors.New("no such process")

func readSmallFile(path string) ([]byte, error) {
	data, err := cgfs.ReadSmall(path)
	if errors.Is(err, syscall.ESRCH) {
		return nil, errNoSuchProcess
	}
	return data, err
}
