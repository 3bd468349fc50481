package testbed

import (
	"os/exec"
)

// LockDir is where cgroupcleand takes its one-cleaner lock (daemon.LockDir;
// a test in daemon keeps the two equal). It is fixed, so every test that
// runs `cgroupcleand clean` or `run` as a process runs it through
// PrivateLockArgv: go test runs packages in parallel, and two tests
// sharing the machine's lock would refuse or wait for each other.
const LockDir = "/run/cgroupclean"

// privateLockScript mounts a fresh tmpfs (root's, 0700) on LockDir in the
// mount namespace unshare made, then execs the command: the tmpfs goes
// with the namespace when the command exits. The mount point is made on
// the host's /run if missing, root's and 0700, as cgroupcleand makes it.
const privateLockScript = `set -e
mkdir -p -m 0700 ` + LockDir + `
mount -t tmpfs -o mode=0700,size=1m cgroupclean-test-lock ` + LockDir + `
exec "$@"`

// PrivateLockArgv is argv run in a mount namespace of its own (private
// propagation) with a tmpfs on LockDir: a cgroupcleand started so takes a
// lock no other test sees. unshare execs sh, which execs argv[0]: one PID
// throughout, so signals and wait4 reach the command itself. Everything
// else of the caller's mount namespace (a test journald's /run/systemd)
// stays visible.
func PrivateLockArgv(argv ...string) []string {
	return append([]string{"unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", privateLockScript, "sh"}, argv...)
}

// PrivateLockCommand is exec.Command of PrivateLockArgv(argv...).
func PrivateLockCommand(argv ...string) *exec.Cmd {
	a := PrivateLockArgv(argv...)
	return exec.Command(a[0], a[1:]...)
}
