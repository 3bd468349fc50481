package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestEveryDoctorFindingInDoctorPage: every finding ID of
// cgroupclean/doctor is a row of a table in doctor.md.
func TestEveryDoctorFindingInDoctorPage(t *testing.T) {
	rows := tableRows(read(t, "doctor.md"))
	n := 0
	for name, id := range testbed.StringConsts(t, "../cgroupclean/doctor") {
		if !strings.HasPrefix(name, "ID") {
			continue
		}
		n++
		if !strings.Contains(rows, "`"+id+"`") {
			t.Errorf("doctor.%s = %s is in no table row of docs/doctor.md", name, id)
		}
	}
	if n < 10 {
		t.Fatalf("only %d finding IDs found in cgroupclean/doctor", n)
	}
}

var testName = regexp.MustCompile("`(Test[A-Za-z0-9_]+)`")

// TestLeakFormsBackedByTests: every row of the leak-form table in leak-forms.md
// names the test that measures it, and that test exists.
func TestLeakFormsBackedByTests(t *testing.T) {
	var src strings.Builder
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "kubelet" && filepath.Base(filepath.Dir(p)) == "node") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, in := 0, false
	for _, line := range strings.Split(read(t, "leak-forms.md"), "\n") {
		switch {
		case strings.HasPrefix(line, "| leak form "):
			in = true
			continue
		case !strings.HasPrefix(line, "|"):
			in = false
		}
		if !in || strings.HasPrefix(line, "|---") {
			continue
		}
		rows++
		names := testName.FindAllStringSubmatch(line, -1)
		if len(names) == 0 {
			t.Errorf("leak-forms.md row names no test: %s", line)
		}
		for _, m := range names {
			if !strings.Contains(src.String(), "func "+m[1]+"(") {
				t.Errorf("leak-forms.md names %s, which no test file defines", m[1])
			}
		}
	}
	if rows < 5 {
		t.Fatalf("only %d rows in the leak-form table of leak-forms.md", rows)
	}
}
