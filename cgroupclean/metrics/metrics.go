// Package metrics is cgroupcleand's Prometheus instrumentation: one
// registry of its own (not the global default), every metric named by the
// Prometheus rules (https://prometheus.io/docs/practices/naming/): prefix
// cgroupclean_, base units, _total on counters. Labels are bounded sets
// (kinds, drivers, the named reasons of decide.Reasons, results); a pod UID
// or a path is never a label. Every label value is set to 0 at start, so
// an alert reads 0 rather than "no data".
//
// Every method is safe on a nil *Metrics (it does nothing), so callers keep
// one field and never test it.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

const ns = "cgroupclean"

// Pass results (label result of cgroupclean_passes_total).
const (
	PassOK                 = "ok"                  // the runtime answered and the pass ran to its end
	PassRuntimeUnreachable = "runtime-unreachable" // nothing was removed: the runtime could not be asked
	PassFailed             = "failed"              // discovery or the inventory failed
)

// Stop job results (label result of cgroupclean_systemd_stop_jobs_total).
const (
	StopDone     = "done"
	StopFailed   = "failed"
	StopTimeout  = "timeout"
	StopNoUnit   = "no-such-unit"
	StopCanceled = "canceled"
	StopError    = "error"
)

// Memcg actions, triggers and results (cgroupclean_memcg_actions_total).
const (
	ActionPrevent  = "prevent-on-remove" // step 1: reclaim an orphan's memcg right before its rmdir
	TriggerRemoval = "orphan-removal"
	ResultOK       = "ok"
	ResultError    = "error"
)

var (
	kinds        = []string{decide.PodKind.String(), decide.ContainerKind.String()}
	drivers      = []string{string(names.Systemd), string(names.Cgroupfs)}
	passResults  = []string{PassOK, PassRuntimeUnreachable, PassFailed}
	stopResults  = []string{StopDone, StopFailed, StopTimeout, StopNoUnit, StopCanceled, StopError}
	statTargets  = []string{"root", "pod_root"}
	memcgActions = []struct{ action, trigger string }{
		{ActionPrevent, TriggerRemoval},
		{string(memcg.ActionReclaimPodRoot), string(memcg.TriggerDyingCount)},
		{string(memcg.ActionReclaimPodRoot), string(memcg.TriggerDyingRatio)},
		{string(memcg.ActionReclaimPodRoot), string(memcg.TriggerLatency)},
		{string(memcg.ActionDropCaches), string(memcg.TriggerDyingCount)},
		{string(memcg.ActionDropCaches), string(memcg.TriggerDyingRatio)},
		{string(memcg.ActionDropCaches), string(memcg.TriggerLatency)},
	}
)

// Metrics holds the registry and every metric of the daemon.
type Metrics struct {
	reg     *prometheus.Registry
	version string

	passDuration   prometheus.Histogram
	passes         *prometheus.CounterVec
	lastPass       prometheus.Gauge
	lastGoodPass   prometheus.Gauge
	orphans        *prometheus.GaugeVec
	oldestOrphan   prometheus.Gauge
	removals       *prometheus.CounterVec
	failures       *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	criDuration    prometheus.Histogram
	criErrors      prometheus.Counter
	stopJobs       *prometheus.CounterVec
	memcgDying     prometheus.Gauge
	memcgLive      prometheus.Gauge
	memcgStat      *prometheus.HistogramVec
	memcgActions   *prometheus.CounterVec
	buildInfo      *prometheus.GaugeVec
	buildInfoLabel [2]string
	fleet
}

