package metrics

import (
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/doctor"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

func gaugeOf(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	s := series(gather(t, m)[name], labels)
	if s == nil {
		t.Fatalf("no series %s%v", name, labels)
	}
	if s.Counter != nil {
		return s.GetCounter().GetValue()
	}
	return s.GetGauge().GetValue()
}

// The mode gauge is 1 for one mode and 0 for the other; an observed orphan
// counts in would_remove_total by kind and nowhere else; every periodic
// doctor finding is pre-set at both severities and counts its objects.
func TestFleetMetrics(t *testing.T) {
	m := New("test")
	for _, mode := range []string{config.ModeAct, config.ModeObserve} {
		if v := gaugeOf(t, m, "cgroupclean_clean_mode", map[string]string{"mode": mode}); v != 0 {
			t.Errorf("clean_mode{%s} = %v before the daemon set it", mode, v)
		}
	}
	m.CleanMode(config.ModeObserve)
	m.CleanMode(config.ModeAct)
	m.CleanMode(config.ModeObserve)
	if gaugeOf(t, m, "cgroupclean_clean_mode", map[string]string{"mode": "observe"}) != 1 || gaugeOf(t, m, "cgroupclean_clean_mode", map[string]string{"mode": "act"}) != 0 {
		t.Error("clean_mode does not follow the last mode")
	}
	m.Result(engine.Result{Item: decide.Item{Kind: decide.ContainerKind}, Outcome: engine.Observed}, names.Cgroupfs)
	if v := gaugeOf(t, m, "cgroupclean_would_remove_total", map[string]string{"kind": "container"}); v != 1 {
		t.Errorf("would_remove_total{container} = %v", v)
	}
	if v := gaugeOf(t, m, "cgroupclean_removals_total", map[string]string{"kind": "container", "driver": "cgroupfs"}); v != 0 {
		t.Errorf("an observed orphan counted as removed: %v", v)
	}
	for _, p := range doctor.PeriodicFindings {
		for _, sev := range []string{doctor.MetricWarning, doctor.MetricInfo} {
			if v := gaugeOf(t, m, "cgroupclean_doctor_findings", map[string]string{"finding": p.ID, "severity": sev}); v != 0 {
				t.Errorf("doctor_findings{%s,%s} = %v before a run", p.ID, sev, v)
			}
		}
	}
	rep := doctor.Report{Findings: []doctor.Finding{
		{ID: doctor.IDThrottled, Severity: doctor.Warn}, {ID: doctor.IDThrottled, Severity: doctor.Warn},
		{ID: doctor.IDMemcgDying, Severity: doctor.Critical}, {ID: doctor.IDMemcgDying, Severity: doctor.OK}, {ID: doctor.IDDying, Severity: doctor.Warn},
		{ID: doctor.IDLayers, Severity: doctor.Info}, // a summary, not a periodic row
		{ID: doctor.IDLayerHigh, Severity: doctor.Info},
	}}
	at := time.Unix(1700000000, 0)
	m.DoctorFindings(rep, at)
	for _, c := range []struct {
		id, sev string
		want    float64
	}{
		{doctor.IDThrottled, "warning", 2}, {doctor.IDMemcgDying, "warning", 1}, {doctor.IDMemcgDying, "info", 0},
		{doctor.IDLayerHigh, "info", 1}, {doctor.IDMemcgIDs, "warning", 0},
	} {
		if v := gaugeOf(t, m, "cgroupclean_doctor_findings", map[string]string{"finding": c.id, "severity": c.sev}); v != c.want {
			t.Errorf("doctor_findings{%s,%s} = %v, want %v", c.id, c.sev, v, c.want)
		}
	}
	for _, id := range []string{doctor.IDLayers, doctor.IDDying} {
		if s := series(gather(t, m)["cgroupclean_doctor_findings"], map[string]string{"finding": id}); s != nil {
			t.Errorf("%s, outside the periodic table, became a label value", id)
		}
	}
	if v := gaugeOf(t, m, "cgroupclean_doctor_last_run_timestamp_seconds", nil); v != 1700000000 {
		t.Errorf("doctor_last_run = %v", v)
	}
	m.DoctorFindings(doctor.Report{}, at)
	if v := gaugeOf(t, m, "cgroupclean_doctor_findings", map[string]string{"finding": doctor.IDThrottled, "severity": "warning"}); v != 0 {
		t.Errorf("a run with nothing flagged left %v", v)
	}
}
