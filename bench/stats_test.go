package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in          Series
		med, lo, hi float64
		formatted   string
	}{
		{in: Series{3, 1, 2}, med: 2, lo: 1, hi: 3, formatted: "2.00x (1.00x–3.00x)"},
		{in: Series{4, 1, 2, 3}, med: 2.5, lo: 1, hi: 4, formatted: "2.50x (1.00x–4.00x)"},
		{in: Series{7}, med: 7, lo: 7, hi: 7, formatted: "7.00x (1 run)"},
		{in: nil, formatted: "—"},
	} {
		st := tc.in.Stats()
		if st.Median != tc.med || st.Min != tc.lo || st.Max != tc.hi || st.N != len(tc.in) {
			t.Errorf("%v: got %+v", tc.in, st)
		}
		if got := st.Format(X); got != tc.formatted {
			t.Errorf("%v: formatted %q, want %q", tc.in, got, tc.formatted)
		}
	}
}

func TestRatiosRunByRun(t *testing.T) {
	// The median of per-run ratios, not the ratio of medians.
	a, b := Series{2, 9, 4}, Series{1, 3, 4}
	got := Ratios(a, b)
	if len(got) != 3 || got[0] != 2 || got[1] != 3 || got[2] != 1 {
		t.Fatalf("Ratios = %v", got)
	}
	if m := got.Stats().Median; m != 2 {
		t.Fatalf("median ratio %v, want 2", m)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/cgroupclean/cgroupclean/cgroupclean/memcg
cpu: Intel(R) Xeon(R)
BenchmarkProbe-2   	    2066	    512345 ns/op	         6.000 memcg-dirs	     98146 stat-read-ns	   72992 B/op	     663 allocs/op
BenchmarkProbe-2   	    2100	    500000 ns/op	         6.000 memcg-dirs	     90000 stat-read-ns	   72992 B/op	     663 allocs/op
PASS
ok  	github.com/cgroupclean/cgroupclean/cgroupclean/memcg	3.1s
`
	bs, err := ParseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Name != "BenchmarkProbe-2" || bs[0].N != 2066 {
		t.Fatalf("parsed %+v", bs)
	}
	for unit, want := range map[string]float64{"ns/op": 506172.5, "B/op": 72992, "allocs/op": 663, "memcg-dirs": 6, "stat-read-ns": 94073} {
		if got := Metric(bs, unit).Stats().Median; got != want {
			t.Errorf("%s: median %v, want %v", unit, got, want)
		}
	}
}

func TestReportVerdicts(t *testing.T) {
	r := &Results{Runs: 2, ScanReps: 1, Sizes: []SizeResult{{
		Pods: 10, Dirs: 300,
		Find: Series{0.010, 0.020}, Scan: Series{0.015, 0.050}, ScanDefault: Series{0.005, 0.010},
		FindDel: Series{1, 1}, CleanScan: Series{0.5, 0.5}, CleanApply: Series{0.5, 1.5},
		FindDelDirs: 300, CleanDirs: 300, RSS: Series{20 << 20, 21 << 20},
	}}, Decide: GoBenchResult{Missing: "x"}, Probe: GoBenchResult{Missing: "memcg package not present"}}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	for _, want := range []string{
		// scan ratios 1.5 and 2.5: median 2.0, met.
		"| 2.00x (1.50x–2.50x) | met |",
		// removal rate ratios 1/1 and 1/2: median 0.75, not met.
		"| 0.75x (0.50x–1.00x) | **not met** |",
		"not measured: memcg package not present",
		"| 10 | 20.5 MiB (20.0 MiB–21.0 MiB) | met |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
}

func TestReliefSectionKept(t *testing.T) {
	old := []byte("# old rows\n\n<!-- relief:begin (x) -->\n## Relief\nrow\n<!-- relief:end -->\n")
	if got, want := string(reliefSection(old)), "\n<!-- relief:begin (x) -->\n## Relief\nrow\n<!-- relief:end -->\n"; got != want {
		t.Fatalf("reliefSection = %q, want %q", got, want)
	}
	if got := reliefSection([]byte("# no relief here\n")); got != nil {
		t.Fatalf("reliefSection without markers = %q", got)
	}
}