// New makes the registry with every metric and every label value at 0.
// version is the build's version (cgroupclean_build_info).
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), version: version}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }

	m.passDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "pass_duration_seconds",
		Help:    "Duration of one daemon pass: scan, apply and report.",
		Buckets: prometheus.ExponentialBucketsRange(0.001, 300, 12),
	})
	m.passes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "passes_total",
		Help: "Daemon passes by result: ok, runtime-unreachable (nothing removed), failed (discovery or inventory failed).",
	}, []string{"result"})
	m.lastPass = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "last_pass_timestamp_seconds",
		Help: "Unix time at which the last pass ended, whatever its result.",
	})
	m.lastGoodPass = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "last_successful_pass_timestamp_seconds",
		Help: "Unix time at which the last pass with result ok ended (a heartbeat for alerts).",
	})
	m.orphans = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "orphans",
		Help: "Orphaned cgroups seen by the last pass, by kind (pod cgroups; container cgroups in live pods).",
	}, []string{"kind"})
	m.oldestOrphan = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "oldest_orphan_age_seconds",
		Help: "Age of the oldest orphan of the last pass (since its cgroup directory last changed); 0 when none.",
	})
	m.removals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "removals_total",
		Help: "Orphaned cgroups removed, by kind and cgroup driver.",
	}, []string{"kind", "driver"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "removal_failures_total",
		Help: "Removals tried that did not finish, by reason.",
	}, []string{"reason"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "refusals_total",
		Help: "Orphans kept, by the gate that refused them: once per orphan per pass, plus every final check before a removal that said no.",
	}, []string{"reason"})
	m.criDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "cri_request_duration_seconds",
		Help:    "Duration of one ask of the container runtime over CRI (ListPodSandbox and ListContainers).",
		Buckets: prometheus.ExponentialBucketsRange(0.0005, 30, 12),
	})
	m.criErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "cri_errors_total",
		Help: "CRI asks that failed, dial failures included.",
	})
	m.stopJobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "systemd_stop_jobs_total",
		Help: "systemd StopUnit jobs, by result.",
	}, []string{"result"})
	m.memcgDying = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "memcg_dying_cgroups",
		Help: "Dying (zombie) memory cgroups at the last probe: machine-wide on cgroup v1, below the root on v2.",
	})
	m.memcgLive = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "memcg_live_cgroups",
		Help: "Live memory cgroup directories at the last probe.",
	})
	m.memcgStat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "memcg_stat_read_duration_seconds",
		Help:    "Time to open, read and close memory.stat, of the root and of the pod root (what kubelet pays per read).",
		Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 11),
	}, []string{"target"})
	m.memcgActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "memcg_actions_total",
		Help: "memcg reclaim and drop_caches actions, by action, trigger and result.",
	}, []string{"action", "trigger", "result"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info",
		Help: "Always 1: the version, the cgroup mode (v1, hybrid, v2) and the cgroup driver in use (unknown before the first pass).",
	}, []string{"version", "cgroup_mode", "driver"})

	for _, c := range []prometheus.Collector{
		m.passDuration, m.passes, m.lastPass, m.lastGoodPass, m.orphans, m.oldestOrphan,
		m.removals, m.failures, m.refusals, m.criDuration, m.criErrors, m.stopJobs,
		m.memcgDying, m.memcgLive, m.memcgStat, m.memcgActions, m.buildInfo,
	} {
		f(c)
	}
	m.fleet = newFleet(f)
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(collectors.NewGoCollector())

	for _, r := range passResults {
		m.passes.WithLabelValues(r)
	}
	for _, k := range kinds {
		m.orphans.WithLabelValues(k)
		for _, d := range drivers {
			m.removals.WithLabelValues(k, d)
		}
	}
	for _, r := range decide.FailureReasons {
		m.failures.WithLabelValues(string(r))
	}
	for _, r := range decide.RefusalReasons() {
		m.refusals.WithLabelValues(string(r))
	}
	for _, r := range stopResults {
		m.stopJobs.WithLabelValues(r)
	}
	for _, t := range statTargets {
		m.memcgStat.WithLabelValues(t)
	}
	for _, a := range memcgActions {
		for _, r := range []string{ResultOK, ResultError} {
			m.memcgActions.WithLabelValues(a.action, a.trigger, r)
		}
	}
	m.setBuildInfo("unknown", "unknown")
	return m
}

// Registry is the registry holding every metric.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) setBuildInfo(mode, driver string) {
	if m.buildInfoLabel == [2]string{mode, driver} {
		return
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(m.version, mode, driver).Set(1)
	m.buildInfoLabel = [2]string{mode, driver}
}

