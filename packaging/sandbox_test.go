package packaging

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// sandboxProbe runs in the unit's sandbox and prints one "name result" line
// per check. It only opens files for writing (the permission and read-only
// checks happen at open) and writes nothing, except a mkdir/rmdir of a
// child cgroup inside the test's own cgroup root.
const sandboxProbe = `
set -u
echo "capbnd $(grep ^CapBnd: /proc/self/status | tr -d [:space:] | cut -d: -f2)"
for d in $CG_DIRS; do if mkdir "$d/probe" 2>/dev/null && rmdir "$d/probe"; then echo "cgroupfs-rw $d"; else echo "cgroupfs-ro $d"; fi; done
try() { if (exec 3>>"$2") 2>/dev/null; then echo "$1 writable"; else echo "$1 denied"; fi; }
try drop_caches /proc/sys/vm/drop_caches
try swappiness /proc/sys/vm/swappiness
try sysfs /sys/kernel/mm/transparent_hugepage/enabled
p=/usr/cgroupclean-sandbox-probe-$$
if touch "$p" 2>/dev/null; then rm -f "$p"; echo "usr writable"; else echo "usr denied"; fi
if ls /root >/dev/null 2>&1; then echo "home visible"; else echo "home hidden"; fi
if "$BIN" version >/dev/null 2>&1; then echo "daemon-version ok"; else echo "daemon-version failed"; fi
if "$BIN" check-config --config "$BIN.toml" >/dev/null 2>&1; then echo "daemon-check-config ok"; else echo "daemon-check-config exit=$?"; fi
echo done
`

// TestUnitSandbox starts the [Service] sandbox of systemd/cgroupcleand.service,
// as written, under a real systemd (a systemd --user manager running as
// root, which applies the same namespacing and capability settings as
// PID 1) with a probe in place of the daemon, and checks that the daemon
// can do its job and nothing else: cgroupfs and drop_caches writable, the
// rest of /proc/sys, /sys and /usr read-only, /root hidden, only CAP_KILL.
func TestUnitSandbox(t *testing.T) {
	sd := testbed.StartUserSystemd(t)
	makeInaccessibleNodes(t, fmt.Sprintf("/proc/%d/root/run/systemd/inaccessible", sd.PID))

	bin := buildDaemon(t)

	var cgDirs []string
	for _, h := range sd.Root.Hierarchies {
		cgDirs = append(cgDirs, h.Path(sd.Root.Name))
	}
	out := filepath.Join(sd.Dir, "probe.out")
	unit := "[Unit]\nDescription=cgroupcleand sandbox probe\n\n[Service]\n" +
		"Type=oneshot\n" +
		"Environment=\"CG_DIRS=" + strings.Join(cgDirs, " ") + "\" BIN=" + bin + "\n" +
		"ExecStart=/bin/sh -c '" + execLine(sandboxProbe) + "'\n" +
		"StandardOutput=file:" + out + "\nStandardError=inherit\n" +
		sandboxSection(t) // last, so a sandbox key wins over anything above
	unitDir := filepath.Join(sd.Dir, "config", "systemd", "user")
	if err := os.WriteFile(filepath.Join(unitDir, "probe.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	conn := sd.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.ReloadContext(ctx); err != nil {
		t.Fatalf("daemon-reload: %v", err)
	}
	done := make(chan string, 1)
	if _, err := conn.StartUnitContext(ctx, "probe.service", "replace", done); err != nil {
		t.Fatalf("start probe: %v", err)
	}
	select {
	case res := <-done:
		if res != "done" {
			props, _ := conn.GetUnitTypePropertiesContext(ctx, "probe.service", "Service")
			o, _ := os.ReadFile(out)
			t.Fatalf("probe job %s: Result=%v ExecMainStatus=%v\noutput:\n%s\nmanager log:\n%s",
				res, props["Result"], props["ExecMainStatus"], o, sd.Log())
		}
	case <-ctx.Done():
		t.Fatal("probe did not finish")
	}

	got := map[string]string{}
	f, err := os.Open(out)
	if err != nil {
		t.Fatalf("probe output: %v\nmanager log:\n%s", err, sd.Log())
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		got[k] += v
	}
	t.Logf("probe: %v", got)
	if _, ok := got["done"]; !ok {
		t.Fatalf("probe did not finish: %v", got)
	}

	for _, tc := range []struct{ key, want, why string }{
		{"capbnd", "0000000000000020", "bounding set is CAP_KILL only"},
		{"drop_caches", "writable", "memcg watchdog writes /proc/sys/vm/drop_caches"},
		{"swappiness", "denied", "the rest of /proc/sys is read-only"},
		{"sysfs", "denied", "/sys outside cgroupfs is read-only"},
		{"usr", "denied", "ProtectSystem=strict"},
		{"home", "hidden", "ProtectHome=yes"},
		{"cgroupfs-ro", "", "every cgroup hierarchy must be writable"},
		{"daemon-version", "ok", "the Go runtime starts under SystemCallFilter= and MemoryDenyWriteExecute="},
		{"daemon-check-config", "ok", "it reads and validates config.example.toml in the sandbox"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got[tc.key] != tc.want {
				t.Errorf("%s = %q, want %q: %s", tc.key, got[tc.key], tc.want, tc.why)
			}
		})
	}
	if n := strings.Count(got["cgroupfs-rw"], "/sys/fs/cgroup"); n != len(cgDirs) {
		t.Errorf("cgroupfs writable in %d of %d hierarchies: %v", n, len(cgDirs), got)
	}
}

