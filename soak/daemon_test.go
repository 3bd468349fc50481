package soak

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// buildDaemon compiles cmd/cgroupcleand into dir: the soak runs the
// binary users run.
func buildDaemon(t *testing.T, dir string) string {
	t.Helper()
	// A prebuilt binary where there is no Go toolchain (the node test's VM).
	if bin := os.Getenv("CGROUPCLEAN_SOAK_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "cgroupcleand")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cgroupcleand")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cgroupcleand: %v\n%s", err, out)
	}
	return bin
}

// daemonProc is `cgroupcleand run` as a child of the harness, in a
// private mount namespace of its own: the rmdir fault bind-mounts a pod
// cgroup onto itself there, so the daemon's rmdir gets EBUSY while the
// host (and the cleanup) never sees the mount, and a SIGKILLed daemon
// takes its mounts with it.
type daemonProc struct {
	bin, cfg, logPath string

	cmd      *exec.Cmd
	exited   chan struct{}
	state    *os.ProcessState
	expected bool // the harness killed or stopped it
	starts   int
}

// start runs the daemon; mounts are the directories to bind-mount onto
// themselves before it execs (the rmdir blockers still in force).
func (d *daemonProc) start(mounts []string) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	// Its own lock, as testbed.PrivateLockArgv gives it.
	fmt.Fprintf(&script, "mkdir -p -m 0700 %[1]s\nmount -t tmpfs -o mode=0700,size=1m cgroupclean-test-lock %[1]s\n", testbed.LockDir)
	for _, m := range mounts {
		fmt.Fprintf(&script, "mount --bind '%s' '%s'\n", m, m)
	}
	fmt.Fprintf(&script, "exec '%s' run --config '%s'\n", d.bin, d.cfg)
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// unshare execs sh, which execs the daemon: one PID throughout.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Not a systemd service here: no notify socket, no watchdog, no journal.
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start cgroupcleand: %w", err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited, d.expected, d.state = cmd, exited, false, nil
	d.starts++
	go func() { _ = cmd.Wait(); d.state = cmd.ProcessState; close(exited) }()
	return d.waitExec(30 * time.Second)
}

// waitExec waits until unshare and sh have exec'd the daemon: only then is
// it in its own mount namespace, with the blockers mounted. Entering it
// earlier (nsenter -t PID) would enter the harness's namespace instead, and
// a blocker mounted there does not stop the daemon's rmdir.
func (d *daemonProc) waitExec(limit time.Duration) error {
	want, err := filepath.Abs(d.bin)
	if err == nil {
		want, err = filepath.EvalSymlinks(want)
	}
	if err != nil {
		return err
	}
	exe := fmt.Sprintf("/proc/%d/exe", d.pid())
	deadline := time.Now().Add(limit)
	for {
		if got, err := os.Readlink(exe); err == nil && got == want {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("cgroupcleand exited at start: %v", d.state)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroupcleand (pid %d) not exec'd after %s", d.pid(), limit)
		}
	}
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

func (d *daemonProc) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// kill9 SIGKILLs the daemon by the PID the harness started and reaps it.
func (d *daemonProc) kill9() error {
	if !d.running() {
		return fmt.Errorf("kill9: daemon not running (%v)", d.state)
	}
	d.expected = true
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill daemon: %w", err)
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("daemon pid %d alive 10s after SIGKILL", d.pid())
	}
}

// stop is systemctl stop: SIGTERM, and it must exit 0.
func (d *daemonProc) stop() error {
	if !d.running() {
		return nil
	}
	d.expected = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		return fmt.Errorf("daemon ignored SIGTERM for 20s")
	}
	if !d.state.Success() {
		return fmt.Errorf("daemon exited %v after SIGTERM, want 0", d.state)
	}
	return nil
}

// inNS runs a command in the daemon's mount namespace.
func (d *daemonProc) inNS(args ...string) error {
	out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(d.pid()), "-m", "--"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nsenter %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return nil
}

// entry is one line of the daemon's JSON log.
type entry struct {
	Off    int64 // byte offset of the line in the log
	ID     string
	Path   string
	Reason string
	Msg    string
	Level  string
	Count  int // COUNT of a kept summary
}

// logWatch reads the daemon's JSON log as it grows (every daemon start
// appends to the same file).
type logWatch struct {
	path    string
	off     int64
	partial []byte
	nonJSON []string
}

// poll returns the complete lines written since the last call.
func (l *logWatch) poll() ([]entry, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	start := l.off - int64(len(l.partial))
	data = append(l.partial, data...)
	l.off += int64(len(data) - len(l.partial))
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		l.partial = data
		return nil, nil
	}
	l.partial = append([]byte(nil), data[last+1:]...)
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(data[:last+1]))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	off := start
	for sc.Scan() {
		line := sc.Bytes()
		lineOff := off
		off += int64(len(line)) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			l.nonJSON = append(l.nonJSON, string(line))
			continue
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		count, _ := m["COUNT"].(float64) // a JSON number
		out = append(out, entry{Off: lineOff, ID: s("MESSAGE_ID"), Path: s("CGROUP_PATH"), Reason: s("REASON"), Msg: s("msg"), Level: s("level"), Count: int(count)})
	}
	return out, sc.Err()
}

// size is the log's length now.
func (l *logWatch) size() int64 {
	st, err := os.Stat(l.path)
	if err != nil {
		return 0
	}
	return st.Size()
}
