package doctor

import (
	"context"

	"fmt"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
)

// checkMemcg samples the memcg watchdog's probe: the zombie count and the
// memory.stat read latency kubelet pays (cAdvisor reads memory.stat of
// every container at each housekeeping).
func checkMemcg(ctx context.Context, in Input, r *Report) {
	if in.Scan == nil || len(in.Scan.Hierarchies) == 0 {
		return
	}
	mc := in.Config.Memcg
	mon, err := memcg.NewMonitor(in.Scan.Hierarchies, in.ProcRoot, in.Scan.PodRoot, mc, memcg.SystemClock{})
	if err != nil {
		r.notRun("zombie memcgs", err)
		return
	}
	s, err := mon.Probe.Sample(ctx)
	if err != nil {
		r.notRun("zombie memcgs", err)
		return
	}
	r.add(memcgDyingFinding(s, mc))
	lat := s.Latency()
	ms := fmt.Sprintf("memory.stat read took %s at the root", memcg.RoundDuration(s.RootLatency))
	if s.PodLatency > 0 {
		ms += fmt.Sprintf(", %s at the pod root", memcg.RoundDuration(s.PodLatency))
	}
	if s.LatencyCensored {
		ms += " (a read did not finish within memcg.stat_timeout: at least this)"
	}
	sev := level(lat.Seconds(), mc.LatencyWarn.Seconds(), mc.LatencyAct.Seconds())
	action := "none needed"
	if sev != OK {
		action = "before 5.2 zombies make this slow (reclaim them); on newer kernels it is usually stats-flush contention: look at memory pressure and the number of cgroups"
	}
	r.add(Finding{ID: IDMemcgLatency, Severity: sev, Value: lat.Seconds(), Measured: ms,
		Threshold: fmt.Sprintf("warn >= %s, critical >= %s", mc.LatencyWarn.Duration, mc.LatencyAct.Duration), Source: "config memcg.latency_warn / memcg.latency_act",
		Action: action})
}

// memcgDyingFinding grades the probe's zombie count against
// memcg.dying_warn and memcg.dying_act.
func memcgDyingFinding(s memcg.Sample, mc config.Memcg) Finding {
	where := "below the root (cgroup.stat)"
	if !s.V2 {
		where = "machine-wide (/proc/cgroups memory num_cgroups - directories)"
	}
	m := fmt.Sprintf("%d dying memory cgroups %s, %d live", s.Dying, where, s.Live)
	if s.PodDying >= 0 {
		m += fmt.Sprintf("; %d below the pod root", s.PodDying)
	}
	return Finding{ID: IDMemcgDying, Severity: level(float64(s.Dying), float64(mc.DyingWarn), float64(mc.DyingAct)), Value: float64(s.Dying),
		Measured: m, Threshold: fmt.Sprintf("warn >= %d, critical >= %d", mc.DyingWarn, mc.DyingAct), Source: "config memcg.dying_warn / memcg.dying_act",
		Action: "memcg.mode = \"act\" lets the service reclaim at the pod root (v2) or drop caches, rate-limited; on v1 with prevent_on_remove the daemon frees each orphan's memcg before its rmdir",
		Refs:   []string{"https://github.com/google/cadvisor/issues/1774"}}
}

func kernelRelease(proc string) string {
	b, err := os.ReadFile(filepath.Join(proc, "sys/kernel/osrelease"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
