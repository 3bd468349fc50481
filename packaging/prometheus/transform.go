package prometheus

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Scaler maps one duration of the rules (a for:, a range window, a
// subquery step, an offset) to the one to use instead.
type Scaler func(time.Duration) time.Duration

// Factor returns a Scaler that multiplies every duration by f (say the
// test's daemon.interval over the default 5m), rounded to the millisecond,
// and raises what is left below floor to floor: a window must still hold a
// few scrapes.
func Factor(f float64, floor time.Duration) (Scaler, error) {
	if !(f > 0) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("scale factor %v: want a number above 0", f)
	}
	if floor < 0 {
		return nil, fmt.Errorf("scale floor %v: negative", floor)
	}
	return func(d time.Duration) time.Duration {
		if d == 0 {
			return 0 // for: 0 stays "at once"
		}
		s := time.Duration(float64(d) * f).Round(time.Millisecond)
		if s < floor {
			s = floor
		}
		return s
	}, nil
}

// ScaleDurations returns a copy of f with every duration scaled: each
// alert's for:, and in each expression every range window ([1h]), subquery
// range and step ([1h:5m]) and offset. Text inside string literals (label
// values, regexes) is left alone. Thresholds compared with time() would
// not be scaled: the rules have none, time enters only through these
// durations. An expression whose duration cannot be parsed, or scales to
// 0, is an error naming the rule.
func ScaleDurations(f File, scale Scaler) (File, error) {
	out := f.clone()
	for gi := range out.Groups {
		g := &out.Groups[gi]
		for ri := range g.Rules {
			r := &g.Rules[ri]
			if r.For != "" {
				d, err := model.ParseDuration(r.For)
				if err != nil {
					return File{}, fmt.Errorf("rule %s: for %q: %w", r.name(), r.For, err)
				}
				r.For = model.Duration(scale(time.Duration(d))).String()
			}
			e, err := scaleExpr(r.Expr, scale)
			if err != nil {
				return File{}, fmt.Errorf("rule %s: %w", r.name(), err)
			}
			r.Expr = e
		}
	}
	return out, nil
}

var offsetRe = regexp.MustCompile(`^offset(\s+)(-?)([0-9][0-9a-z]*)`)

// scaleExpr rewrites the durations of one PromQL expression.
func scaleExpr(expr string, scale Scaler) (string, error) {
	var b strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(expr, i)
			if end < 0 {
				return "", fmt.Errorf("expr: unterminated string at byte %d", i)
			}
			b.WriteString(expr[i:end])
			i = end
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return "", fmt.Errorf("expr: unterminated [ at byte %d", i)
			}
			parts := strings.Split(expr[i+1:i+end], ":")
			if len(parts) > 2 {
				return "", fmt.Errorf("expr: %q is no range or subquery", expr[i:i+end+1])
			}
			for pi, p := range parts {
				p = strings.TrimSpace(p)
				if p == "" && pi == 1 {
					continue // [1h:] uses the evaluation interval as step
				}
				s, err := scaleOne(p, scale)
				if err != nil {
					return "", err
				}
				parts[pi] = s
			}
			b.WriteString("[" + strings.Join(parts, ":") + "]")
			i += end + 1
		case strings.HasPrefix(expr[i:], "offset") && (i == 0 || !isIdent(expr[i-1])):
			m := offsetRe.FindStringSubmatch(expr[i:])
			if m == nil {
				b.WriteByte(c)
				i++
				continue
			}
			s, err := scaleOne(m[3], scale)
			if err != nil {
				return "", err
			}
			b.WriteString("offset" + m[1] + m[2] + s)
			i += len(m[0])
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

func scaleOne(s string, scale Scaler) (string, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return "", fmt.Errorf("expr: duration %q: %w", s, err)
	}
	n := scale(time.Duration(d))
	if n <= 0 {
		return "", fmt.Errorf("expr: duration %s scales to %v: a window must stay above 0", s, n)
	}
	return model.Duration(n).String(), nil
}

// stringEnd returns the index just past the string literal starting at
// expr[i] (PromQL: "..." and '...' with backslash escapes, `...` raw).
func stringEnd(expr string, i int) int {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j + 1
		}
	}
	return -1
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// OKD names of the PrometheusRule: the namespace of the ServiceMonitor
// (packaging/okd/metrics/cgroupclean-metrics.yaml), labelled for the
// platform monitoring stack.
const (
	okdNamespace = "openshift-cgroupclean"
	okdRuleName  = "cgroupclean"
)

type objectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type prometheusRule struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       File       `yaml:"spec"`
}

// PrometheusRuleHeader starts the generated PrometheusRule file.
const PrometheusRuleHeader = `# Generated from packaging/prometheus/cgroupclean-rules.yml by ` + "`make rules`" + `;
# do not edit. The platform Prometheus of OKD/OpenShift loads it from the
# namespace labelled openshift.io/cluster-monitoring=true (see
# cgroupclean-metrics.yaml beside it). Apply with: oc apply -f packaging/okd/metrics/
`

// PrometheusRule returns the rules as a monitoring.coreos.com/v1
// PrometheusRule in the namespace of the ServiceMonitor, header included.
func PrometheusRule(f File) ([]byte, error) {
	obj := prometheusRule{
		APIVersion: "monitoring.coreos.com/v1",
		Kind:       "PrometheusRule",
		Metadata: objectMeta{
			Name:      okdRuleName,
			Namespace: okdNamespace,
			Labels: map[string]string{
				"app.kubernetes.io/name": "cgroupclean-metrics",
				// What the platform Prometheus's rule selector of OpenShift
				// 4.x matches (prometheus-operator's convention).
				"prometheus": "k8s",
				"role":       "alert-rules",
			},
		},
		Spec: f,
	}
	body, err := marshal(obj)
	if err != nil {
		return nil, err
	}
	return append([]byte(PrometheusRuleHeader), body...), nil
}

// ScaledSource returns the shipped rules (Source) with every duration
// scaled, as a rules file Prometheus loads: what a test whose daemons pass
// seconds apart writes next to its prometheus.yml.
func ScaledSource(scale Scaler) ([]byte, error) {
	f, err := Parse(Source)
	if err != nil {
		return nil, err
	}
	if f, err = ScaleDurations(f, scale); err != nil {
		return nil, err
	}
	return f.Marshal()
}
