package soak

import (
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
)

func TestQuantile(t *testing.T) {
	s := func(n ...int) Durations {
		var d Durations
		for _, x := range n {
			d = append(d, time.Duration(x)*time.Second)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		d    Durations
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", s(3), 0.95, 3 * time.Second},
		{"median odd, unsorted", s(5, 1, 3), 0.5, 3 * time.Second},
		{"median even is the lower middle", s(4, 1, 3, 2), 0.5, 2 * time.Second},
		{"p95 of 20 is the 19th", s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19 * time.Second},
		{"max", s(2, 9, 4), 1, 9 * time.Second},
		{"q 0 is the min", s(2, 9, 4), 0, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.Quantile(tc.q); got != tc.want {
				t.Fatalf("Quantile(%g) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestCounterSorted(t *testing.T) {
	c := Counter{"b": 2, "a": 2, "c": 5}
	if got := strings.Join(c.Sorted(), ","); got != "c,a,b" {
		t.Fatalf("Sorted = %s", got)
	}
	if c.Total() != 9 {
		t.Fatalf("Total = %d", c.Total())
	}
}

// TestReportVerdict: a violation and lost directories show in the report.
func TestReportVerdict(t *testing.T) {
	r := &Report{Planned: time.Minute, LostDirs: 3, LostPods: 1, Violations: []string{"live pod x lost /a"},
		Orphans: []*OrphanKind{{Kind: "stop+remove", Made: 2, Removed: 2, Waits: Durations{time.Second, 2 * time.Second}}},
		Kept:    Counter{"has-processes": 4}, PodsByQoS: Counter{}, Failed: Counter{}}
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| **3** (1 pods) |", "- live pod x lost /a", "| stop+remove |", "1.00 s / 2.00 s / 2.00 s", "| `has-processes` | 4 |", "| (none) | 0 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestAddKept: a kept summary adds its COUNT, a final-check refusal one,
// a debug per-cgroup record nothing (the summary has it already).
func TestAddKept(t *testing.T) {
	r := &Report{Kept: Counter{}}
	r.AddKept(audit.IDKeptSummary, "info", "awaiting-confirmation", 7)
	r.AddKept(audit.IDKeptSummary, "info", "awaiting-confirmation", 3)
	r.AddKept(audit.IDRemovalRefused, "debug", "awaiting-confirmation", 0)
	r.AddKept(audit.IDRemovalRefused, "warning", "processes-appeared", 0)
	r.AddKept(audit.IDOrphanRemoved, "info", "", 0)
	if r.Kept["awaiting-confirmation"] != 10 || r.Kept["processes-appeared"] != 1 || len(r.Kept) != 2 {
		t.Fatalf("Kept = %v, want awaiting-confirmation=10 processes-appeared=1", r.Kept)
	}
}
