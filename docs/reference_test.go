package docs

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// The code is the source of truth; these tests fail when a name the code
// adds is missing from the page an operator looks it up in.

const (
	catalogFile = "../systemd/cgroupclean.catalog"
	auditDir    = "../cgroupclean/audit"
	exampleFile = "../config.example.toml"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tableRows is the Markdown table rows of md (lines that start with "|").
func tableRows(md string) string {
	var rows []string
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "|") {
			rows = append(rows, line)
		}
	}
	return strings.Join(rows, "\n")
}

// hasWord reports whether name occurs in text as a whole name: not as part
// of a longer one (gone in gone-foo, mass-guard-share in
// mass-guard-container-share).
func hasWord(text, name string) bool {
	return regexp.MustCompile(`(^|[^a-z0-9_-])` + regexp.QuoteMeta(name) + `($|[^a-z0-9_-])`).MatchString(text)
}

// TestEveryReasonInSafetyTables: every reason the decision and apply
// steps can give is in a table of safety.md, code-quoted.
func TestEveryReasonInSafetyTables(t *testing.T) {
	if len(decide.Reasons) == 0 {
		t.Fatal("decide.Reasons is empty")
	}
	rows := tableRows(read(t, "safety.md"))
	for _, r := range decide.Reasons {
		if !strings.Contains(rows, "`"+string(r)+"`") {
			t.Errorf("reason %q (cgroupclean/decide) is in no table of docs/safety.md", r)
		}
	}
}

// TestEveryJournalReasonInCatalog: every reason a journal entry can carry
// (the refusals and the failures; live pods are not logged one by one) is
// explained in the catalog, which journalctl -x shows.
func TestEveryJournalReasonInCatalog(t *testing.T) {
	catalog := read(t, catalogFile)
	reasons := append(decide.RefusalReasons(), decide.FailureReasons...)
	if len(reasons) < 10 {
		t.Fatalf("only %d refusal and failure reasons found: %v", len(reasons), reasons)
	}
	for _, r := range reasons {
		if !hasWord(catalog, string(r)) {
			t.Errorf("reason %q (cgroupclean/decide) is not in %s", r, catalogFile)
		}
	}
}

// messageIDs parses the audit package's source for its ID* constants, so
// a new ID is checked without a list kept by hand.
func messageIDs(t *testing.T) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for name, v := range testbed.StringConsts(t, auditDir) {
		if strings.HasPrefix(name, "ID") {
			ids[name] = v
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no ID constants found in %s", auditDir)
	}
	return ids
}

// TestEveryMessageIDInAuditing: every MESSAGE_ID is a row of the table in
// auditing.md.
func TestEveryMessageIDInAuditing(t *testing.T) {
	rows := tableRows(read(t, "auditing.md"))
	for name, id := range messageIDs(t) {
		if !strings.Contains(rows, "`"+id+"`") {
			t.Errorf("audit.%s = %s is in no table row of docs/auditing.md", name, id)
		}
	}
}

var (
	tomlSection = regexp.MustCompile(`^\[([a-z_]+)\]$`)
	tomlKey     = regexp.MustCompile(`^([a-z0-9_]+)\s*=`)
)

// TestEveryConfigKeyExplained: every key of config.example.toml has a
// comment right above it (or above its group of keys) or is named in
// configuration.md as section.key.
func TestEveryConfigKeyExplained(t *testing.T) {
	configuration := read(t, "configuration.md")
	f, err := os.Open(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	section, commented, keys := "", false, 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#"):
			commented = true
		case line == "":
			commented = false
		case tomlSection.MatchString(line):
			section, commented = tomlSection.FindStringSubmatch(line)[1], false
		case tomlKey.MatchString(line):
			keys++
			key := section + "." + tomlKey.FindStringSubmatch(line)[1]
			if !commented && !strings.Contains(configuration, "`"+key+"`") {
				t.Errorf("%s:%d: %s has no comment above it and is not in docs/configuration.md", exampleFile, n, key)
			}
			commented = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if keys < 20 {
		t.Fatalf("only %d keys found in %s", keys, exampleFile)
	}
}

// TestReferenceChecksCanFail proves the helpers above find what is
// missing.
func TestReferenceChecksCanFail(t *testing.T) {
	rows := tableRows("text `gone`\n| gate | `mass-guard-container-share` |\n")
	if strings.Contains(rows, "`gone`") {
		t.Error("tableRows kept a line that is not a table row")
	}
	if strings.Contains(rows, "`mass-guard-share`") {
		t.Error("a longer reason matched a shorter one")
	}
	if hasWord("mass-guard-container-share", "container-share") || hasWord("gone-x", "gone") {
		t.Error("hasWord matched part of a longer name")
	}
	if !hasWord("  gone: the directory", "gone") || !hasWord("busy (rmdir", "busy") {
		t.Error("hasWord missed a whole name")
	}
}
