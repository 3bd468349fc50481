package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
)

const (
	systemdBin     = "/lib/systemd/systemd"
	dbusDaemonBin  = "/usr/bin/dbus-daemon"
	userDbusSocket = "/usr/lib/systemd/user/dbus.socket" // Debian package dbus-user-session
)

// UserSystemd is a real `systemd --user` manager with its own D-Bus bus,
// confined to a test cgroup root. systemd treats the name=systemd cgroup
// it was started in as its root and uses the same path in every hierarchy
// it manages: unit cgroups appear under Root in name=systemd and unified,
// and (running as root) also in the v1 controllers it accounts with:
// memory and pids for scopes, cpu for slices, seen on Debian 12's systemd 252.
type UserSystemd struct {
	// Bus is the D-Bus address of the manager's bus ("unix:path=...").
	Bus string
	// Root is the test cgroup root the manager runs in.
	Root *CgroupRoot
	// Dir holds HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME and the manager's log.
	Dir string
	// PID is the manager's PID (the shell that started it exec'ed into it).
	PID int

	cmd     *exec.Cmd
	logPath string
	waitErr error
	exited  chan struct{}
}

// StartUserSystemd starts a systemd --user manager inside a new test cgroup
// root and waits until it answers on its bus. Everything is torn down when
// the test ends: the manager is stopped by its PID (SIGTERM, then SIGKILL),
// any process left in the root is killed, the cgroups removed.
//
// systemd is never PID 1 here and runs in a private mount namespace whose
// only change is a tmpfs on /run/systemd holding an empty
// /run/systemd/system: without that sd_booted() is false and the manager
// exits 1 (saying so only on /dev/console). tmpfiles units are masked so
// nothing touches the host's directories.
func StartUserSystemd(t testing.TB) *UserSystemd {
	t.Helper()
	RequireRoot(t)
	for _, f := range []string{systemdBin, dbusDaemonBin, userDbusSocket} {
		_, err := os.Stat(f)
		Need(t, err == nil, f+" (Debian packages systemd, dbus-user-session)")
	}
	root := NewCgroupRoot(t, "sd")

	// Short dir: the bus socket path must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "sdu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &UserSystemd{
		Root:    root,
		Dir:     dir,
		Bus:     "unix:path=" + filepath.Join(dir, "xdg", "bus"),
		logPath: filepath.Join(dir, "manager.log"),
		exited:  make(chan struct{}),
	}
	if err := s.writeConfig(); err != nil {
		t.Fatal(err)
	}

	named := false
	for _, h := range root.Hierarchies {
		named = named || h.Name == "name=systemd" || h.Name == "unified"
	}
	Need(t, named, "a name=systemd or unified cgroup hierarchy")

	// The shell moves itself into the root in every hierarchy (systemd
	// takes its name=systemd cgroup as its root, and the manager and
	// dbus-daemon then stay inside the test root everywhere), mounts the
	// tmpfs in the private namespace Go made for it, then becomes systemd:
	// s.PID is the manager's PID.
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, h := range root.Hierarchies {
		fmt.Fprintf(&script, "echo $$ > %s\n", filepath.Join(h.Path(root.Name), "cgroup.procs"))
	}
	script.WriteString("mount -t tmpfs tmpfs /run/systemd\nmkdir /run/systemd/system\n")
	// A cgroupcleand service of the manager takes its lock on a tmpfs of
	// this namespace, never the machine's (see PrivateLockArgv).
	script.WriteString("mkdir -p -m 0700 " + LockDir + "\nmount -t tmpfs -o mode=0700,size=1m cgroupclean-test-lock " + LockDir + "\n")
	// systemd may write to /dev/console even when not PID 1 (the reason it
	// exits, for one): catch that in the log file, not on the machine's
	// console.
	fmt.Fprintf(&script, "if [ -e /dev/console ]; then mount --bind %s /dev/console; fi\n", s.logPath)
	fmt.Fprintf(&script, "exec %s --user --unit=testbed.target --log-target=console --log-level=info\n", systemdBin)

	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("/bin/sh", "-c", script.String())
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"LANG=C.UTF-8",
		"SYSTEMD_LOG_TARGET=console", // generators and helpers log to the file too
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// CLONE_NEWNS: Go also makes / private (MS_REC|MS_PRIVATE) in the
	// child, so the tmpfs never reaches the host's /run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start systemd --user: %v", err)
	}
	s.cmd, s.PID = cmd, cmd.Process.Pid
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })

	if err := s.waitReady(10 * time.Second); err != nil {
		t.Fatalf("systemd --user not ready: %v\n%s", err, s.Log())
	}
	t.Logf("systemd --user (pid %d) ready on %s in %v", s.PID, s.Bus, time.Since(start).Round(time.Millisecond))
	return s
}

func (s *UserSystemd) writeConfig() error {
	unitDir := filepath.Join(s.Dir, "config", "systemd", "user")
	for _, d := range []string{filepath.Join(s.Dir, "home"), filepath.Join(s.Dir, "xdg"), unitDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	target := "[Unit]\nDescription=cgroupclean testbed\nRequires=dbus.socket\nAfter=dbus.socket\n"
	if err := os.WriteFile(filepath.Join(unitDir, "testbed.target"), []byte(target), 0o644); err != nil {
		return err
	}
	// Masked: tmpfiles must not run against anything.
	for _, u := range []string{"systemd-tmpfiles-setup.service", "systemd-tmpfiles-clean.timer"} {
		if err := os.Symlink("/dev/null", filepath.Join(unitDir, u)); err != nil {
			return err
		}
	}
	return nil
}

// waitReady polls until the manager answers a property read on the bus
// (the socket alone is not enough: dbus-daemon is socket-activated and
// systemd registers its name after connecting).
func (s *UserSystemd) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("manager exited: %v", s.waitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := s.dial(ctx)
		if err == nil {
			_, err = c.GetManagerProperty("Version")
			c.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s after %v: %w", s.Bus, limit, last)
}

func (s *UserSystemd) dial(ctx context.Context) (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) { return sdunit.DialBus(ctx, s.Bus) })
}

