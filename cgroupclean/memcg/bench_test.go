package memcg

import (
	"context"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// BenchmarkProbe is the cost of one probe pass on this machine: the
// dying count (a walk of the memory hierarchy on v1), the timed memory.stat
// reads, meminfo and PSI. Reading needs no root.
func BenchmarkProbe(b *testing.B) {
	hs, err := hierarchy.Discover("/sys/fs/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	root, v2, err := Locate(hs)
	if err != nil {
		b.Skip(err)
	}
	p, err := NewProbe(Paths{ProcRoot: "/proc", MemoryRoot: root, V2: v2}, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var s Sample
	b.ReportAllocs()
	for b.Loop() {
		if s, err = p.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.RootLatency.Nanoseconds()), "stat-read-ns")
	b.ReportMetric(float64(s.Live), "memcg-dirs")
}

// BenchmarkDecide is the cost of the pure decision on a full window.
func BenchmarkDecide(b *testing.B) {
	w := NewWatchdog(actCfg(), v2Env, &fakeClock{t0})
	for range 5 {
		w.Observe(zombies)
	}
	for b.Loop() {
		_ = w.Observe(zombies)
	}
}
