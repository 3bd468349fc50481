package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// cliEnv makes the test binary run the command line (its arguments after
// "--") instead of the tests: a second, real cgroupcleand process. Its
// value is the lock directory, or "-" for the real one (daemon.LockDir).
const cliEnv = "CGROUPCLEAN_TEST_CLI"

// testCLI is the in-process command line of the tests: a lock directory
// of this test binary's own, so it never meets another package's tests.
var testCLI cli

func TestMain(m *testing.M) {
	if dir := os.Getenv(cliEnv); dir != "" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		c := cli{lockDir: dir}
		if dir == "-" {
			c.lockDir = daemon.LockDir
		}
		os.Exit(c.run(args, os.Stdout, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "cgclean-cli-lock-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testCLI = cli{lockDir: dir}
	rc := m.Run()
	os.RemoveAll(dir)
	os.Exit(rc)
}

// cliProcess starts cgroupcleand args as a child process that takes its
// lock in lockDir.
func cliProcess(t *testing.T, lockDir string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), cliEnv+"="+lockDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

// One cleaner at a time, between real processes: while this process holds
// the lock, a `clean` in another process refuses at once, naming this
// process's PID, and removes nothing; `clean --wait` starts once the lock
// is free; `scan` and `clean --dry-run` take no lock.
func TestSecondCleanerRefused(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "lock")
	uid := testbed.RandomUID()
	if err := r.Mkdir("kubepods/burstable/pod" + uid); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "c.toml")
	// A runtime that does not answer: even a cleaner that ran would
	// remove nothing here.
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n[log]\nformat = \"text\"\n",
		"unix://"+filepath.Join(dir, "none.sock"), r.Rel("kubepods"), dir, state)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	lockDir := t.TempDir()
	held, err := daemon.AcquireLock(t.Context(), lockDir, false)
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())

	for _, args := range [][]string{{"clean", "--config", cfg}, {"run", "--config", cfg}} {
		cmd, out := cliProcess(t, lockDir, args...)
		err := cmd.Wait()
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(out.String(), "(pid "+self+") holds "+filepath.Join(lockDir, daemon.LockFile)) {
			t.Errorf("%v while the lock is held: %v, output %q; want exit 1 naming pid %s", args, err, out, self)
		}
	}
	for _, args := range [][]string{{"scan", "--config", cfg}, {"clean", "--dry-run", "--config", cfg}} {
		cmd, out := cliProcess(t, lockDir, args...)
		_ = cmd.Wait()
		if strings.Contains(out.String(), "holds") {
			t.Errorf("%v took the lock: %q", args, out)
		}
	}

	waiter, out := cliProcess(t, lockDir, "clean", "--wait", "--config", cfg)
	done := make(chan struct{})
	go func() { _ = waiter.Wait(); close(done) }()
	select {
	case <-done:
		t.Fatalf("clean --wait did not wait: %q", out)
	case <-time.After(500 * time.Millisecond):
	}
	held.Release()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("clean --wait still waiting after the lock was released")
	}
	// It ran its pass (the runtime is unreachable: exit 1, nothing removed).
	if !strings.Contains(out.String(), "UNREACHABLE") || r.Exists("kubepods/burstable/pod"+uid) != len(r.Hierarchies) {
		t.Errorf("clean --wait after release: %q", out)
	}
	// Released by the exit: the lock is free again.
	l, err := daemon.AcquireLock(t.Context(), lockDir, false)
	if err != nil {
		t.Fatalf("lock after the second cleaner exited: %v", err)
	}
	l.Release()
}

// One cleaner per machine, whatever the state directory: the real binary's
// lock is in daemon.LockDir (a private tmpfs here, testbed.PrivateLockArgv),
// so a `clean` with another state_dir or --state-dir than the running
// daemon's is refused, naming the daemon's PID and the lock.
func TestOneCleanerWhateverTheStateDir(t *testing.T) {
	testbed.RequireRoot(t)
	dir := t.TempDir()
	cfgs := make([]string, 2)
	for i := range cfgs {
		cfgs[i] = filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
		writeNoRuntimeConfig(t, cfgs[i], filepath.Join(dir, fmt.Sprintf("state%d", i)))
	}
	lock := filepath.Join(daemon.LockDir, daemon.LockFile)
	script := `export CGROUPCLEAN_TEST_CLI=-
"$0" -test.run='^$' -- run --config "$1" >"$3/run.log" 2>&1 &
pid=$!
i=0
until [ -s ` + lock + ` ]; do
	i=$((i+1)); if [ $i -gt 400 ]; then echo "run never took the lock"; cat "$3/run.log"; kill $pid; exit 3; fi
	sleep 0.05
done
echo "daemon=$pid"
"$0" -test.run='^$' -- clean --config "$2"; echo "rc=$?"
"$0" -test.run='^$' -- clean --config "$1" --state-dir "$3/other"; echo "rc=$?"
kill $pid; wait $pid; echo "run rc=$?"`
	cmd := testbed.PrivateLockCommand("/bin/sh", "-c", script, os.Args[0], cfgs[0], cfgs[1], dir)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
	var daemonPID string
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(l, "daemon="); ok {
			daemonPID = p
		}
	}
	want := "(pid " + daemonPID + ") holds " + lock
	if daemonPID == "" || strings.Count(string(out), want) != 2 || strings.Count(string(out), "rc=1\n") != 2 {
		t.Errorf("want both cleans refused (exit 1) with %q", want)
	}
	if !strings.Contains(string(out), "run rc=0") {
		t.Errorf("the daemon did not run until its SIGTERM")
	}
}

// A state directory that someone other than root could write is refused
// by `clean` and `run`, naming the path, the owner and the mode, before
// anything is done: a local user could otherwise plant the memcg limits.
func TestStateDirMustBePrivate(t *testing.T) {
	testbed.RequireRoot(t)
	for _, tc := range []struct {
		name string
		uid  int
		mode os.FileMode
		want string
	}{
		{"world-writable", 0, 0o777, "mode 0777"},
		{"sticky world-writable", 0, 0o777 | os.ModeSticky, "mode 1777"},
		{"group-writable", 0, 0o770, "mode 0770"},
		{"not root's", 65534, 0o700, "uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(state, tc.uid, tc.uid); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "c.toml")
			writeNoRuntimeConfig(t, cfg, state)
			code, out, errs := runCLI("clean", "--config", cfg)
			if code != 1 || out != "" || !strings.Contains(errs, "state directory "+state) || !strings.Contains(errs, tc.want) {
				t.Errorf("clean: exit %d, stdout %q, stderr %q; want refused naming %s and %q", code, out, errs, state, tc.want)
			}
			// run in a process of its own: were it accepted, it would not end.
			cmd, buf := cliProcess(t, t.TempDir(), "run", "--config", cfg)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("run still running with state dir %s mode %s", state, tc.mode)
			}
			if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(buf.String(), "state directory "+state) || !strings.Contains(buf.String(), tc.want) {
				t.Errorf("run: exit %d, output %q", cmd.ProcessState.ExitCode(), buf)
			}
		})
	}
}

// writeNoRuntimeConfig writes a config whose runtime never answers and
// whose pod root does not exist: a cleaner that ran would remove nothing.
func writeNoRuntimeConfig(t *testing.T, path, stateDir string) {
	t.Helper()
	dir := filepath.Dir(path)
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = \"/cgclean-none\"\nkubelet_root = %q\n[clean]\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n[log]\nformat = \"text\"\n",
		"unix://"+filepath.Join(dir, "none.sock"), dir, stateDir)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
