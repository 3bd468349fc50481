package fleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// promServer is Debian's prometheus, on loopback, with its own storage.
type promServer struct {
	base string // http://127.0.0.1:port
}

// target is one node as Prometheus scrapes it.
type target struct {
	instance string
	port     int
}

// startPrometheus writes prometheus.yml (job "cgroupclean", one target
// per node, instance = the node's name, scraped every second, rules
// evaluated every second) beside rules, and starts the server.
func startPrometheus(t *testing.T, bin, rules string, port int, targets []target) *promServer {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - %s\nscrape_configs:\n  - job_name: cgroupclean\n    static_configs:\n", rules)
	for _, tg := range targets {
		fmt.Fprintf(&b, "      - targets: ['127.0.0.1:%d']\n        labels: {instance: %s}\n", tg.port, tg.instance)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	testbed.StartDaemon(t, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(p.base, "http://"), "--log.level=warn")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if res, err := http.Get(p.base + "/-/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready after 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *promServer) get(path string, out any) error {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(p.base + path)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

func (p *promServer) alerts() ([]alert, error) {
	var d struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", &d)
	return d.Alerts, err
}

// query evaluates an instant PromQL query: the value of each series by
// its instance label.
func (p *promServer) query(q string) (map[string]float64, error) {
	var d struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(q), &d); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, r.Value[1])
		}
		out[r.Metric["instance"]] = v
	}
	return out, nil
}

// key names one alert on one node.
type key struct{ alert, instance string }

func (k key) String() string { return k.alert + "{" + k.instance + "}" }

// alertLog follows /api/v1/alerts and keeps, per alert and node, when it
// was first seen firing and when it was first seen gone after that.
type alertLog struct {
	start time.Time
	mu    sync.Mutex
	rows  map[key]*alertRow
	now   map[key]alert // firing at the last poll
	err   error
}

type alertRow struct {
	summary          string
	fired, resolved  time.Time
	firedN, resolveN int // times it fired and resolved
}

func followAlerts(t *testing.T, p *promServer, start time.Time) *alertLog {
	l := &alertLog{start: start, rows: map[key]*alertRow{}, now: map[key]alert{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			l.poll(p)
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return l
}

func (l *alertLog) poll(p *promServer) {
	as, err := p.alerts()
	at := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err = err
		return
	}
	firing := map[key]alert{}
	for _, a := range as {
		if a.State == "firing" {
			firing[key{a.Labels["alertname"], a.Labels["instance"]}] = a
		}
	}
	for k, a := range firing {
		r := l.rows[k]
		if r == nil {
			r = &alertRow{}
			l.rows[k] = r
		}
		if _, was := l.now[k]; !was {
			r.fired, r.resolved, r.summary = at, time.Time{}, a.Annotations["summary"]
			r.firedN++
		}
	}
	for k := range l.now {
		if _, still := firing[k]; !still {
			l.rows[k].resolved = at
			l.rows[k].resolveN++
		}
	}
	l.now = firing
}

// firing is the set of alerts firing at the last poll.
func (l *alertLog) firing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return names(l.now)
}

// names are the keys of m as strings, sorted.
func names[V any](m map[key]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// table prints every alert that fired, per node, with the times (seconds
// since the fleet was up, and UTC) it fired and resolved.
func (l *alertLog) table() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]key, 0, len(l.rows))
	for k := range l.rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].instance != keys[j].instance {
			return keys[i].instance < keys[j].instance
		}
		return keys[i].alert < keys[j].alert
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-32s %-22s %-22s %s\n", "node", "alert", "fired", "resolved", "summary")
	for _, k := range keys {
		r := l.rows[k]
		res := "still firing"
		if !r.resolved.IsZero() {
			res = l.at(r.resolved)
		}
		fmt.Fprintf(&b, "%-8s %-32s %-22s %-22s %s\n", k.instance, k.alert, l.at(r.fired), res, r.summary)
	}
	return b.String()
}

func (l *alertLog) at(t time.Time) string {
	return fmt.Sprintf("t+%5.1fs %s", t.Sub(l.start).Seconds(), t.UTC().Format("15:04:05"))
}

// everFired lists every alert that fired at some time.
func (l *alertLog) everFired() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return names(l.rows)
}

func (l *alertLog) row(k key) alertRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.rows[k]; r != nil {
		return *r
	}
	return alertRow{}
}

func (l *alertLog) summary(k key) string { return l.row(k).summary }

// stillFiring reports whether k was firing at the last poll.
func (l *alertLog) stillFiring(k key) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.now[k]
	return ok
}
