package testbed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A real systemd-journald for tests. Clients (go-systemd's journal package,
// sd_journal_send) use the fixed socket /run/systemd/journal/socket, so the
// test process itself must see a private /run/systemd: InJournalNamespace
// runs the test again in a child process inside a private mount namespace
// where /run/systemd and /run/log are fresh tmpfs mounts, so the host's
// journal and /run are never touched.

const (
	journaldBin    = "/lib/systemd/systemd-journald"
	journalSocket  = "/run/systemd/journal/socket"
	journalStdout  = "/run/systemd/journal/stdout"
	journalRuntime = "/run/log/journal"
	catalogDir     = "/var/lib/systemd/catalog"
	// journalNSEnv marks the child: "<test name>|<parent's mount ns>".
	journalNSEnv = "CGROUPCLEAN_TESTBED_JOURNALD"
)

// journaldConf keeps the test journald to itself: memory only, nothing
// forwarded to the host's syslog, console or terminals (wall), no kernel
// log imported, no rate limit dropping a test's entries.
const journaldConf = `[Journal]
Storage=volatile
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
ReadKMsg=no
Audit=no
RateLimitIntervalSec=0
`

// Journal is a systemd-journald running in the test's private mount
// namespace. Processes the test starts inherit the namespace, so a daemon
// under test logs to this journald too.
type Journal struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer // journald's own output, shown on failure
	tmp    string
	mounts []string // undone in reverse at cleanup
}

// InJournalNamespace runs fn with a private journald. In the test process it
// re-executes the test binary for this test only (-test.run) in a new mount
// namespace with private propagation and reports the child's result; in
// the child it mounts the tmpfs, starts journald, calls fn, then kills
// journald and unmounts. Code of the test outside fn runs in both
// processes, so keep setup inside fn, stop inside fn what fn starts (a
// t.Cleanup registered in fn runs after journald is gone), and call
// InJournalNamespace once per test.
func InJournalNamespace(t *testing.T, fn func(j *Journal)) {
	t.Helper()
	RequireRoot(t)
	_, err := os.Stat(journaldBin)
	Need(t, err == nil, journaldBin+" (Debian package systemd)")
	_, err = exec.LookPath("journalctl")
	Need(t, err == nil, "journalctl (Debian package systemd)")

	if marker, ok := os.LookupEnv(journalNSEnv); ok {
		name, parentNS, _ := strings.Cut(marker, "|")
		if name != t.Name() {
			t.Fatalf("%s=%q but this is test %s", journalNSEnv, marker, t.Name())
		}
		if ns, err := mountNS(); err != nil || ns == parentNS {
			t.Fatalf("refusing to mount over /run: not in a private mount namespace (ns %q, parent %q, %v)", ns, parentNS, err)
		}
		j := startJournal(t)
		defer j.teardown(t)
		fn(j)
		return
	}
	runInNamespace(t)
}

// runInNamespace runs this test again in a child with its own mount
// namespace; Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE
// on /), as `unshare --mount --propagation private` would.
func runInNamespace(t *testing.T) {
	t.Helper()
	ns, err := mountNS()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v=true", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), journalNSEnv+"="+t.Name()+"|"+ns)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("test in journal namespace failed (%v):\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name()+" ")):
		t.Skipf("skipped in journal namespace:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name()+" ")):
		t.Fatalf("test did not run in journal namespace (pattern %s):\n%s", runPattern(t.Name()), out)
	}
	t.Logf("passed in journal namespace in %v:\n%s", time.Since(start).Round(time.Millisecond), out)
}

// runPattern matches exactly the test named name ("TestA/sub" -> "^TestA$/^sub$").
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func mountNS() (string, error) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return "", fmt.Errorf("read own mount namespace: %w", err)
	}
	return ns, nil
}

