package daemon_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// scrape fetches and parses /metrics; nil when nothing answers yet.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return nil, nil
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// value is the value of the series of family name whose labels include
// every pair of want; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// The real daemon against a real containerd on real cgroupfs: /metrics
// answers from the first pass on, every pre-set series reads 0 before
// anything happened, and the counters move as the daemon removes the
// orphans the test made, while the live pod stays and is counted nowhere.
func TestDaemonMetricsScrape(t *testing.T) {
	testbed.RequireRoot(t)
	root := testbed.NewCgroupRoot(t, "metrics")
	ctrd := testbed.StartContainerd(t)
	bin := buildDaemon(t)
	dir := t.TempDir()
	kubelet := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(kubelet, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}

	liveUID := testbed.RandomUID()
	liveRel := "kubepods/burstable/pod" + liveUID
	if err := root.Mkdir(liveRel); err != nil {
		t.Fatal(err)
	}
	ctrd.RunPod(t, root.Rel(liveRel), liveUID, "live")

	port := testbed.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	cfg := filepath.Join(dir, "config.toml")
	// confirm_passes = 3 at a 1 s interval: the orphans are seen (and the
	// gauge read) for a few seconds before they go.
	text := testbed.NodeConfig{
		Endpoint: ctrd.Endpoint(), PodRoot: root.Rel("kubepods"), KubeletRoot: kubelet, StateDir: filepath.Join(dir, "state"),
		Interval: time.Second, MetricsPort: port, Clean: []string{"max_removal_share = 1.0"}, ConfirmPasses: 3,
	}.TOML()
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	testbed.StartDaemon(t, testbed.PrivateLockArgv(bin, "run", "--config", cfg)...)

	var fams map[string]*dto.MetricFamily
	var body []byte
	waitFor(t, 20*time.Second, "first scrape after a pass", func() bool {
		fams, body = scrape(t, url)
		return fams != nil && value(fams, "cgroupclean_passes_total", "result", "ok") >= 1
	})
	// Linted as promtool check metrics does (the same promlint package).
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	for _, s := range [][]string{
		{"cgroupclean_removals_total", "kind", "pod", "driver", "cgroupfs"},
		{"cgroupclean_removals_total", "kind", "container", "driver", "systemd"},
		{"cgroupclean_removal_failures_total", "reason", "busy"},
		{"cgroupclean_refusals_total", "reason", "has-processes"},
		{"cgroupclean_refusals_total", "reason", "mass-guard-share"},
		{"cgroupclean_systemd_stop_jobs_total", "result", "failed"},
		{"cgroupclean_memcg_actions_total", "action", "drop-caches", "trigger", "latency", "result", "error"},
		{"cgroupclean_orphans", "kind", "pod"},
	} {
		if v := value(fams, s[0], s[1:]...); v != 0 {
			t.Errorf("%v = %v before any orphan, want a pre-set 0", s, v)
		}
	}
	if v := value(fams, "cgroupclean_build_info", "driver", "cgroupfs", "cgroup_mode", "hybrid"); v != 1 {
		t.Errorf("build_info{driver=cgroupfs,cgroup_mode=hybrid} = %v\n%s", v, grep(body, "build_info"))
	}
	if v := value(fams, "cgroupclean_cri_request_duration_seconds"); v < 1 {
		t.Errorf("no CRI call timed: %v", v)
	}

	// Three orphans, made by CRI Stop+Remove as kubelet-less pods leave them.
	const orphans = 3
	for i := 0; i < orphans; i++ {
		uid := testbed.RandomUID()
		rel := "kubepods/besteffort/pod" + uid
		if err := root.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
		ctrd.StopRemovePod(t, ctrd.RunPod(t, root.Rel(rel), uid, fmt.Sprintf("orphan-%d", i)))
	}
	sawOrphans := 0.0
	waitFor(t, 30*time.Second, "removals_total to reach the orphans made", func() bool {
		fams, body = scrape(t, url)
		if fams == nil {
			return false
		}
		sawOrphans = max(sawOrphans, value(fams, "cgroupclean_orphans", "kind", "pod"))
		return value(fams, "cgroupclean_removals_total", "kind", "pod", "driver", "cgroupfs") >= orphans
	})
	if got := value(fams, "cgroupclean_removals_total", "kind", "pod", "driver", "cgroupfs"); got != orphans {
		t.Errorf("removals_total{pod,cgroupfs} = %v, want %d", got, orphans)
	}
	if sawOrphans != orphans {
		t.Errorf("orphans{kind=pod} peaked at %v, want %d", sawOrphans, orphans)
	}
	// Seen and kept while awaiting confirmation (confirm_passes = 3).
	if v := value(fams, "cgroupclean_refusals_total", "reason", "awaiting-confirmation"); v < 2*orphans {
		t.Errorf("refusals_total{awaiting-confirmation} = %v, want >= %d", v, 2*orphans)
	}
	waitFor(t, 10*time.Second, "orphans gauge back to 0", func() bool {
		fams, _ = scrape(t, url)
		return fams != nil && value(fams, "cgroupclean_orphans", "kind", "pod") == 0
	})
	last := value(fams, "cgroupclean_last_successful_pass_timestamp_seconds")
	if now := float64(time.Now().Unix()); last < now-10 || last > now+1 {
		t.Errorf("last_successful_pass_timestamp_seconds = %v, now %v", last, now)
	}
	if n := root.Exists(liveRel); n == 0 {
		t.Fatal("the live pod's cgroup was removed")
	}
	if v := value(fams, "cgroupclean_removal_failures_total", "reason", "busy"); v != 0 {
		t.Errorf("removal_failures_total{busy} = %v", v)
	}
}

func grep(body []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