// Conn returns a go-systemd connection to the manager, closed when the
// test ends.
func (s *UserSystemd) Conn(t testing.TB) *sddbus.Conn {
	t.Helper()
	// godbus closes the connection when this ctx ends.
	c, err := s.dial(context.Background())
	if err != nil {
		t.Fatalf("connect to %s: %v", s.Bus, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Manager returns the project's sdunit client of the manager, closed when
// the test ends.
func (s *UserSystemd) Manager(t testing.TB) *sdunit.Manager {
	t.Helper()
	m, err := sdunit.Connect(context.Background(), s.Bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// Log returns what the manager wrote to its console so far.
func (s *UserSystemd) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// CgroupPath returns the cgroup path (from the hierarchy root, as
// systemd's ControlGroup property shows it) of a unit path inside the
// manager, e.g. "kubepods.slice/kubepods-burstable.slice" ->
// "/cgclean-test-sd-1a2b3c4d/kubepods.slice/kubepods-burstable.slice".
func (s *UserSystemd) CgroupPath(unitPath string) string { return s.Root.Rel(unitPath) }

// StartScope puts pid into a transient scope at unitPath, a kubelet-like
// chain of slices ending in the scope name, e.g.
// "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/crio-<64hex>.scope".
// systemd derives a slice's parents from its name, so the chain must be
// the one the last slice's name implies. props are added to the unit (for
// instance TimeoutStopUSec). It returns the scope's cgroup path and waits
// until the start job is done.
func (s *UserSystemd) StartScope(t testing.TB, unitPath string, pid int, props ...sddbus.Property) string {
	t.Helper()
	parts := strings.Split(unitPath, "/")
	scope := parts[len(parts)-1]
	if !strings.HasSuffix(scope, ".scope") {
		t.Fatalf("StartScope %q: last element must be a .scope", unitPath)
	}
	slice := "-.slice"
	if len(parts) > 1 {
		slice = parts[len(parts)-2]
		if want := sliceChain(slice); want != strings.Join(parts[:len(parts)-1], "/") {
			t.Fatalf("StartScope %q: systemd would place slice %s at %s", unitPath, slice, want)
		}
	}
	all := append([]sddbus.Property{
		sddbus.PropSlice(slice),
		sddbus.PropPids(uint32(pid)),
		sddbus.PropDescription("cgroupclean test scope"),
	}, props...)
	c := s.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := c.StartTransientUnitContext(ctx, scope, "fail", all, ch); err != nil {
		t.Fatalf("start scope %s: %v", unitPath, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			t.Fatalf("start scope %s: job %s\n%s", unitPath, r, s.Log())
		}
	case <-ctx.Done():
		t.Fatalf("start scope %s: %v", unitPath, ctx.Err())
	}
	return s.CgroupPath(unitPath)
}

// sliceChain returns the path systemd gives a slice: "a-b-c.slice" lives
// in "a.slice/a-b.slice/a-b-c.slice".
func sliceChain(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	parts := strings.Split(name, "-")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "-") + ".slice"
	}
	return path.Join(out...)
}

// StartProcess starts argv as a child of the test (in the test's own
// cgroups until a scope takes it) and kills it by PID when the test ends.
func StartProcess(t testing.TB, argv ...string) *Process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	p := &Process{PID: cmd.Process.Pid, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once reaped: the PID is still ours until Wait returns
		<-p.done
	})
	return p
}

// Process is a child process started by a test.
type Process struct {
	PID  int
	done chan struct{}
	err  error
}

// Alive reports whether the process has not exited.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for the process to exit and reports whether it did.
func (p *Process) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop ends the manager by the PID this harness started (SIGTERM lets it
// stop its units and dbus-daemon, SIGKILL if it does not exit in time),
// then kills whatever is still inside the test cgroup root, so the
// root's cleanup can remove every directory.
func (s *UserSystemd) stop(t testing.TB) {
	t.Helper()
	start := time.Now()
	_ = syscall.Kill(s.PID, syscall.SIGTERM)
	select {
	case <-s.exited:
		t.Logf("systemd --user (pid %d) exited %v after SIGTERM in %v", s.PID, s.waitErr, time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Errorf("systemd --user (pid %d) ignored SIGTERM for 10s, sending SIGKILL", s.PID)
		_ = syscall.Kill(s.PID, syscall.SIGKILL)
		<-s.exited
	}
	if t.Failed() {
		t.Logf("systemd --user log:\n%s", s.Log())
	}
	for i := 0; i < 50; i++ {
		if n := s.killLeftovers(); n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes left in %s after stopping systemd --user", s.Root.Name)
}

// killLeftovers SIGKILLs every process inside the test root (they can only
// be the manager's children or the test's own) and returns how many it saw.
func (s *UserSystemd) killLeftovers() int {
	n := 0
	for _, h := range s.Root.Hierarchies {
		_ = filepath.WalkDir(h.Path(s.Root.Name), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range bytes.Fields(data) {
				pid, err := strconv.Atoi(string(f))
				if err != nil || pid == os.Getpid() {
					continue
				}
				n++
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					continue
				}
			}
			return nil
		})
	}
	return n
}
