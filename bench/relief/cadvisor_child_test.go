package relief

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/google/cadvisor/lib/cache/memory"
	"github.com/google/cadvisor/lib/container"
	"github.com/google/cadvisor/lib/manager"
	info "github.com/google/cadvisor/lib/model"
	"github.com/google/cadvisor/lib/utils/sysfs"
	"golang.org/x/sys/unix"

	// The container handlers kubelet registers.
	_ "github.com/google/cadvisor/lib/container/containerd/install"
	_ "github.com/google/cadvisor/lib/container/crio/install"
	_ "github.com/google/cadvisor/lib/container/systemd/install"
)

// Environment of the cAdvisor child (this test binary started again).
const (
	cadvisorRootsEnv      = "RELIEF_CADVISOR_ROOTS"
	cadvisorContainerdEnv = "RELIEF_CADVISOR_CONTAINERD"
	// cadvisorViewEnv names the test's cgroup root: the child, in a mount
	// namespace of its own, binds it over the top of every hierarchy.
	cadvisorViewEnv = "RELIEF_CADVISOR_VIEW"
)

// kubelet's cAdvisor settings (pkg/kubelet/cadvisor/cadvisor_linux.go):
// stats kept 2 minutes, housekeeping every 10 s, dynamic up to 15 s, and
// its metric set (DiskUsageMetrics: LocalStorageCapacityIsolation is on by
// default).
const (
	statsCacheDuration          = 2 * time.Minute
	maxHousekeepingInterval     = 15 * time.Second
	defaultHousekeepingInterval = "10s"
	statsQueryInterval          = 10 * time.Second
)

func kubeletMetricSet() container.MetricSet {
	return container.MetricSet{
		container.CpuUsageMetrics:     struct{}{},
		container.MemoryUsageMetrics:  struct{}{},
		container.CpuLoadMetrics:      struct{}{},
		container.DiskIOMetrics:       struct{}{},
		container.NetworkUsageMetrics: struct{}{},
		container.AppMetrics:          struct{}{},
		container.ProcessMetrics:      struct{}{},
		container.OOMMetrics:          struct{}{},
		container.DiskUsageMetrics:    struct{}{},
	}
}

// cadvisorChild runs cAdvisor's manager as kubelet does, restricted to the
// cgroup roots in its environment, and answers its parent on stdin/stdout:
// "query on|off" turns kubelet's stats-provider query (every 10 s) on or
// off, "count" prints the tracked containers and inotify watches, EOF ends.
func cadvisorChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "cadvisor child:", err)
		return 1
	}
	overrides := map[string]string{
		"housekeeping_interval":     defaultHousekeepingInterval,
		"event_storage_event_limit": "default=0",
		"event_storage_age_limit":   "default=0",
	}
	if sock := os.Getenv(cadvisorContainerdEnv); sock != "" {
		overrides["containerd"] = sock
	}
	for name, v := range overrides {
		if err := flag.Set(name, v); err != nil {
			return fail(fmt.Errorf("cAdvisor flag %s: %w", name, err))
		}
	}
	if root := os.Getenv(cadvisorViewEnv); root != "" {
		if err := privateView(root); err != nil {
			return fail(err)
		}
	}
	roots := strings.Split(os.Getenv(cadvisorRootsEnv), ",")
	interval, dynamic := maxHousekeepingInterval, true
	m, err := manager.New(memory.New(statsCacheDuration, nil), sysfs.NewRealSysFs(),
		manager.HousekeepingConfig{Interval: &interval, AllowDynamic: &dynamic},
		kubeletMetricSet(), roots, nil, "", 0)
	if err != nil {
		return fail(fmt.Errorf("manager.New: %w", err))
	}
	if err := m.Start(); err != nil {
		return fail(fmt.Errorf("manager.Start: %w", err))
	}
	var query atomic.Bool
	go func() {
		for range time.Tick(statsQueryInterval) {
			if query.Load() {
				// What kubelet's cAdvisor stats provider asks for.
				_, _ = m.GetContainerInfoV2("/", info.RequestOptions{IdType: info.TypeName, Count: 2, Recursive: true})
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); cmd {
		case "query on", "query off":
			query.Store(cmd == "query on")
			fmt.Println("ok")
		case "count":
			fmt.Printf("tracked=%d watches=%d\n", trackedContainers(m), inotifyWatches())
		default:
			fmt.Printf("error unknown command %q\n", cmd)
		}
	}
	return 0
}

// trackedContainers counts the containers the manager holds (its debug
// listing: one unindented line per container).
func trackedContainers(m manager.Manager) int {
	n := 0
	for _, line := range m.DebugInfo()["Managed containers"] {
		if !strings.HasPrefix(line, "\t") {
			n++
		}
	}
	return n
}

// inotifyWatches counts this process's inotify watches.
func inotifyWatches() int {
	fds, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		return -1
	}
	n := 0
	for _, fd := range fds {
		b, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		n += strings.Count(string(b), "inotify wd:")
	}
	return n
}

// privateView makes the test's cgroup root the top of every hierarchy in
// this process's mount namespace (made by the parent with CLONE_NEWNS):
// cAdvisor watches and rescans whole hierarchies, and the host's are
// shared with other test trees. The node cAdvisor sees is the test's tree.
func privateView(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	hs, err := hierarchy.Discover("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, h := range hs {
		src := filepath.Join(h.Mountpoint, root)
		if err := unix.Mount(src, h.Mountpoint, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", src, h.Mountpoint, err)
		}
	}
	return nil
}
