package logging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
)

const (
	catalogFile = "../../systemd/cgroupclean.catalog"
	auditDir    = "../../cgroupclean/audit"
)

type catalogEntry struct {
	id      string
	headers map[string]string
	body    string
	line    int
}

var (
	catalogID   = regexp.MustCompile(`^-- ([0-9a-f]{32})$`)
	placeholder = regexp.MustCompile(`@([A-Za-z0-9_]+)@`)
)

// parseCatalog reads the systemd catalog format: "-- <id>" starts an entry,
// then "Key: value" headers, an empty line, and the text.
func parseCatalog(t *testing.T, path string) []catalogEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []catalogEntry
	var cur *catalogEntry
	inHeaders := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "-- "):
			m := catalogID.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s:%d: bad entry header %q (want \"-- \" and 32 lower-case hex digits)", path, n, line)
			}
			entries = append(entries, catalogEntry{id: m[1], headers: map[string]string{}, line: n})
			cur, inHeaders = &entries[len(entries)-1], true
		case cur == nil:
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Fatalf("%s:%d: text before the first entry: %q", path, n, line)
			}
		case inHeaders && line == "":
			inHeaders = false
		case inHeaders:
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("%s:%d: header without \"Key: value\": %q", path, n, line)
			}
			cur.headers[k] = v
		default:
			cur.body += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

// auditConsts parses the audit package's source: the ID* constants are the
// message IDs, every string constant a known name. Parsing the source (not
// a hand-kept list) means a new ID without a catalog entry fails here.
func auditConsts(t *testing.T) (ids map[string]string, values map[string]bool) {
	t.Helper()
	ids, values = map[string]string{}, map[string]bool{}
	for name, v := range testbed.StringConsts(t, auditDir) {
		values[v] = true
		if strings.HasPrefix(name, "ID") {
			ids[name] = v
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no ID constants found in %s", auditDir)
	}
	return ids, values
}

func TestCatalogMatchesAuditIDs(t *testing.T) {
	ids, known := auditConsts(t)
	entries := parseCatalog(t, catalogFile)
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.id]++
	}
	for name, id := range ids {
		if seen[id] != 1 {
			t.Errorf("audit.%s = %s has %d catalog entries, want 1", name, id, seen[id])
		}
	}
	byID := map[string]string{}
	for name, id := range ids {
		if other, dup := byID[id]; dup {
			t.Errorf("audit.%s and audit.%s share the ID %s", name, other, id)
		}
		byID[id] = name
	}
	for _, e := range entries {
		t.Run(byID[e.id]+"_"+e.id, func(t *testing.T) {
			if byID[e.id] == "" {
				t.Errorf("line %d: catalog entry %s is not an ID in cgroupclean/audit", e.line, e.id)
			}
			for k, want := range map[string]string{"Defined-By": "cgroupclean", "Subject": "", "Support": ""} {
				v, ok := e.headers[k]
				if !ok || v == "" || (want != "" && v != want) {
					t.Errorf("line %d: header %s = %q (want %q)", e.line, k, v, want)
				}
			}
			if len(strings.Fields(e.body)) < 20 {
				t.Errorf("line %d: text too short to explain anything: %q", e.line, e.body)
			}
			// @FIELD@ is replaced by the entry's field: a typo shows literally.
			for _, m := range placeholder.FindAllStringSubmatch(e.headers["Subject"]+e.body, -1) {
				if !known[m[1]] {
					t.Errorf("line %d: @%s@ is not a field of cgroupclean/audit", e.line, m[1])
				}
			}
		})
	}
}

// TestCatalogCompiles runs journalctl --update-catalog on the catalog in a
// scratch root (the host's catalog database is not touched) and checks
// that journalctl lists every entry with its subject.
func TestCatalogCompiles(t *testing.T) {
	_, err := exec.LookPath("journalctl")
	testbed.Need(t, err == nil, "journalctl (Debian package systemd)")
	root := t.TempDir()
	dir := filepath.Join(root, "usr/lib/systemd/catalog")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(catalogFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroupclean.catalog"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testbed.UpdateCatalog(root); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("journalctl", "--root="+root, "--list-catalog").CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl --list-catalog: %v: %s", err, out)
	}
	var want []string
	for _, e := range parseCatalog(t, catalogFile) {
		want = append(want, e.id+" cgroupclean: "+e.headers["Subject"])
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("journalctl --list-catalog:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestJournalctlExplainsEntries logs an entry to a real journald with the
// catalog installed (in the test's mount namespace only) and checks that
// journalctl -x shows the catalog text with the entry's fields filled in.
func TestJournalctlExplainsEntries(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		abs, err := filepath.Abs(catalogFile)
		if err != nil {
			t.Fatal(err)
		}
		j.InstallCatalog(t, abs)
		l, err := New(FormatJournal, "info", os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		f := auditFields()
		l.WithFields(f).Info("removed")
		l.WithFields(logrus.Fields{audit.MessageID: audit.IDRuntimeUnreachable, audit.Pass: 3, audit.Error: "dial unix /run/crio/crio.sock: connection refused"}).Error("runtime unreachable")
		out := j.Text(t, "-x", "-o", "short")
		for _, w := range []string{
			"Subject: Orphaned cgroup " + f[audit.CgroupPath].(string) + " removed",
			"Defined-By: cgroupclean",
			"of pod " + f[audit.PodUID].(string) + ": neither",
			"Subject: Container runtime unreachable, pass 3 removed nothing",
			"dial unix /run/crio/crio.sock: connection refused",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("journalctl -x lacks %q:\n%s", w, out)
			}
		}
	})
}
