// Package prometheus holds cgroupcleand's alerting rules and the
// transforms that make their other forms from the one source,
// cgroupclean-rules.yml (embedded as Source):
//
//   - PrometheusRule: the OKD/OpenShift PrometheusRule object
//     (packaging/okd/metrics/cgroupclean-prometheusrule.yaml, `make rules`);
//   - ScaleDurations: a copy with every for: and every window scaled, for a
//     daemon whose interval is not the default 5m (the fleet test runs
//     passes seconds apart). Factor makes the usual Scaler; any func will
//     do (one that also caps the day-long windows, say);
//   - RebaseRunbooks: runbook_url annotations pointing at another copy of
//     docs/runbooks/.
//
// The command under cmd/cgroupclean-rules runs them. The rules follow the
// Prometheus rules file format
// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/);
// promtool checks and unit-tests them (make rules-test).
package prometheus

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source is cgroupclean-rules.yml, the one source of the rules.
//
//go:embed cgroupclean-rules.yml
var Source []byte

// RunbookBase is where the shipped rules' runbook_url annotations point:
// docs/runbooks/ of the project's repository. RebaseRunbooks points them
// at a copy of your own.
const RunbookBase = "https://github.com/cgroupclean/cgroupclean/blob/main/docs/runbooks/"

// File is a Prometheus rules file.
type File struct {
	Groups []Group `yaml:"groups"`
}

// Group is one rule group.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is an alerting or a recording rule.
type Rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Parse reads a rules file. An unknown key is an error: a typo such as
// "anotations" would otherwise drop the runbook silently.
func Parse(data []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("parse rules: %w", err)
	}
	if len(f.Groups) == 0 {
		return File{}, errors.New("parse rules: no groups")
	}
	for _, g := range f.Groups {
		if g.Name == "" {
			return File{}, errors.New("parse rules: a group without a name")
		}
		for i, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				return File{}, fmt.Errorf("parse rules: group %s, rule %d: want exactly one of alert and record", g.Name, i+1)
			}
			if strings.TrimSpace(r.Expr) == "" {
				return File{}, fmt.Errorf("parse rules: group %s, rule %s: no expr", g.Name, r.name())
			}
		}
	}
	return f, nil
}

func (r Rule) name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// Alerts returns the alert names, each once, in file order.
func (f File) Alerts() []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !seen[r.Alert] {
				seen[r.Alert] = true
				out = append(out, r.Alert)
			}
		}
	}
	return out
}

// Marshal writes the file as YAML (two-space indent, as Prometheus's own
// examples).
func (f File) Marshal() ([]byte, error) {
	return marshal(f)
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal rules: %w", err)
	}
	return b.Bytes(), nil
}

// RebaseRunbooks points every runbook_url that starts with RunbookBase at
// base instead (e.g. an internal wiki holding a copy of docs/runbooks/).
func RebaseRunbooks(f File, base string) (File, error) {
	if !strings.HasSuffix(base, "/") {
		return File{}, fmt.Errorf("runbook base %q: must end with /", base)
	}
	out := f.clone()
	for gi := range out.Groups {
		for ri := range out.Groups[gi].Rules {
			a := out.Groups[gi].Rules[ri].Annotations
			if u, ok := a["runbook_url"]; ok && strings.HasPrefix(u, RunbookBase) {
				a["runbook_url"] = base + strings.TrimPrefix(u, RunbookBase)
			}
		}
	}
	return out, nil
}

// clone copies f deeply enough that editing the copy's rules, labels and
// annotations leaves f as it was.
func (f File) clone() File {
	out := File{Groups: make([]Group, len(f.Groups))}
	for gi, g := range f.Groups {
		g.Rules = append([]Rule(nil), g.Rules...)
		for ri, r := range g.Rules {
			g.Rules[ri].Labels = copyMap(r.Labels)
			g.Rules[ri].Annotations = copyMap(r.Annotations)
		}
		out.Groups[gi] = g
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
