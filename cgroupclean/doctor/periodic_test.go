package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
)

// The periodic checks grade the memcg probe's reading and the runtime's
// layer figures as doctor does, and count them per table row: a v2 node
// has no memcg ID finding, and no probe means the memcg checks did not
// run (said, not counted as healthy).
func TestRunPeriodic(t *testing.T) {
	cfg := config.Default()
	scan := &engine.Scan{Snapshot: live.Snapshot{Sandboxes: []live.Sandbox{{ID: "sb1", PodUID: "u1", Namespace: "ns", Name: "p"}}}}
	containers := []cri.ContainerInfo{
		{ID: "c1", SandboxID: "sb1", Name: "small", HasLayer: true, LayerInodes: 10},
		{ID: "c2", SandboxID: "sb1", Name: "big", HasLayer: true, LayerInodes: DefaultInodeThreshold + 1},
	}
	for _, tc := range []struct {
		name   string
		sample *memcg.Sample
		want   map[PeriodicKey]int
		notRun string
	}{
		{"v1 over both thresholds", &memcg.Sample{Dying: int64(cfg.Memcg.DyingWarn), Live: 40000, PodDying: -1},
			map[PeriodicKey]int{{IDMemcgDying, MetricWarning}: 1, {IDMemcgIDs, MetricWarning}: 1, {IDLayerHigh, MetricWarning}: 1}, ""},
		{"v1 healthy", &memcg.Sample{Dying: 3, Live: 100, PodDying: -1},
			map[PeriodicKey]int{{IDLayerHigh, MetricWarning}: 1}, ""},
		{"v2 has no ID limit", &memcg.Sample{V2: true, Dying: int64(cfg.Memcg.DyingAct), Live: 60000},
			map[PeriodicKey]int{{IDMemcgDying, MetricWarning}: 1, {IDLayerHigh, MetricWarning}: 1}, ""},
		{"no probe", nil, map[PeriodicKey]int{{IDLayerHigh, MetricWarning}: 1}, "memcg.mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := RunPeriodic(context.Background(), Input{Config: cfg, Scan: scan, Containers: containers}, nil, tc.sample)
			got := CountPeriodic(rep)
			if len(got) != 2*len(PeriodicFindings) {
				t.Fatalf("%d series, want every row at both severities: %v", len(got), got)
			}
			for k, n := range got {
				if n != tc.want[k] {
					t.Errorf("%v = %d, want %d", k, n, tc.want[k])
				}
			}
			if joined := strings.Join(rep.NotRun, "; "); (tc.notRun == "") != (joined == "") || !strings.Contains(joined, tc.notRun) {
				t.Errorf("not run: %q, want %q", joined, tc.notRun)
			}
			if hs := rep.Find(IDLayerHigh); len(hs) != 1 || hs[0].Subject != "ns/p/big" {
				t.Errorf("layer findings %+v", hs)
			}
		})
	}
}
