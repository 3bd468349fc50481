package testbed

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// A command run through PrivateLockCommand sees an empty tmpfs of its own
// on LockDir, under the same PID, and the host's LockDir never gets it.
func TestPrivateLockCommand(t *testing.T) {
	RequireRoot(t)
	cmd := PrivateLockCommand("/bin/sh", "-c", `touch `+LockDir+`/probe && grep " `+LockDir+` " /proc/self/mountinfo && echo pid=$$`)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tmpfs") || !strings.Contains(string(out), "pid="+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("not a tmpfs on %s, or not the same PID (%d):\n%s", LockDir, cmd.Process.Pid, out)
	}
	if _, err := os.Stat(LockDir + "/probe"); err == nil {
		t.Errorf("%s/probe reached the host's %s", LockDir, LockDir)
	}
}