// Scanned records what a pass's scan saw: orphans now and their age, the
// orphans kept by each gate, the cgroup mode and driver.
func (m *Metrics) Scanned(s *engine.Scan) {
	if m == nil || s == nil {
		return
	}
	if len(s.Hierarchies) > 0 && s.Driver != "" {
		mode := hierarchy.Mode(s.Hierarchies)
		if mode == "" {
			mode = "unknown"
		}
		m.setBuildInfo(mode, string(s.Driver))
	}
	sum := s.Plan.Summary
	m.orphans.WithLabelValues(decide.PodKind.String()).Set(float64(sum.OrphanPods))
	m.orphans.WithLabelValues(decide.ContainerKind.String()).Set(float64(sum.OrphanContainers))
	var oldest time.Duration
	for i := range s.Plan.Items {
		it := &s.Plan.Items[i]
		if it.State == decide.Orphan {
			oldest = max(oldest, it.Age)
		}
		for j := range it.Children {
			if it.Children[j].State == decide.Orphan {
				oldest = max(oldest, it.Children[j].Age)
			}
		}
	}
	m.oldestOrphan.Set(oldest.Seconds())
	for r, n := range s.Plan.Kept {
		m.refusals.WithLabelValues(string(r)).Add(float64(n))
	}
}

// Result records one removal's outcome. driver is the scan's.
func (m *Metrics) Result(r engine.Result, driver names.Driver) {
	if m == nil {
		return
	}
	switch r.Outcome {
	case engine.Removed:
		m.removals.WithLabelValues(r.Item.Kind.String(), string(driver)).Inc()
	case engine.Refused:
		m.refusals.WithLabelValues(string(r.Reason)).Inc()
	case engine.Failed:
		m.failures.WithLabelValues(string(r.Reason)).Inc()
	case engine.Observed:
		m.observed(r)
	}
}

// PassDone records a pass that ended at `at` after `took`, with result one
// of the Pass* constants.
func (m *Metrics) PassDone(result string, took time.Duration, at time.Time) {
	if m == nil {
		return
	}
	m.passDuration.Observe(took.Seconds())
	m.passes.WithLabelValues(result).Inc()
	m.lastPass.Set(float64(at.UnixNano()) / 1e9)
	if result == PassOK {
		m.lastGoodPass.Set(float64(at.UnixNano()) / 1e9)
	}
}

// CRI records one ask of the runtime.
func (m *Metrics) CRI(took time.Duration, err error) {
	if m == nil {
		return
	}
	m.criDuration.Observe(took.Seconds())
	if err != nil {
		m.criErrors.Inc()
	}
}

// CRIDialFailed records a runtime client that could not be made.
func (m *Metrics) CRIDialFailed() {
	if m == nil {
		return
	}
	m.criErrors.Inc()
}

// StopJob records one StopUnit job by its result (Stop* constants).
func (m *Metrics) StopJob(result string) {
	if m == nil {
		return
	}
	m.stopJobs.WithLabelValues(result).Inc()
}

// MemcgSample records one probe reading (memcg.Observer).
func (m *Metrics) MemcgSample(s memcg.Sample) {
	if m == nil {
		return
	}
	m.memcgDying.Set(float64(s.Dying))
	m.memcgLive.Set(float64(s.Live))
	m.memcgStat.WithLabelValues("root").Observe(s.RootLatency.Seconds())
	if s.PodLatency > 0 {
		m.memcgStat.WithLabelValues("pod_root").Observe(s.PodLatency.Seconds())
	}
}

// MemcgAction records one watchdog action (memcg.Observer).
func (m *Metrics) MemcgAction(d memcg.Decision, o memcg.Outcome) {
	if m == nil || o.Action == memcg.ActionNone || o.Action == "" {
		return
	}
	m.memcgActions.WithLabelValues(string(o.Action), string(d.Trigger), result(o.Err)).Inc()
}

// MemcgPrevent records one step-1 reclaim before an rmdir (memcg.Observer).
func (m *Metrics) MemcgPrevent(_ int64, _ time.Duration, err error) {
	if m == nil {
		return
	}
	m.memcgActions.WithLabelValues(ActionPrevent, TriggerRemoval, result(err)).Inc()
}

func result(err error) string {
	if err != nil {
		return ResultError
	}
	return ResultOK
}
