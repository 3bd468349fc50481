package testbed

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StuckWriter starts a shell, lets join move it into cgroups, then blocks
// it in uninterruptible sleep (state D) the way a task stuck on storage
// is: it writes to an ext4 file system frozen with fsfreeze, so it sits
// in the kernel (percpu_rwsem_wait) and no signal, SIGKILL included, ends
// it. dev is a block device holding an ext4 file system; "" makes one in
// a loop-mounted image file. thaw ends it early; when the test ends, the
// file system is thawed (if still frozen), the shell exits and the file
// system is unmounted.
func StuckWriter(t testing.TB, dev string, join func(pid int) error) (pid int, thaw func()) {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"fsfreeze", "mount", "umount"} {
		_, err := exec.LookPath(bin)
		Need(t, err == nil, bin)
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{dev, mnt}
	if dev == "" {
		_, err := exec.LookPath("mkfs.ext4")
		Need(t, err == nil, "mkfs.ext4")
		img := filepath.Join(dir, "fs.img")
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", img, "16M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4 %s: %v\n%s", img, err, out)
		}
		args = []string{"-o", "loop", img, mnt}
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		Need(t, false, fmt.Sprintf("an ext4 mount to freeze (mount %s: %v: %s)", strings.Join(args, " "), err, out))
	}
	// Cleanups run last in, first out: thaw, then the shell ends (its
	// write returns, the pending SIGKILL lands), then the unmount.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	// The shell waits for a line before it writes, so it joins its
	// cgroups while it can still move.
	cmd := exec.Command("sh", "-c", `read go && echo stuck > "$1/file"`, "sh", mnt)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("writer %d still there 30s after the thaw (state %c)", pid, ProcState(pid))
		}
	})
	frozen := false
	thaw = func() {
		if !frozen {
			return
		}
		frozen = false
		if out, err := exec.Command("fsfreeze", "-u", mnt).CombinedOutput(); err != nil {
			t.Errorf("fsfreeze -u %s: %v\n%s", mnt, err, out)
		}
	}
	t.Cleanup(thaw)
	if err := join(pid); err != nil {
		t.Fatalf("move the writer %d into its cgroups: %v", pid, err)
	}
	if out, err := exec.Command("fsfreeze", "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze -f %s: %v\n%s", mnt, err, out)
	}
	frozen = true
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ProcState(pid) != 'D' {
		if time.Now().After(deadline) {
			t.Fatalf("writer %d not in state D after 30s (state %c)", pid, ProcState(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGKILL does not end it: that is what makes it a busy leak.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return pid, thaw
}

// ProcState is the state letter of /proc/<pid>/stat (0 when it is gone).
func ProcState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
