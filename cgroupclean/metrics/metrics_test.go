package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
)

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func series(f *dto.MetricFamily, want map[string]string) *dto.Metric {
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// The Prometheus naming rules, checked on what is exported: the linter
// promtool runs, and this project's own rules on top.
func TestNamingRules(t *testing.T) {
	m := New("test")
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	forbidden := map[string]bool{"uid": true, "pod_uid": true, "pod": true, "path": true, "cgroup": true, "id": true, "container_id": true, "unit": true, "namespace": true, "name": true}
	for name, f := range gather(t, m) {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, "cgroupclean_") {
			t.Errorf("%s lacks the cgroupclean_ prefix", name)
		}
		if (f.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v and _total suffix disagree", name, f.GetType())
		}
		for _, bad := range []string{"_ms", "_milliseconds", "_us", "_bytes_total_bytes", "_minutes"} {
			if strings.Contains(name, bad) {
				t.Errorf("%s is not in base units", name)
			}
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		if n := len(f.GetMetric()); n == 0 || n > 64 {
			t.Errorf("%s has %d series: every label value must be pre-set, and the set bounded", name, n)
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if forbidden[l.GetName()] {
					t.Errorf("%s has label %s: unbounded", name, l.GetName())
				}
			}
		}
	}
}

// Every named refusal and failure reason reads 0 before anything happened.
func TestEveryReasonPreset(t *testing.T) {
	fams := gather(t, New("test"))
	for _, r := range decide.RefusalReasons() {
		if s := series(fams["cgroupclean_refusals_total"], map[string]string{"reason": string(r)}); s == nil || s.GetCounter().GetValue() != 0 {
			t.Errorf("refusals_total{reason=%q} not pre-set to 0", r)
		}
	}
	for _, r := range decide.FailureReasons {
		if s := series(fams["cgroupclean_removal_failures_total"], map[string]string{"reason": string(r)}); s == nil {
			t.Errorf("removal_failures_total{reason=%q} not pre-set", r)
		}
	}
	if n := len(fams["cgroupclean_refusals_total"].GetMetric()); n != len(decide.RefusalReasons()) {
		t.Errorf("%d refusal series, %d reasons", n, len(decide.RefusalReasons()))
	}
}

// A nil *Metrics records nothing and never panics: callers keep a nil
// field when metrics are off.
func TestNilSafe(t *testing.T) {
	var m *Metrics
	m.Scanned(&engine.Scan{})
	m.Result(engine.Result{}, names.Systemd)
	m.PassDone(PassOK, time.Second, time.Now())
	m.CRI(time.Second, nil)
	m.CRIDialFailed()
	m.StopJob(StopDone)
	m.MemcgSample(memcg.Sample{})
	m.MemcgAction(memcg.Decision{}, memcg.Outcome{})
	m.MemcgPrevent(0, 0, nil)
	m.Instrument(&engine.Engine{})
	if m.Runtime(nil) != nil || m.Units(nil) != nil || m.Registry() != nil {
		t.Fatal("nil metrics wrapped something")
	}
}

func TestScannedAndResults(t *testing.T) {
	m := New("test")
	s := &engine.Scan{
		Driver:      names.Cgroupfs,
		Hierarchies: []hierarchy.Hierarchy{{Name: "memory", Version: 1, Controllers: []string{"memory"}}, {Name: "unified", Version: 2}},
		Plan: decide.Plan{
			Items: []decide.Item{
				{Kind: decide.PodKind, State: decide.Orphan, Age: 90 * time.Second},
				{Kind: decide.PodKind, State: decide.Live, Age: time.Hour, Children: []decide.Item{
					{Kind: decide.ContainerKind, State: decide.Orphan, Age: 2 * time.Minute},
				}},
			},
			Summary: decide.Summary{OrphanPods: 1, OrphanContainers: 1},
			Kept:    map[decide.Reason]int{decide.HasProcesses: 2},
		},
	}
	m.Scanned(s)
	m.Result(engine.Result{Item: decide.Item{Kind: decide.PodKind}, Outcome: engine.Removed}, s.Driver)
	m.Result(engine.Result{Outcome: engine.Refused, Reason: decide.ProcessesAppeared}, s.Driver)
	m.Result(engine.Result{Outcome: engine.Failed, Reason: decide.Busy}, s.Driver)
	at := time.Unix(1700000000, 0)
	m.PassDone(PassRuntimeUnreachable, 2*time.Second, at)
	fams := gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"cgroupclean_orphans", map[string]string{"kind": "pod"}, 1},
		{"cgroupclean_orphans", map[string]string{"kind": "container"}, 1},
		{"cgroupclean_oldest_orphan_age_seconds", nil, 120},
		{"cgroupclean_refusals_total", map[string]string{"reason": "has-processes"}, 2},
		{"cgroupclean_refusals_total", map[string]string{"reason": "processes-appeared"}, 1},
		{"cgroupclean_removals_total", map[string]string{"kind": "pod", "driver": "cgroupfs"}, 1},
		{"cgroupclean_removal_failures_total", map[string]string{"reason": "busy"}, 1},
		{"cgroupclean_passes_total", map[string]string{"result": "runtime-unreachable"}, 1},
		{"cgroupclean_last_pass_timestamp_seconds", nil, 1700000000},
		{"cgroupclean_last_successful_pass_timestamp_seconds", nil, 0},
		{"cgroupclean_build_info", map[string]string{"cgroup_mode": "hybrid", "driver": "cgroupfs", "version": "test"}, 1},
	} {
		s := series(fams[c.name], c.labels)
		if s == nil {
			t.Errorf("%s%v missing", c.name, c.labels)
			continue
		}
		got := s.GetGauge().GetValue() + s.GetCounter().GetValue()
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fams["cgroupclean_build_info"].GetMetric()); n != 1 {
		t.Errorf("build_info has %d series, want 1 (the unknown one replaced)", n)
	}
}

