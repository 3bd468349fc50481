package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// versionRepo is a scratch git repository holding only the Makefile, whose
// version logic reads nothing else.
type versionRepo struct {
	t    *testing.T
	dir  string
	when int // commit time, so untagged versions differ by commit
}

func newVersionRepo(t *testing.T) *versionRepo {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	r := &versionRepo{t: t, dir: t.TempDir(), when: 1767225600} // 2026-01-01
	if err := os.WriteFile(filepath.Join(r.dir, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q")
	r.git("add", "Makefile")
	r.commit()
	return r
}

func (r *versionRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org",
		"GIT_AUTHOR_DATE=@"+strconv.Itoa(r.when)+" +0000", "GIT_COMMITTER_DATE=@"+strconv.Itoa(r.when)+" +0000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *versionRepo) commit() {
	r.when += 3600
	r.git("commit", "-q", "--allow-empty", "-m", "c")
}

// version runs `make version` and returns the binary's and the package's version.
func (r *versionRepo) version() (bin, pkg string) {
	r.t.Helper()
	cmd := exec.Command("make", "-s", "--no-print-directory", "version")
	cmd.Dir = r.dir
	// The Makefile's variables are ?=: an exported one would win.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VERSION=") && !strings.HasPrefix(kv, "PKG_VERSION=") && !strings.HasPrefix(kv, "MAKEFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("make version: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^version=(\S+) pkg_version=(\S+) `).FindStringSubmatch(string(out))
	if m == nil {
		r.t.Fatalf("make version printed %q", out)
	}
	return m[1], m[2]
}

// versionLess reports whether package version a sorts before b, in dpkg
// and in rpm; the test fails when the two disagree.
func versionLess(t *testing.T, a, b string) bool {
	t.Helper()
	dpkg := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run() == nil
	out, err := exec.Command("rpm", "--eval", `%{lua: print(rpm.vercmp("`+a+`", "`+b+`"))}`).Output()
	if err != nil {
		t.Fatalf("rpm vercmp %s %s: %v", a, b, err)
	}
	rpm := strings.TrimSpace(string(out)) == "-1"
	if dpkg != rpm {
		t.Fatalf("%s < %s: dpkg says %v, rpm says %v", a, b, dpkg, rpm)
	}
	return dpkg
}

// TestVersionSortsInDpkgAndRpm builds versions as the Makefile does in a
// scratch repository (untagged, tagged, after a tag, dirty, pre-release) and
// checks that each sorts where an upgrade needs it, in dpkg and rpm.
func TestVersionSortsInDpkgAndRpm(t *testing.T) {
	for _, tool := range []string{"git", "make", "dpkg", "rpm"} {
		_, err := exec.LookPath(tool)
		testbed.Need(t, err == nil, tool)
	}
	r := newVersionRepo(t)
	// A hash that starts with a digit was once taken for a version.
	for i := 0; !regexp.MustCompile(`^[0-9]`).MatchString(r.git("rev-parse", "--short=12", "HEAD")); i++ {
		if i == 100 {
			t.Fatal("no commit hash starting with a digit in 100 tries")
		}
		r.commit()
	}
	hash := r.git("rev-parse", "--short=12", "HEAD")
	bin, untagged := r.version()
	if want := "0.0.0~git20260101"; !strings.HasPrefix(untagged, want) || !strings.HasSuffix(untagged, "."+hash) || bin != untagged {
		t.Fatalf("untagged: version %q, package %q; want %s<time>.%s for both", bin, untagged, want, hash)
	}
	r.commit()
	_, untagged2 := r.version()

	r.git("tag", "v1.0.0")
	bin, release := r.version()
	if bin != "v1.0.0" || release != "1.0.0" {
		t.Fatalf("on tag v1.0.0: version %q, package %q", bin, release)
	}
	r.commit()
	bin, after := r.version()
	head := r.git("rev-parse", "HEAD")
	if !strings.HasPrefix(bin, "v1.0.0-1-g") || !strings.HasPrefix(after, "1.0.0+1.g") || !strings.HasPrefix(head, strings.TrimPrefix(after, "1.0.0+1.g")) {
		t.Fatalf("one commit after v1.0.0: version %q, package %q", bin, after)
	}
	mk := filepath.Join(r.dir, "Makefile")
	old, err := os.ReadFile(mk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mk, append(old, []byte("\n# local change\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, dirty := r.version()
	if dirty != after+".dirty" {
		t.Fatalf("dirty after tag: package %q, want %s.dirty", dirty, after)
	}
	r.git("commit", "-q", "-am", "change")
	r.git("tag", "v1.1.0-rc1")
	bin, rc := r.version()
	if bin != "v1.1.0-rc1" || rc != "1.1.0~rc1" {
		t.Fatalf("on tag v1.1.0-rc1: version %q, package %q", bin, rc)
	}

	// Each must sort before the next: an upgrade along this list is never a downgrade.
	order := []string{untagged, untagged2, "0.1.0", release, after, dirty, rc, "1.1.0", "10.0.0"}
	for i := 0; i+1 < len(order); i++ {
		if !versionLess(t, order[i], order[i+1]) {
			t.Errorf("%s does not sort before %s", order[i], order[i+1])
		}
		if versionLess(t, order[i+1], order[i]) {
			t.Errorf("%s sorts before %s", order[i+1], order[i])
		}
	}
}