// startJournal mounts the private runtime dirs and starts journald. Only
// called in the child's private namespace. The caller runs stop when fn
// returns, so journald lives exactly as long as fn.
func startJournal(t *testing.T) *Journal {
	t.Helper()
	j := &Journal{tmp: t.TempDir(), log: &bytes.Buffer{}}
	ok := false
	defer func() {
		if !ok { // t.Fatal below: undo what was mounted
			j.teardown(t)
		}
	}()
	j.mount(t, "tmpfs", "/run/systemd", "tmpfs", 0)
	if err := os.MkdirAll("/run/log", 0o755); err != nil {
		t.Fatal(err)
	}
	j.mount(t, "tmpfs", "/run/log", "tmpfs", 0)
	// Belt and braces: journald must never write the host's persistent journal.
	if fi, err := os.Stat("/var/log/journal"); err == nil && fi.IsDir() {
		j.mount(t, "tmpfs", "/var/log/journal", "tmpfs", 0)
	}
	// Drop-ins in /run override /etc/systemd/journald.conf; "zz" sorts last.
	confDir := "/run/systemd/journald.conf.d"
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "zz-cgroupclean-testbed.conf"), []byte(journaldConf), 0o644); err != nil {
		t.Fatal(err)
	}
	j.start(t)
	ok = true
	return j
}

// teardown kills journald and unmounts in reverse, so the test's code after
// fn sees the host's view again.
func (j *Journal) teardown(t *testing.T) {
	j.stop()
	for i := len(j.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(j.mounts[i], unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", j.mounts[i], err)
		}
	}
	j.mounts = nil
	if t.Failed() {
		t.Logf("journald output:\n%s", j.log)
	}
}

func (j *Journal) mount(t *testing.T, src, dir, fstype string, flags uintptr) {
	t.Helper()
	data := ""
	if fstype == "tmpfs" {
		data = "mode=0755"
	}
	if err := unix.Mount(src, dir, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dir, err)
	}
	j.mounts = append(j.mounts, dir)
}