type fakeRuntime struct{ err error }

func (f fakeRuntime) Snapshot(context.Context) (live.Snapshot, error) { return live.Snapshot{}, f.err }

type fakeUnits struct{ err error }

func (fakeUnits) Lookup(context.Context, string) (bool, string, error) { return true, "/x", nil }
func (f fakeUnits) Stop(context.Context, string) (string, error)       { return "job done", f.err }

func TestWrappers(t *testing.T) {
	m := New("test")
	_, _ = m.Runtime(fakeRuntime{}).Snapshot(context.Background())
	_, _ = m.Runtime(fakeRuntime{err: errors.New("down")}).Snapshot(context.Background())
	e := &engine.Engine{RuntimeErr: errors.New("dial")}
	m.Instrument(e)
	if e.Runtime != nil {
		t.Fatal("Instrument made a runtime out of nil")
	}
	for _, err := range []error{nil, fmt.Errorf("stop: %w", sdunit.ErrJobTimeout), fmt.Errorf("x: %w", sdunit.ErrJobFailed), errors.New("bus gone")} {
		_, _ = m.Units(fakeUnits{err: err}).Stop(context.Background(), "u")
	}
	fams := gather(t, m)
	if s := series(fams["cgroupclean_cri_request_duration_seconds"], nil); s.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("CRI calls timed: %d", s.GetHistogram().GetSampleCount())
	}
	if v := series(fams["cgroupclean_cri_errors_total"], nil).GetCounter().GetValue(); v != 2 {
		t.Errorf("cri_errors_total = %v, want 2 (one failed ask, one failed dial)", v)
	}
	for _, r := range []string{StopDone, StopTimeout, StopFailed, StopError} {
		if v := series(fams["cgroupclean_systemd_stop_jobs_total"], map[string]string{"result": r}).GetCounter().GetValue(); v != 1 {
			t.Errorf("stop_jobs_total{%s} = %v", r, v)
		}
	}
}

func TestMemcg(t *testing.T) {
	m := New("test")
	m.MemcgSample(memcg.Sample{Dying: 42, Live: 7, RootLatency: 300 * time.Microsecond, PodLatency: 2 * time.Second})
	d := memcg.Decision{}
	d.Trigger = memcg.TriggerDyingCount
	m.MemcgAction(d, memcg.Outcome{Action: memcg.ActionDropCaches})
	m.MemcgAction(d, memcg.Outcome{Action: memcg.ActionNone})
	m.MemcgPrevent(1<<20, time.Millisecond, errors.New("EBUSY"))
	fams := gather(t, m)
	if v := series(fams["cgroupclean_memcg_dying_cgroups"], nil).GetGauge().GetValue(); v != 42 {
		t.Errorf("dying = %v", v)
	}
	h := series(fams["cgroupclean_memcg_stat_read_duration_seconds"], map[string]string{"target": "pod_root"}).GetHistogram()
	if h.GetSampleCount() != 1 || h.GetBucket()[0].GetUpperBound() != 0.0001 || h.GetBucket()[len(h.GetBucket())-1].GetUpperBound() < 9.99 {
		t.Errorf("stat histogram %v: want buckets from 100us to 10s", h)
	}
	if v := series(fams["cgroupclean_memcg_actions_total"], map[string]string{"action": "drop-caches", "trigger": "dying-count", "result": "ok"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("drop-caches ok = %v", v)
	}
	if v := series(fams["cgroupclean_memcg_actions_total"], map[string]string{"action": ActionPrevent, "result": "error"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("prevent error = %v", v)
	}
}
