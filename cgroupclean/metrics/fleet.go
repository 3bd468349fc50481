package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/doctor"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
)

// fleet holds the metrics a fleet view needs beyond one node's passes:
// which clean mode runs, what observe mode would have removed, and the
// cheap doctor checks' findings.
type fleet struct {
	cleanMode      *prometheus.GaugeVec
	wouldRemove    *prometheus.CounterVec
	doctorFindings *prometheus.GaugeVec
	doctorLastRun  prometheus.Gauge
}

func newFleet(register func(prometheus.Collector)) fleet {
	f := fleet{
		cleanMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "clean_mode",
			Help: "1 for the clean mode in force ([clean] mode: act removes, observe only records what it would remove), 0 for the other.",
		}, []string{"mode"}),
		wouldRemove: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "would_remove_total",
			Help: "Orphans observe mode would have removed (after every gate and final check), by kind.",
		}, []string{"kind"}),
		doctorFindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "doctor_findings",
			Help: "Objects (pods, containers, hierarchies) a cheap doctor check flags now, by finding ID and severity (warning, info).",
		}, []string{"finding", "severity"}),
		doctorLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "doctor_last_run_timestamp_seconds",
			Help: "Unix time of the last run of the cheap doctor checks; 0 before the first.",
		}),
	}
	for _, c := range []prometheus.Collector{f.cleanMode, f.wouldRemove, f.doctorFindings, f.doctorLastRun} {
		register(c)
	}
	for _, mode := range []string{config.ModeAct, config.ModeObserve} {
		f.cleanMode.WithLabelValues(mode)
	}
	for _, k := range kinds {
		f.wouldRemove.WithLabelValues(k)
	}
	for k := range doctor.CountPeriodic(doctor.Report{}) {
		f.doctorFindings.WithLabelValues(k.ID, k.Severity)
	}
	return f
}

// CleanMode records the clean mode in force (config.ModeAct or
// config.ModeObserve).
func (m *Metrics) CleanMode(mode string) {
	if m == nil {
		return
	}
	for _, x := range []string{config.ModeAct, config.ModeObserve} {
		v := 0.0
		if x == mode {
			v = 1
		}
		m.cleanMode.WithLabelValues(x).Set(v)
	}
}

func (m *Metrics) observed(r engine.Result) {
	if r.Outcome == engine.Observed {
		m.wouldRemove.WithLabelValues(r.Item.Kind.String()).Inc()
	}
}

// DoctorFindings records one run of the cheap doctor checks, ended at.
func (m *Metrics) DoctorFindings(rep doctor.Report, at time.Time) {
	if m == nil {
		return
	}
	for k, n := range doctor.CountPeriodic(rep) {
		m.doctorFindings.WithLabelValues(k.ID, k.Severity).Set(float64(n))
	}
	m.doctorLastRun.Set(float64(at.UnixNano()) / 1e9)
}
