// Package bench is the `make bench` harness: it builds kubelet-like pod
// cgroup trees on the real cgroupfs (under the harness's own test cgroup
// root, in every hierarchy), times the engine against `find` baselines on
// exactly the same directories, measures peak RSS and idle CPU in child
// processes, runs the Go benchmarks of the decision step and the memcg
// probe, and writes bench/results.md. The harness itself is TestBench in
// bench_test.go (skipped unless CGROUPCLEAN_BENCH=1); this file holds the
// pure parts: statistics, `go test -bench` output parsing, the report.
package bench

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Series is one figure measured once per run.
type Series []float64

// Stat is the median, min and max of a series.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Stats summarises s. The median of an even count is the mean of the two
// middle values.
func (s Series) Stats() Stat {
	if len(s) == 0 {
		return Stat{}
	}
	v := append([]float64(nil), s...)
	sort.Float64s(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Stat{Median: m, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// Ratios divides a by b run by run (a[i]/b[i]); both must be the same runs.
func Ratios(a, b Series) Series {
	n := min(len(a), len(b))
	out := make(Series, 0, n)
	for i := 0; i < n; i++ {
		if b[i] != 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// Format writes "median (min–max)" with each value through f.
func (st Stat) Format(f func(float64) string) string {
	if st.N == 0 {
		return "—"
	}
	if st.N == 1 {
		return f(st.Median) + " (1 run)"
	}
	return fmt.Sprintf("%s (%s–%s)", f(st.Median), f(st.Min), f(st.Max))
}

// Ms formats seconds as milliseconds.
func Ms(sec float64) string { return fmt.Sprintf("%.1f ms", sec*1e3) }

// Us formats seconds as microseconds.
func Us(sec float64) string { return fmt.Sprintf("%.0f µs", sec*1e6) }

// X formats a ratio.
func X(r float64) string { return fmt.Sprintf("%.2fx", r) }

// MiB formats bytes as MiB.
func MiB(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// Rate formats directories per second.
func Rate(r float64) string { return fmt.Sprintf("%.0f dirs/s", r) }

// GoBench is one result line of `go test -bench`.
type GoBench struct {
	Name    string
	N       int
	Metrics map[string]float64 // by unit: "ns/op", "B/op", "allocs/op", custom ones
}

// ParseGoBench reads the result lines of `go test -bench` output (one per
// -count), e.g.
//
//	BenchmarkDecide100k-2   10   123456789 ns/op   1234 B/op   12 allocs/op
func ParseGoBench(r io.Reader) ([]GoBench, error) {
	var out []GoBench
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		b := GoBench{Name: f[0], N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("parse %q: value %q: %w", sc.Text(), f[i], err)
			}
			b.Metrics[f[i+1]] = v
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// Metric collects one metric over a benchmark's lines.
func Metric(bs []GoBench, unit string) Series {
	var s Series
	for _, b := range bs {
		if v, ok := b.Metrics[unit]; ok {
			s = append(s, v)
		}
	}
	return s
}
