package docs

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The alert runbooks (runbooks/*.md, one per alert of
// packaging/prometheus/cgroupclean-rules.yml, which its own test checks):
// their links resolve, every MESSAGE_ID they query is one the daemon
// writes, and fleet.md links each of them.

var messageIDRe = regexp.MustCompile(`MESSAGE_ID=([0-9a-f]{32})`)

func runbookPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("runbooks/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no runbooks found")
	}
	return pages
}

func TestRunbookLinksResolve(t *testing.T) {
	for _, p := range runbookPages(t) {
		bad, err := checkLinks(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Error(b)
		}
	}
}

// unknownMessageIDs returns the MESSAGE_IDs text queries that are not in
// known, and how many it queries in all.
func unknownMessageIDs(text string, known map[string]bool) (unknown []string, n int) {
	for _, m := range messageIDRe.FindAllStringSubmatch(text, -1) {
		n++
		if !known[m[1]] {
			unknown = append(unknown, m[1])
		}
	}
	return unknown, n
}

func TestRunbookMessageIDsExist(t *testing.T) {
	known := map[string]bool{}
	for _, id := range messageIDs(t) {
		known[id] = true
	}
	for _, p := range runbookPages(t) {
		unknown, n := unknownMessageIDs(read(t, p), known)
		if n == 0 {
			t.Errorf("%s: no journalctl query by MESSAGE_ID", p)
		}
		for _, id := range unknown {
			t.Errorf("%s: MESSAGE_ID=%s is no ID of cgroupclean/audit", p, id)
		}
	}
	// A made-up ID is caught.
	if unknown, n := unknownMessageIDs("journalctl -t cgroupcleand MESSAGE_ID=00000000000000000000000000000000", known); n != 1 || len(unknown) != 1 {
		t.Errorf("a made-up MESSAGE_ID passed: %v of %d", unknown, n)
	}
}

func TestEveryRunbookLinkedFromFleet(t *testing.T) {
	linked := links(read(t, "fleet.md"))
	for _, p := range runbookPages(t) {
		found := false
		for _, l := range linked {
			target, _, _ := strings.Cut(l, "#")
			found = found || filepath.Clean(target) == p
		}
		if !found {
			t.Errorf("%s is not linked from fleet.md", p)
		}
	}
}
