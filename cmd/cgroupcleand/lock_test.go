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
// "--") instead of the tests: a second, real cgroupcleand process.
const cliEnv = "CGROUPCLEAN_TEST_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) != "" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cliProcess starts cgroupcleand args as a child process.
func cliProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
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
	held, err := daemon.AcquireLock(t.Context(), state, false)
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())

	for _, args := range [][]string{{"clean", "--config", cfg}, {"run", "--config", cfg}} {
		cmd, out := cliProcess(t, args...)
		err := cmd.Wait()
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(out.String(), "(pid "+self+") holds "+filepath.Join(state, daemon.LockFile)) {
			t.Errorf("%v while the lock is held: %v, output %q; want exit 1 naming pid %s", args, err, out, self)
		}
	}
	for _, args := range [][]string{{"scan", "--config", cfg}, {"clean", "--dry-run", "--config", cfg}} {
		cmd, out := cliProcess(t, args...)
		_ = cmd.Wait()
		if strings.Contains(out.String(), "holds") {
			t.Errorf("%v took the lock: %q", args, out)
		}
	}

	waiter, out := cliProcess(t, "clean", "--wait", "--config", cfg)
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
	l, err := daemon.AcquireLock(t.Context(), state, false)
	if err != nil {
		t.Fatalf("lock after the second cleaner exited: %v", err)
	}
	l.Release()
}
