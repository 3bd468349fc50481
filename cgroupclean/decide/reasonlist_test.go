package decide

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every Reason constant declared in this package or in engine must be in
// Reasons, so metrics pre-set it. The constants are found in the source,
// so a reason added by anyone is caught here.
func TestReasonsListComplete(t *testing.T) {
	listed := map[Reason]bool{}
	for _, r := range Reasons {
		if listed[r] {
			t.Errorf("reason %q listed twice", r)
		}
		listed[r] = true
	}
	found := 0
	for _, dir := range []string{".", filepath.Join("..", "engine")} {
		for name, value := range reasonConsts(t, dir) {
			found++
			if !listed[Reason(value)] {
				t.Errorf("%s (%q, in %s) is not in decide.Reasons (reasonlist.go)", name, value, dir)
			}
		}
	}
	if found < len(Reasons) {
		t.Fatalf("found %d Reason constants in the source, fewer than the %d listed: the source scan is broken", found, len(Reasons))
	}
}

// reasonConsts returns the string constants of type Reason (or
// decide.Reason) declared in the non-test Go files of dir.
func reasonConsts(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if !isReasonType(vs.Type) {
					continue
				}
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					out[n.Name] = v
				}
			}
		}
	}
	return out
}

func isReasonType(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "Reason"
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "decide" && x.Sel.Name == "Reason"
	}
	return false
}

func TestRefusalReasons(t *testing.T) {
	got := map[Reason]bool{}
	for _, r := range RefusalReasons() {
		got[r] = true
	}
	if got[LiveSandbox] || got[Busy] || !got[HasProcesses] || !got[RuntimeUnreachableNow] {
		t.Fatalf("RefusalReasons = %v", RefusalReasons())
	}
	if len(got)+len(FailureReasons)+2 != len(Reasons) {
		t.Fatalf("refusals %d + failures %d + 2 live != %d reasons", len(got), len(FailureReasons), len(Reasons))
	}
}