// buildDaemon builds cmd/cgroupcleand (and copies config.example.toml
// beside it as cgroupcleand.toml) into a directory under /var/lib,
// which the sandbox can see (PrivateTmp= hides the test's /tmp, and a user
// manager gives its services an empty /run), removed at the end.
func buildDaemon(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/lib", "cgroupclean-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "cgroupcleand")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cgroupcleand")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/cgroupcleand: %v\n%s", err, out)
	}
	copyFile(t, filepath.Join(repoRoot, configSrc), bin+".toml")
	return bin
}

// makeInaccessibleNodes creates what PID 1 makes at boot in
// /run/systemd/inaccessible: the nodes systemd mounts over paths that
// ProtectHome=, ProtectKernelTunables= and ProtectKernelLogs= hide. The
// testbed manager's /run/systemd is an empty tmpfs in its own mount
// namespace (reached through /proc/PID/root); without them those settings
// fail with status 226/NAMESPACE.
func makeInaccessibleNodes(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		name string
		mode uint32
	}{
		{"reg", syscall.S_IFREG}, {"dir", 0}, {"chr", syscall.S_IFCHR}, {"blk", syscall.S_IFBLK},
		{"fifo", syscall.S_IFIFO}, {"sock", syscall.S_IFSOCK},
	} {
		p := filepath.Join(dir, n.name)
		var err error
		if n.name == "dir" {
			err = os.Mkdir(p, 0)
		} else {
			err = syscall.Mknod(p, n.mode, 0)
		}
		if err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// execLine turns a shell script of one-line statements into one ExecStart=
// argument: statements joined by ";", "$" and "%" escaped for systemd.
func execLine(script string) string {
	var stmts []string
	for _, l := range strings.Split(strings.TrimSpace(script), "\n") {
		stmts = append(stmts, strings.TrimSpace(l))
	}
	s := strings.Join(stmts, "; ")
	return strings.NewReplacer("$", "$$", "%", "%%").Replace(s)
}

// sandboxSection returns the unit's [Service] settings that shape the
// sandbox: everything but how the daemon is started, notified and restarted.
func sandboxSection(t *testing.T) string {
	t.Helper()
	skip := map[string]bool{"Type": true, "ExecStart": true, "ExecReload": true, "WatchdogSec": true,
		"Restart": true, "RestartSec": true, "TimeoutStopSec": true}
	b, err := os.ReadFile(filepath.Join(repoRoot, unitSource))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "[Service]"
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !in || !ok || strings.HasPrefix(line, "#") || skip[k] {
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}
