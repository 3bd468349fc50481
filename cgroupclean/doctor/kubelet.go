package doctor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// KubeletRetryLine is what kubelet logs each time it fails to remove a pod
// cgroup (pkg/kubelet/cm/pod_container_manager_linux.go); it retries at
// every housekeeping, forever.
const KubeletRetryLine = "Failed to delete cgroup paths"

// retryCost is what kubelet's retries cost, read from the node.
type retryCost struct {
	pid         int
	cgroup      string // kubelet's cgroup, e.g. /system.slice/kubelet.service
	unit        string // its systemd unit, when it runs as one
	linesPerMin int
	journalErr  error
	cpuShare    float64 // CPUs busy over window, from the cgroup's CPU usage
	window      time.Duration
	cpuErr      error
}

func (k *retryCost) finding() Finding {
	f := Finding{ID: IDKubeletRetry, Subject: "kubelet", Value: float64(k.linesPerMin),
		Threshold: "> 0 lines a minute",
		Source:    "kubelet logs \"" + KubeletRetryLine + "\" at every housekeeping (every 1-2 s) for each pod cgroup it cannot remove, and retries forever (kubernetes#106957, #112151, #123766)",
		Refs:      []string{"https://github.com/kubernetes/kubernetes/issues/106957"}}
	var parts []string
	switch {
	case k.journalErr != nil:
		parts = append(parts, "its journal could not be read: "+k.journalErr.Error())
	case k.unit == "":
		parts = append(parts, fmt.Sprintf("kubelet (pid %d, cgroup %s) is not a systemd service: its log lines were not counted", k.pid, k.cgroup))
	default:
		parts = append(parts, fmt.Sprintf("%d %q lines in the last minute (journalctl -u %s)", k.linesPerMin, KubeletRetryLine, k.unit))
	}
	switch {
	case k.cpuErr != nil:
		parts = append(parts, "its CPU could not be read: "+k.cpuErr.Error())
	case k.window <= 0:
		// A caller that cannot wait (the daemon's periodic checks).
	default:
		parts = append(parts, fmt.Sprintf("kubelet CPU %.0f%% of one CPU over %s (cgroup %s)", 100*k.cpuShare, k.window, k.cgroup))
	}
	f.Measured = strings.Join(parts, "; ")
	f.Severity = OK
	if k.linesPerMin > 0 {
		f.Severity = Warn
		f.Action = "kubelet keeps retrying cgroups it cannot remove, and will not stop (restarting it does not help): remove the cause the leak.busy.* findings name; `journalctl -u " + k.unit + " -g '" + KubeletRetryLine + "'` names the cgroups"
	}
	return f
}

// kubeletCost finds kubelet by its process name and reads its retry cost;
// nil when kubelet does not run here.
func kubeletCost(ctx context.Context, hs []hierarchy.Hierarchy, proc string, window time.Duration) (*retryCost, error) {
	pid, err := findProcess(proc, "kubelet")
	if err != nil || pid == 0 {
		return nil, err
	}
	k := &retryCost{pid: pid, window: window}
	cpuFile, cg, err := cpuUsageFile(hs, proc, pid)
	k.cgroup = cg
	if base := filepath.Base(cg); strings.HasSuffix(base, ".service") {
		k.unit = base
	}
	if k.unit != "" {
		k.linesPerMin, k.journalErr = countJournalLines(ctx, k.unit, time.Minute, KubeletRetryLine)
	}
	if err != nil {
		k.cpuErr = err
		return k, nil
	}
	if window <= 0 {
		return k, nil
	}
	before, err := readCPUUsage(cpuFile)
	start := time.Now()
	if err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(window):
		}
	}
	var after time.Duration
	if err == nil {
		after, err = readCPUUsage(cpuFile)
	}
	if err != nil {
		k.cpuErr = err
		return k, nil
	}
	k.window = time.Since(start).Round(time.Millisecond)
	if k.window > 0 {
		k.cpuShare = float64(after-before) / float64(k.window)
	}
	return k, nil
}

// findProcess returns the lowest PID whose comm is name (0: none).
func findProcess(proc, name string) (int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", name, err)
	}
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name && (best == 0 || pid < best) {
			best = pid
		}
	}
	return best, nil
}

// cpuUsageFile is the file that counts pid's cgroup's CPU time: v2
// cpu.stat (usage_usec), else v1 cpuacct.usage (ns). cg is the cgroup path.
func cpuUsageFile(hs []hierarchy.Hierarchy, proc string, pid int) (file, cg string, err error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	var v2, acct string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpuacct" {
				acct = parts[2]
			}
		}
	}
	for _, h := range hs {
		if h.Version == 2 && v2 != "" {
			if f := h.Path(filepath.Join(v2, "cpu.stat")); fileHas(f, "usage_usec") {
				return f, v2, nil
			}
		}
	}
	for _, h := range hs {
		if h.Version == 1 && h.Has("cpuacct") && acct != "" {
			return h.Path(filepath.Join(acct, "cpuacct.usage")), acct, nil
		}
	}
	cg = v2
	if cg == "" {
		cg = acct
	}
	return "", cg, fmt.Errorf("no cpu.stat with usage_usec nor cpuacct.usage for pid %d's cgroup %q", pid, cg)
}

func fileHas(path, word string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(word))
}

// readCPUUsage reads a cgroup's CPU time from cpu.stat or cpuacct.usage.
func readCPUUsage(file string) (time.Duration, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	if filepath.Base(file) == "cpuacct.usage" {
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", file, err)
		}
		return time.Duration(ns), nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", file, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec", file)
}

// countJournalLines counts the unit's journal messages of the last window
// that hold what.
func countJournalLines(ctx context.Context, unit string, window time.Duration, what string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	since := "@" + strconv.FormatInt(time.Now().Add(-window).Unix(), 10)
	cmd := exec.CommandContext(ctx, "journalctl", "--no-pager", "-q", "-o", "cat", "-u", unit, "--since", since)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("journalctl -u %s: %w: %s", unit, err, strings.TrimSpace(stderr.String()))
	}
	return countLines(out, what), nil
}

// countLines counts the lines of out that hold what.
func countLines(out []byte, what string) int {
	n := 0
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.Contains(line, []byte(what)) {
			n++
		}
	}
	return n
}