func (j *Journal) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(journaldBin)
	cmd.Stdout, cmd.Stderr = j.log, j.log
	// journald must not outlive the test process if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start journald: %v", err)
	}
	j.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A stale socket file from a killed journald refuses datagrams.
		if c, err := net.Dial("unixgram", journalSocket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journald socket %s not ready after 5s:\n%s", journalSocket, j.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PID is the running journald's process ID (0 after Kill).
func (j *Journal) PID() int {
	if j.cmd == nil {
		return 0
	}
	return j.cmd.Process.Pid
}

// Kill ends journald with SIGKILL, as a crash would: its socket file stays
// and refuses datagrams. The journal files stay readable by Query.
func (j *Journal) Kill(t *testing.T) {
	t.Helper()
	if j.cmd == nil {
		t.Fatal("journald is not running")
	}
	j.stop()
}

// Restart starts a new journald after Kill, on the same journal files.
func (j *Journal) Restart(t *testing.T) {
	t.Helper()
	if j.cmd != nil {
		t.Fatal("journald is still running")
	}
	j.start(t)
}

func (j *Journal) stop() {
	if j.cmd == nil {
		return
	}
	_ = j.cmd.Process.Kill()
	_ = j.cmd.Wait()
	j.cmd = nil
}

// Sync returns once journald has stored every entry sent before the call
// (journalctl --sync). A datagram the socket accepted but journald had not
// read yet is lost when journald is killed, so sync before Kill what must
// survive.
func (j *Journal) Sync(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("journalctl", "--sync").CombinedOutput(); err != nil {
		t.Fatalf("journalctl --sync: %v: %s", err, out)
	}
}

// Query returns the entries matching every journalctl match ("FIELD=value")
// after journald has stored all it received. Values that journalctl prints
// as byte arrays are decoded; a field with several values has them joined
// by "\n".
func (j *Journal) Query(t *testing.T, matches ...string) []map[string]string {
	t.Helper()
	if j.cmd != nil {
		j.Sync(t)
	}
	args := append([]string{"--directory=" + journalRuntime, "--output=json", "--all", "--no-pager"}, matches...)
	cmd := exec.Command("journalctl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("journalctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	entries, err := parseJournalJSON(out)
	if err != nil {
		t.Fatalf("journalctl %s: %v", strings.Join(args, " "), err)
	}
	return entries
}

// Wait is Query repeated until at least n entries match (5 s at most):
// stream lines reach the journal asynchronously.
func (j *Journal) Wait(t *testing.T, n int, matches ...string) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := j.Query(t, matches...)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal has %d entries matching %v after 5s, want %d", len(got), matches, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Text runs journalctl with args (e.g. "-x", "-o", "short", matches) on
// this journal and returns its output.
func (j *Journal) Text(t *testing.T, args ...string) string {
	t.Helper()
	if j.cmd != nil {
		j.Sync(t)
	}
	args = append([]string{"--directory=" + journalRuntime, "--no-pager"}, args...)
	out, err := exec.Command("journalctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func parseJournalJSON(out []byte) ([]map[string]string, error) {
	var entries []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			return nil, fmt.Errorf("parse entry %q: %w", sc.Bytes(), err)
		}
		e := make(map[string]string, len(raw))
		for k, v := range raw {
			s, err := journalValue(v)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
			e[k] = s
		}
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// journalValue decodes one field of journalctl -o json: a string, null (too
// large without --all), an array of byte values (not valid UTF-8 or not
// printable), or an array of those (a field given several times).
func journalValue(v json.RawMessage) (string, error) {
	var s *string
	if err := json.Unmarshal(v, &s); err == nil {
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	var b []byte
	var nums []int
	if err := json.Unmarshal(v, &nums); err == nil {
		for _, n := range nums {
			b = append(b, byte(n))
		}
		return string(b), nil
	}
	var multi []json.RawMessage
	if err := json.Unmarshal(v, &multi); err != nil {
		return "", fmt.Errorf("unexpected value %s", v)
	}
	vals := make([]string, 0, len(multi))
	for _, m := range multi {
		s, err := journalValue(m)
		if err != nil {
			return "", err
		}
		vals = append(vals, s)
	}
	return strings.Join(vals, "\n"), nil
}

// Stream connects to journald's stream transport the way systemd connects
// a service's stderr (StandardError=journal) and returns the connection as
// a file plus the JOURNAL_STREAM value ("<dev>:<ino>") systemd would set.
// Lines written to it become entries with SYSLOG_IDENTIFIER=identifier and
// _TRANSPORT=stdout.
func (j *Journal) Stream(t *testing.T, identifier string) (*os.File, string) {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: journalStdout, Net: "unix"})
	if err != nil {
		t.Fatalf("connect %s: %v", journalStdout, err)
	}
	if err := c.CloseRead(); err != nil {
		t.Fatal(err)
	}
	// Header of the stream protocol (systemd's journald-stream.c):
	// identifier, unit, priority, level prefix, forward to syslog, kmsg, console.
	if _, err := fmt.Fprintf(c, "%s\n\n6\n1\n0\n0\n0\n", identifier); err != nil {
		t.Fatalf("stream header: %v", err)
	}
	f, err := c.File()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// InstallCatalog compiles catalog files (systemd catalog format) with
// `journalctl --update-catalog` in a scratch root and mounts the resulting
// database over /var/lib/systemd/catalog in this namespace only, so
// `journalctl -x` explains entries from them. The host's catalog is not
// touched. Fails if journalctl rejects a file.
func (j *Journal) InstallCatalog(t *testing.T, files ...string) {
	t.Helper()
	root := filepath.Join(j.tmp, "catalog-root")
	src := filepath.Join(root, "usr/lib/systemd/catalog")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := UpdateCatalog(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(catalogDir); err != nil {
		t.Fatalf("need %s to mount over: %v", catalogDir, err)
	}
	j.mount(t, filepath.Dir(db), catalogDir, "", unix.MS_BIND)
}

// UpdateCatalog runs `journalctl --root=root --update-catalog`, which reads
// root/usr/lib/systemd/catalog/*.catalog and writes the database under
// root only; it returns the database path. Needs no namespace.
func UpdateCatalog(root string) (string, error) {
	out, err := exec.Command("journalctl", "--root="+root, "--update-catalog").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("journalctl --update-catalog in %s: %w: %s", root, err, out)
	}
	// journalctl may print a warning and still exit 0: any output fails.
	if len(bytes.TrimSpace(out)) > 0 {
		return "", fmt.Errorf("journalctl --update-catalog in %s: %s", root, out)
	}
	db := filepath.Join(root, catalogDir, "database")
	if _, err := os.Stat(db); err != nil {
		return "", fmt.Errorf("journalctl --update-catalog wrote no database: %w", err)
	}
	return db, nil
}
