package prometheus

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestFactor(t *testing.T) {
	s, err := Factor(1.0/150, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[time.Duration]time.Duration{
		0:                0,
		5 * time.Minute:  2 * time.Second,
		15 * time.Minute: 6 * time.Second,
		time.Minute:      time.Second, // 400ms raised to the floor
		24 * time.Hour:   576 * time.Second,
	} {
		if got := s(in); got != want {
			t.Errorf("scale(%v) = %v, want %v", in, got, want)
		}
	}
	for _, f := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if _, err := Factor(f, 0); err == nil {
			t.Errorf("Factor(%v) accepted", f)
		}
	}
	if _, err := Factor(1, -time.Second); err == nil {
		t.Error("negative floor accepted")
	}
}

func TestScaleExpr(t *testing.T) {
	half := func(d time.Duration) time.Duration { return d / 2 }
	for _, tc := range []struct{ in, want string }{
		{`rate(x[10m])`, `rate(x[5m])`},
		{`increase(x{job="a"}[1h]) > 0 and delta(y[2h30m]) > 0`, `increase(x{job="a"}[30m]) > 0 and delta(y[1h15m]) > 0`},
		{`max_over_time(rate(x[10m])[1h:2m])`, `max_over_time(rate(x[5m])[30m:1m])`},
		{`max_over_time(x[1h:])`, `max_over_time(x[30m:])`},
		{`x offset 1h`, `x offset 30m`},
		{`rate(x[10m] offset -2d)`, `rate(x[5m] offset -1d)`},
		// Strings keep their brackets and words.
		{`x{reason=~"[a-z]+ offset 5m"} offset 10m`, `x{reason=~"[a-z]+ offset 5m"} offset 5m`},
		{"x{r=~`[1h]`}[2s]", "x{r=~`[1h]`}[1s]"},
		{`x{r='it\'s [1m]'}`, `x{r='it\'s [1m]'}`},
		// Names that contain "offset" are not the keyword.
		{`my_offset_seconds > 1`, `my_offset_seconds > 1`},
		{`x[3s]`, `x[1s500ms]`},
	} {
		got, err := scaleExpr(tc.in, half)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`rate(x[10q])`, `rate(x[10m)`, `x{a="b}`, `x[1m:1m:1m]`, `x offset 5q`} {
		if got, err := scaleExpr(bad, half); err == nil {
			t.Errorf("%s: accepted as %s", bad, got)
		}
	}
	zero := func(time.Duration) time.Duration { return 0 }
	if _, err := scaleExpr(`rate(x[1m])`, zero); err == nil || !strings.Contains(err.Error(), "above 0") {
		t.Errorf("a window scaled to 0: err = %v", err)
	}
}

// The shipped rules scaled for a daemon interval of 2s (1/150 of 5m):
// every for: and window shrinks, nothing else changes, the source is left
// as it was, and promtool loads the result.
func TestScaleDurationsShippedRules(t *testing.T) {
	src := source(t)
	before, err := src.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	scale, err := Factor(1.0/150, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	short, err := ScaleDurations(src, scale)
	if err != nil {
		t.Fatal(err)
	}
	after, err := src.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("ScaleDurations changed its input")
	}
	var sawFor, sawWindow bool
	for gi, g := range short.Groups {
		for ri, r := range g.Rules {
			orig := src.Groups[gi].Rules[ri]
			if r.Alert != orig.Alert || !reflect.DeepEqual(r.Labels, orig.Labels) || !reflect.DeepEqual(r.Annotations, orig.Annotations) {
				t.Errorf("%s: more than durations changed", orig.Alert)
			}
			switch {
			case orig.Alert == "CgroupcleanDown":
				sawFor = true
				if r.For != "4s" {
					t.Errorf("CgroupcleanDown for: %s, want 4s (10m/150)", r.For)
				}
			case orig.Alert == "CgroupcleanMassGuardRefused":
				sawWindow = true
				if !strings.Contains(r.Expr, "[9m36s]") || strings.Contains(r.Expr, "[24h]") {
					t.Errorf("MassGuardRefused window not scaled to 9m36s: %s", r.Expr)
				}
			}
		}
	}
	if !sawFor || !sawWindow {
		t.Fatal("alerts of the checks above not found")
	}
	out, err := short.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if viaSource, err := ScaledSource(scale); err != nil || !bytes.Equal(viaSource, out) {
		t.Errorf("ScaledSource differs from ScaleDurations of Source (err %v)", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "short.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "short.yml")
}

func TestRebaseRunbooks(t *testing.T) {
	src := source(t)
	f, err := RebaseRunbooks(src, "https://wiki.example/runbooks/")
	if err != nil {
		t.Fatal(err)
	}
	r := f.Groups[0].Rules[0]
	if want := "https://wiki.example/runbooks/" + r.Alert + ".md"; r.Annotations["runbook_url"] != want {
		t.Errorf("runbook_url %s, want %s", r.Annotations["runbook_url"], want)
	}
	if !strings.HasPrefix(src.Groups[0].Rules[0].Annotations["runbook_url"], RunbookBase) {
		t.Error("RebaseRunbooks changed its input")
	}
	if _, err := RebaseRunbooks(src, "https://wiki.example/runbooks"); err == nil {
		t.Error("a base without a trailing / accepted")
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not YAML":         "groups: [",
		"no groups":        "groups: []\n",
		"unknown key":      "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        anotations: {}\n",
		"alert and record": "groups:\n  - name: g\n    rules:\n      - alert: A\n        record: r\n        expr: up\n",
		"no expr":          "groups:\n  - name: g\n    rules:\n      - alert: A\n",
		"group name":       "groups:\n  - rules:\n      - alert: A\n        expr: up\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The committed PrometheusRule is what `make rules` makes of the source
// today, and holds the source's groups unchanged.
func TestPrometheusRuleCurrent(t *testing.T) {
	want, err := PrometheusRule(source(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(generatedPR)
	if err != nil {
		t.Fatalf("%v (run make rules)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run make rules", generatedPR)
	}
	var obj struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" || obj.Metadata.Namespace != "openshift-cgroupclean" {
		t.Errorf("%s/%s in %q", obj.APIVersion, obj.Kind, obj.Metadata.Namespace)
	}
	spec, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := Parse(spec)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	if !reflect.DeepEqual(groups, source(t)) {
		t.Error("the PrometheusRule's groups differ from the source's")
	}
	// promtool reads the spec as a rules file.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spec.yml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "spec.yml")
}
