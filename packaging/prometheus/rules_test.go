package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const (
	rulesFile   = "cgroupclean-rules.yml"
	runbookDir  = "../../docs/runbooks"
	serviceMon  = "../okd/metrics/cgroupclean-metrics.yaml"
	generatedPR = "../okd/metrics/cgroupclean-prometheusrule.yaml"
)

var unitTestFiles = []string{"cgroupclean-rules.test.yml", "cgroupclean-rules-long.test.yml"}

// promtool runs Debian's promtool (package prometheus) in dir and fails
// the test on a non-zero exit.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	testbed.Need(t, err == nil, "promtool (apt-get install prometheus)")
	cmd := exec.Command(p, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func source(t *testing.T) File {
	t.Helper()
	f, err := Parse(Source)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The embedded source is the file on disk (go:embed reads it at build
// time; this guards against a stale test binary reading another copy).
func TestSourceIsTheFile(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(Source) {
		t.Fatal("Source differs from cgroupclean-rules.yml")
	}
}

// promtool's syntax and PromQL check, and the unit tests of every alert.
func TestPromtool(t *testing.T) {
	out := promtool(t, ".", "check", "rules", rulesFile)
	t.Log(strings.TrimSpace(out))
	out = promtool(t, ".", append([]string{"test", "rules"}, unitTestFiles...)...)
	if strings.Count(out, "SUCCESS") != len(unitTestFiles) {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// What every alert carries: a severity, a summary and a description that
// name the node, a runbook_url to its page, and a selector on the job.
func TestAlertsWellFormed(t *testing.T) {
	f := source(t)
	if n := len(f.Alerts()); n < 10 {
		t.Fatalf("only %d alerts", n)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !strings.HasPrefix(r.Alert, "Cgroupclean") {
				t.Errorf("%s: alert names start with Cgroupclean", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
			}
			for _, k := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[k], "{{ $labels.instance }}") {
					t.Errorf("%s: %s %q does not name the node ({{ $labels.instance }})", r.Alert, k, r.Annotations[k])
				}
			}
			if got, want := r.Annotations["runbook_url"], RunbookBase+r.Alert+".md"; got != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
			}
			for k := range r.Annotations {
				if k != "summary" && k != "description" && k != "runbook_url" {
					t.Errorf("%s: unexpected annotation %q", r.Alert, k)
				}
			}
			if !strings.Contains(r.Expr, `job="cgroupclean"`) {
				t.Errorf("%s: expr selects no job=\"cgroupclean\": %s", r.Alert, r.Expr)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
		}
	}
}

type unitTests struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var instanceLabel = regexp.MustCompile(`instance="([^"]+)"`)

// Every alert has a unit test showing it fire, and one showing it not fire
// on a node of the same test's input (at the same or another time).
func TestEveryAlertUnitTested(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, file := range unitTestFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ut unitTests
		if err := yaml.Unmarshal(b, &ut); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, tc := range ut.Tests {
			nodes := map[string]bool{}
			for _, s := range tc.InputSeries {
				if m := instanceLabel.FindStringSubmatch(s.Series); m != nil {
					nodes[m[1]] = true
				}
			}
			for _, a := range tc.AlertRuleTest {
				firing := map[string]bool{}
				for _, e := range a.ExpAlerts {
					firing[e.ExpLabels["instance"]] = true
				}
				if len(firing) > 0 {
					fires[a.Alertname] = true
				}
				for n := range nodes {
					if !firing[n] {
						quiet[a.Alertname] = true
					}
				}
			}
		}
	}
	for _, a := range source(t).Alerts() {
		if !fires[a] {
			t.Errorf("%s: no unit test where it fires", a)
		}
		if !quiet[a] {
			t.Errorf("%s: no unit test where it stays quiet on a node", a)
		}
	}
}

// Every alert has its runbook page, and every page an alert; a page says
// what the alert means, how to confirm it and what to do.
func TestRunbookPerAlert(t *testing.T) {
	alerts := source(t).Alerts()
	pages, err := filepath.Glob(filepath.Join(runbookDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pages {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".md"))
	}
	for _, a := range alerts {
		if !slices.Contains(names, a) {
			t.Errorf("alert %s has no runbook docs/runbooks/%s.md", a, a)
		}
	}
	for _, n := range names {
		if !slices.Contains(alerts, n) {
			t.Errorf("docs/runbooks/%s.md: no such alert in %s", n, rulesFile)
		}
	}
	for _, a := range alerts {
		b, err := os.ReadFile(filepath.Join(runbookDir, a+".md"))
		if err != nil {
			continue // reported above
		}
		page := string(b)
		if !strings.HasPrefix(page, "# "+a+"\n") {
			t.Errorf("%s.md: want the alert name as its title", a)
		}
		for _, h := range []string{"\n## Meaning\n", "\n## Confirm\n", "\n## Act\n"} {
			if !strings.Contains(page, h) {
				t.Errorf("%s.md: no %q section", a, strings.TrimSpace(h))
			}
		}
		if !strings.Contains(page, "journalctl ") {
			t.Errorf("%s.md: no journalctl command to confirm it", a)
		}
		if !strings.Contains(page, "cgroupcleand doctor") {
			t.Errorf("%s.md: no cgroupcleand doctor command", a)
		}
	}
}

var metricName = regexp.MustCompile(`\bcgroupclean_[a-z_]+\b`)

// Every cgroupclean_ metric a rule reads is one the daemon serves (a
// renamed metric would leave its alert silent for ever).
func TestRulesReadServedMetrics(t *testing.T) {
	fams, err := metrics.New("test").Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range fams {
		n := mf.GetName()
		served[n] = true
		if mf.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				served[n+s] = true
			}
		}
	}
	for _, g := range source(t).Groups {
		for _, r := range g.Rules {
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				if !served[m] {
					t.Errorf("%s reads %s, which cgroupcleand does not serve", r.name(), m)
				}
			}
		}
	}
}

