package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// BenchmarkPassDoctor is the daemon's pass against a real containerd with
// 20 live pods (a sandbox and a container each) on real cgroupfs, without
// the doctor checks and with them on every pass (every_passes = 1: the
// cpu.stat reads, the throttling share, one CRI ListContainerStats, the
// memcg findings from a probe reading). Compare the two: the ratio is
// what the checks add to a pass that runs them.
func BenchmarkPassDoctor(b *testing.B) {
	testbed.RequireRoot(b)
	root := testbed.NewCgroupRoot(b, "bench-doctor")
	ctrd := testbed.StartContainerd(b)
	kubelet := b.TempDir()
	if err := os.Mkdir(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		uid := testbed.RandomUID()
		rel := "kubepods/burstable/pod" + uid
		if err := root.Mkdir(rel); err != nil {
			b.Fatal(err)
		}
		sb := ctrd.RunPod(b, root.Rel(rel), uid, fmt.Sprintf("bench-%d", i))
		ctrd.CreateStartContainer(b, sb, "c")
	}
	cfg := config.Default()
	cfg.Runtime.Endpoint = ctrd.Endpoint()
	cfg.Cgroup.PodRoot, cfg.Cgroup.Driver, cfg.Cgroup.KubeletRoot = root.Rel("kubepods"), "cgroupfs", kubelet
	cfg.Clean.UseSystemd = "never"
	sample := &memcg.Sample{Dying: 10, Live: 1000, PodDying: -1}
	for _, every := range []int{0, 1} {
		b.Run(fmt.Sprintf("every_passes=%d", every), func(b *testing.B) {
			cfg.Doctor.EveryPasses = every
			log, _ := test.NewNullLogger()
			log.SetLevel(logrus.InfoLevel)
			d := New(cfg, nil, log)
			d.Metrics = metrics.New("bench")
			d.MemcgSample = func() *memcg.Sample { return sample }
			defer d.links.Close()
			ctx := context.Background()
			stage := func(string) {}
			// Warm: connections made, the first cpu.stat read taken.
			d.enginePass(ctx, cfg, 1, map[string]int{}, stage)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				res := d.enginePass(ctx, cfg, uint64(i+2), map[string]int{}, stage)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				b.ReportMetric(float64(time.Since(start).Microseconds()), "µs/pass-last")
			}
		})
	}
}
