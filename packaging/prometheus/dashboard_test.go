package prometheus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Grafana dashboard lives in packaging/grafana; it is tested here
// because its queries are checked the way the rules are, by promtool.
const dashboardFile = "../grafana/cgroupclean-dashboard.json"

type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Time          *struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

var panelTypes = map[string]bool{"row": true, "stat": true, "timeseries": true, "table": true, "bargauge": true, "gauge": true}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// The fields Grafana needs to import the dashboard: title, uid, schema
// version, time range, template variables (a data source and the node),
// and panels each with a unique id, a known type, a place on the 24-column
// grid that overlaps no other, and (but rows) queries on the data source
// variable with unique refIds.
func TestDashboardSchema(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || len(d.UID) > 40 {
		t.Errorf("title %q, uid %q: both required, uid at most 40 characters", d.Title, d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (Grafana 9+)", d.SchemaVersion)
	}
	if d.Time == nil || d.Time.From == "" || d.Time.To == "" {
		t.Error("no time range")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Fatalf("template variables %v: want datasource (datasource) and instance (query)", vars)
	}
	if len(d.Panels) < 10 {
		t.Fatalf("only %d panels", len(d.Panels))
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]int{}
	for _, p := range d.Panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: id missing or not unique", name)
		}
		ids[p.ID] = true
		if !panelTypes[p.Type] || p.Title == "" {
			t.Errorf("%s: type %q, want one of %v and a title", name, p.Type, panelTypes)
		}
		g := p.GridPos
		if g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", name, g)
			continue
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("%s overlaps panel %d at %d,%d", name, other, x, y)
					goto placed
				}
				taken[cell{x, y}] = p.ID
			}
		}
	placed:
		if p.Type == "row" {
			if len(p.Targets) > 0 || len(p.Panels) > 0 {
				t.Errorf("%s: an open row holds no queries or panels", name)
			}
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", name)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want the ${datasource} variable", name, p.Datasource)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refs[q.RefID] || strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%s: query %q with refId %q: want an expr and a unique refId", name, q.Expr, q.RefID)
			}
			refs[q.RefID] = true
		}
	}
}

// What the issue asks the fleet overview to show, and the node view to be
// driven by the variable.
func TestDashboardContent(t *testing.T) {
	d := loadDashboard(t)
	var fleet, node []string
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			if strings.Contains(q.Expr, `instance="$instance"`) {
				node = append(node, q.Expr)
			} else {
				fleet = append(fleet, q.Expr)
			}
		}
	}
	all := strings.Join(fleet, "\n")
	for what, re := range map[string]string{
		"nodes by orphans":   `sum by \(instance\) \(cgroupclean_orphans`,
		"removal rate":       `rate\(cgroupclean_removals_total`,
		"refusals by reason": `sum by \(reason\) \(rate\(cgroupclean_refusals_total`,
		"pass duration":      `cgroupclean_pass_duration_seconds_bucket`,
		"dying memcgs":       `cgroupclean_memcg_dying_cgroups`,
		"stat latency":       `cgroupclean_memcg_stat_read_duration_seconds_bucket`,
		"would remove":       `cgroupclean_would_remove_total`,
		"doctor findings":    `cgroupclean_doctor_findings`,
	} {
		if !regexp.MustCompile(re).MatchString(all) {
			t.Errorf("fleet overview: no query for %s (/%s/)", what, re)
		}
	}
	if len(node) < 10 {
		t.Errorf("only %d queries of one node (instance=\"$instance\")", len(node))
	}
}

// grafanaVars are Grafana's variables, replaced by values PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d", "$instance", "node-a")

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-z_]+\)$`)

// dashboardRules writes every query of the dashboard, and the selector
// of label_values() of each variable, as a recording rule.
func dashboardRules(t *testing.T, d dashboard, extra ...string) string {
	t.Helper()
	var exprs []string
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
		}
		exprs = append(exprs, m[1])
	}
	f := File{Groups: []Group{{Name: "dashboard"}}}
	for i, e := range append(exprs, extra...) {
		f.Groups[0].Rules = append(f.Groups[0].Rules, Rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(e)})
	}
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "dashboard.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every query of the dashboard parses as PromQL: promtool check rules on
// them as recording rules. A broken query must fail the same check.
func TestDashboardQueriesParse(t *testing.T) {
	d := loadDashboard(t)
	path := dashboardRules(t, d)
	out := promtool(t, filepath.Dir(path), "check", "rules", filepath.Base(path))
	t.Log(strings.TrimSpace(out))

	bad := dashboardRules(t, d, `sum by (instance (cgroupclean_orphans)`)
	cmd := exec.Command("promtool", "check", "rules", bad)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken query:\n%s", out)
	}
}