// The OKD ServiceMonitor gives every target the labels the rules select
// and name: job="cgroupclean", instance = the node.
func TestServiceMonitorLabelsMatchRules(t *testing.T) {
	b, err := os.ReadFile(serviceMon)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	for {
		var o struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Endpoints []struct {
					Relabelings []struct {
						SourceLabels []string `yaml:"sourceLabels"`
						TargetLabel  string   `yaml:"targetLabel"`
						Replacement  string   `yaml:"replacement"`
					} `yaml:"relabelings"`
				} `yaml:"endpoints"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("no ServiceMonitor in %s (%v)", serviceMon, err)
		}
		if o.Kind != "ServiceMonitor" {
			continue
		}
		var job, instance bool
		for _, ep := range o.Spec.Endpoints {
			for _, r := range ep.Relabelings {
				job = job || r.TargetLabel == "job" && r.Replacement == "cgroupclean" && len(r.SourceLabels) == 0
				instance = instance || r.TargetLabel == "instance" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_node_name"})
			}
		}
		if !job || !instance {
			t.Errorf("ServiceMonitor relabels job=cgroupclean: %v, instance from the node name: %v", job, instance)
		}
		return
	}
}

var threshold = regexp.MustCompile(`\)*\s*>\s*([0-9.]+)\s*$`)

// The memcg alerts hold the watchdog's default thresholds (docs/memcg.md):
// warning at the warn value, critical at the act value.
func TestMemcgThresholdsAreTheDefaults(t *testing.T) {
	m := config.Default().Memcg
	want := map[string]map[string]float64{
		"CgroupcleanMemcgDyingHigh":       {"warning": float64(m.DyingWarn), "critical": float64(m.DyingAct)},
		"CgroupcleanMemcgStatLatencyHigh": {"warning": m.LatencyWarn.Seconds(), "critical": m.LatencyAct.Seconds()},
	}
	seen := 0
	for _, g := range source(t).Groups {
		for _, r := range g.Rules {
			w, ok := want[r.Alert]
			if !ok {
				continue
			}
			seen++
			m := threshold.FindStringSubmatch(strings.TrimSpace(r.Expr))
			if m == nil {
				t.Errorf("%s: no threshold at the end of %s", r.Alert, r.Expr)
				continue
			}
			got, err := strconv.ParseFloat(m[1], 64)
			if err != nil || got != w[r.Labels["severity"]] {
				t.Errorf("%s (%s): threshold %s, want %v (the memcg default)", r.Alert, r.Labels["severity"], m[1], w[r.Labels["severity"]])
			}
		}
	}
	if seen != 4 {
		t.Errorf("found %d memcg threshold rules, want 4 (a warning and a critical each)", seen)
	}
}
