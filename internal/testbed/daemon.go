package testbed

import (
	"cmp"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NodeConfig is the configuration of a cgroupcleand under test: the
// cgroupfs driver, no systemd, no memcg watchdog, an orphan removed at its
// ConfirmPasses-th sighting, passes Interval apart, text logs.
type NodeConfig struct {
	Endpoint    string        // CRI endpoint
	Timeout     time.Duration // runtime.timeout (0: 2s)
	PodRoot     string        // the cgroup path of the node's pod root
	KubeletRoot string
	StateDir    string
	Interval    time.Duration
	// MetricsPort serves /metrics on 127.0.0.1 (0: off).
	MetricsPort int
	// Clean holds extra `key = value` lines of [clean] (mode, limits).
	Clean []string
	// DoctorEvery is [doctor] every_passes.
	DoctorEvery int
	// ConfirmPasses is [clean] confirm_passes (0: 1).
	ConfirmPasses int
	// LogLevel is [log] level (empty: info).
	LogLevel string
	// Memcg holds the `key = value` lines of [memcg] (nil: mode = "off").
	Memcg []string
}

// TOML is the configuration file.
func (c NodeConfig) TOML() string {
	memcg := c.Memcg
	if len(memcg) == 0 {
		memcg = []string{`mode = "off"`}
	}
	listen := ""
	if c.MetricsPort > 0 {
		listen = fmt.Sprintf("127.0.0.1:%d", c.MetricsPort)
	}
	return fmt.Sprintf(`[runtime]
endpoint = %q
timeout = %q

[cgroup]
pod_root = %q
driver = "cgroupfs"
kubelet_root = %q

[clean]
min_age = "0s"
confirm_passes = %d
use_systemd = "never"
%s

[daemon]
interval = %q
jitter = 0.0
state_dir = %q

[log]
level = %q
format = "text"

[memcg]
%s

[metrics]
listen = %q

[doctor]
every_passes = %d
`, c.Endpoint, cmp.Or(c.Timeout, 2*time.Second).String(), c.PodRoot, c.KubeletRoot, max(c.ConfirmPasses, 1), strings.Join(c.Clean, "\n"), c.Interval.String(), c.StateDir, cmp.Or(c.LogLevel, "info"), strings.Join(memcg, "\n"), listen, c.DoctorEvery)
}

// FreePort finds a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Daemon is a cgroupcleand (or any long-running command) started by a
// test: stopped with SIGTERM by its PID when the test ends, killed if it
// does not exit within 10 s, its output printed when the test failed.
type Daemon struct {
	Cmd    *exec.Cmd
	Log    *SyncBuffer
	exited chan struct{}
	err    error
}

// StartDaemon starts argv with its output in Log.
func StartDaemon(t testing.TB, argv ...string) *Daemon {
	t.Helper()
	d := &Daemon{Cmd: exec.Command(argv[0], argv[1:]...), Log: &SyncBuffer{}, exited: make(chan struct{})}
	d.Cmd.Stdout, d.Cmd.Stderr = d.Log, d.Log
	if err := d.Cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() { d.err = d.Cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("output of %v (pid %d):\n%s", argv, d.Cmd.Process.Pid, d.Log.String())
		}
	})
	return d
}

// PID is the daemon's process ID.
func (d *Daemon) PID() int { return d.Cmd.Process.Pid }

// Running reports whether it has not exited.
func (d *Daemon) Running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the daemon's PID while it runs (its PID stays ours
// until it is reaped, so the number cannot have been reused).
func (d *Daemon) Signal(sig syscall.Signal) error {
	if !d.Running() {
		return fmt.Errorf("pid %d has exited: %v", d.PID(), d.err)
	}
	return d.Cmd.Process.Signal(sig)
}

// Kill ends it with SIGKILL and waits for it.
func (d *Daemon) Kill() {
	_ = d.Cmd.Process.Kill()
	<-d.exited
}

// Stop sends SIGTERM and waits up to limit, then kills it.
func (d *Daemon) Stop(limit time.Duration) {
	if !d.Running() {
		return
	}
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(limit):
		d.Kill()
	}
}

// WaitFor polls cond every `every` until it holds, and fails the test
// naming what it waited for once limit has passed.
func WaitFor(t testing.TB, limit, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(every)
	}
}
