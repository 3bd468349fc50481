// Package docs holds the operator documentation (Markdown) and the test
// that keeps its links working: every relative link and anchor in the
// README and in docs/*.md resolves, and every page here is linked from the
// README.
package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

var (
	fence      = regexp.MustCompile("(?ms)^```.*?^```[^\n]*$")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading    = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// prose is a Markdown file's text without code blocks and code spans,
// whose brackets are not links.
func prose(md string) string {
	md = fence.ReplaceAllString(md, "")
	var out []string
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t") {
			continue // indented code block
		}
		out = append(out, codeSpan.ReplaceAllString(line, ""))
	}
	return strings.Join(out, "\n")
}

// links returns the link targets of a Markdown text.
func links(md string) []string {
	var out []string
	for _, m := range inlineLink.FindAllStringSubmatch(prose(md), -1) {
		out = append(out, m[1])
	}
	return out
}

// anchors returns the anchors GitHub makes for a Markdown text's headings.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(md, ""), -1) {
		slug := slugify(m[1])
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// slugify is GitHub's heading anchor: lower case, spaces to hyphens, and
// everything but letters, digits, hyphens and underscores dropped.
func slugify(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLinks reports every relative link of file (a Markdown file) whose
// target or anchor does not exist.
func checkLinks(file string) ([]string, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, l := range links(string(src)) {
		if strings.Contains(l, "://") || strings.HasPrefix(l, "mailto:") {
			continue
		}
		target, anchor, _ := strings.Cut(l, "#")
		path := file
		if target != "" {
			path = filepath.Join(filepath.Dir(file), target)
			if _, err := os.Stat(path); err != nil {
				bad = append(bad, fmt.Sprintf("%s: link %s: %v", file, l, err))
				continue
			}
		}
		if anchor == "" {
			continue
		}
		if !strings.HasSuffix(path, ".md") {
			bad = append(bad, fmt.Sprintf("%s: link %s: anchor into a file that is not Markdown", file, l))
			continue
		}
		md, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if !anchors(string(md))[anchor] {
			bad = append(bad, fmt.Sprintf("%s: link %s: no heading with anchor #%s in %s", file, l, anchor, path))
		}
	}
	return bad, nil
}

func TestLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs pages found")
	}
	for _, f := range append([]string{"../README.md"}, pages...) {
		bad, err := checkLinks(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Error(b)
		}
	}
}

func TestEveryPageLinkedFromREADME(t *testing.T) {
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	linked := links(string(src))
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if !slices.ContainsFunc(linked, func(l string) bool {
			target, _, _ := strings.Cut(l, "#")
			return filepath.Clean(target) == filepath.Join("docs", p)
		}) {
			t.Errorf("docs/%s is not linked from README.md", p)
		}
	}
}

// TestCheckerFindsBrokenLinks proves the checks above can fail.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("b.md", "# Page B\n\n## What `systemctl status` shows\n\n## Twice\n\n## Twice\n")
	a := write("a.md", strings.Join([]string{
		"[ok](b.md) [ok](b.md#page-b) [ok](b.md#what-systemctl-status-shows) [ok](b.md#twice-1)",
		"[ok](#here) [ok](https://example.org/x.md#nope)",
		"[missing file](c.md) [missing anchor](b.md#nope) [missing here](#nowhere)",
		"`[in code](gone.md)`",
		"```", "[in a fence](gone.md)", "```",
		"    [indented code](gone.md)",
		"## Here",
	}, "\n"))
	bad, err := checkLinks(a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c.md", "b.md#nope", "#nowhere"}
	if len(bad) != len(want) {
		t.Fatalf("got %d problems, want %d (%v):\n%s", len(bad), len(want), want, strings.Join(bad, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(bad[i], "link "+w+":") {
			t.Errorf("problem %d = %q, want one about %s", i, bad[i], w)
		}
	}
}
