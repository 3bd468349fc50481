package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// fill sets every exported field reachable from v to a value that is not
// zero (one element per slice and map), so that omitempty hides nothing.
// Fields marked json:"-" and interfaces are left alone.
func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1) // enums (decide.State...) are valid from 1
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

// dataKeyed are the objects whose keys are data (reason names), not field names.
var dataKeyed = map[string]bool{"kept_by_reason": true}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkKeys walks a JSON document and reports every key that is not snake_case.
func checkKeys(t *testing.T, where string, v any) (keys int) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			keys++
			if !snakeCase.MatchString(k) {
				t.Errorf("%s.%s: key is not snake_case", where, k)
			}
			if !dataKeyed[k] {
				keys += checkKeys(t, where+"."+k, e)
			}
		}
	case []any:
		for i, e := range x {
			keys += checkKeys(t, fmt.Sprintf("%s[%d]", where, i), e)
		}
	}
	return keys
}

// filledScan is a scan, its results and memcg health with every field set
// (fill), an inventory with an "other" directory and one skipped entry at
// skipped.
func filledScan(skipped string) (*engine.Scan, []engine.Result, *memcg.Decision) {
	var s engine.Scan
	var results []engine.Result
	var health memcg.Decision
	fill(reflect.ValueOf(&s).Elem(), 0)
	fill(reflect.ValueOf(&results).Elem(), 0)
	fill(reflect.ValueOf(&health).Elem(), 0)
	s.Inventory = &inventory.Inventory{Pods: []*inventory.Pod{{Path: s.Plan.Items[0].Path, Other: []string{"/p/other"}}},
		Skipped: []inventory.Skipped{{Path: skipped, Why: inventory.UnknownName}}}
	return &s, results, &health
}

// TestJSONKeysSnakeCase fills every field of what scan --json and clean
// --json print and checks every key of the document.
func TestJSONKeysSnakeCase(t *testing.T) {
	s, results, health := filledScan("/p/x")
	b, err := json.Marshal(newScanDoc("c.toml", s, results, health, true))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// The count guards the walk itself: a document it could not descend
	// into would pass with no key checked.
	if n := checkKeys(t, "", doc); n < 80 {
		t.Errorf("only %d keys walked:\n%s", n, b)
	}
	for _, k := range []string{`"memcg":{`, `"pod_dying":`, `"latency_p50_ns":`, `"io_psi":`, `"other_dirs":[`, `"in_pod":`, `"age_ns":`, `"live_containers":`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("document lacks %s", k)
		}
	}
}

// leaves counts the leaf fields of a type (a slice counts its element once).
func leaves(t reflect.Type) int {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return leaves(t.Elem())
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			return 1
		}
		n := 0
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() {
				n += leaves(t.Field(i).Type)
			}
		}
		return n
	}
	return 1
}

// nonZeroLeaves counts the JSON leaves that are not zero values.
func nonZeroLeaves(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for _, e := range x {
			n += nonZeroLeaves(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += nonZeroLeaves(e)
		}
		return n
	case string:
		if x != "" && x != "0001-01-01T00:00:00Z" {
			return 1
		}
	case float64:
		if x != 0 {
			return 1
		}
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

// TestMemcgDocKeepsEveryField fails when memcg.Decision gains a field that
// scan --json does not print.
func TestMemcgDocKeepsEveryField(t *testing.T) {
	var d memcg.Decision
	fill(reflect.ValueOf(&d).Elem(), 0)
	b, err := json.Marshal(newMemcgDoc(&d))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := nonZeroLeaves(doc), leaves(reflect.TypeOf(d)); got != want {
		t.Fatalf("memcg in scan --json has %d of the %d fields of memcg.Decision: add the missing ones to memcgDoc\n%s", got, want, b)
	}
	if newMemcgDoc(nil) != nil {
		t.Fatal("no health must print no memcg key")
	}
}

// TestScanTextAtAGlance prints a plan with one of everything and checks
// what an operator reads: singular counts, live containers as the runtime
// lists them, "-" for ages not measured, and every directory that is
// neither pod nor container.
func TestScanTextAtAGlance(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &engine.Scan{PodRoot: "/kubepods", Driver: names.Cgroupfs,
		Snapshot: live.Snapshot{
			Sandboxes:  []live.Sandbox{{ID: "sb1", PodUID: "live-uid"}},
			Containers: []live.Container{{ID: "c1", SandboxID: "sb1"}},
		},
		Plan: decide.Plan{Now: now, Kept: map[decide.Reason]int{decide.HasProcesses: 1},
			Items: []decide.Item{
				// The decision counted three listed directories (container,
				// sandbox, conmon): the runtime lists one container.
				{Kind: decide.PodKind, State: decide.Live, Action: decide.Keep, PodUID: "live-uid", Path: "/kubepods/podlive-uid", Reason: decide.LiveSandbox, LiveContainers: 3},
				{Kind: decide.PodKind, State: decide.Orphan, Action: decide.Keep, PodUID: "orphan-uid", Path: "/kubepods/podorphan-uid", Reason: decide.HasProcesses, Processes: 1, Age: 90 * time.Second},
			},
			Summary: decide.Summary{Pods: 2, LivePods: 1, OrphanPods: 1, Keep: 1, OrphanContainers: 1},
		},
		Inventory: &inventory.Inventory{
			Pods:    []*inventory.Pod{{Path: "/kubepods/podlive-uid", Other: []string{"/kubepods/podlive-uid/not-a-container"}}},
			Skipped: []inventory.Skipped{{Path: "/kubepods/not-a-pod", Why: inventory.UnknownName}},
		},
	}
	countRuntimeContainers(s)
	var b bytes.Buffer
	printScan(&b, "c.toml", s)
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^pod +live +keep +live-sandbox \(1 live container\) +- +/kubepods/podlive-uid$`),
		regexp.MustCompile(`(?m)^pod +orphan +keep +has-processes \(1 process\) +1m +/kubepods/podorphan-uid$`),
		regexp.MustCompile(`(?m)^  other +- +keep +not-a-container-name +- +/kubepods/podlive-uid/not-a-container$`),
		regexp.MustCompile(`(?m)^other: 1 directory inside pod cgroups`),
		regexp.MustCompile(`(?m)^  /kubepods/not-a-pod: not a pod cgroup name$`),
		regexp.MustCompile(`(?m)^2 pod cgroups: 1 live, 1 orphaned \(\+1 orphan container in live pods\)`),
	} {
		if !want.MatchString(out) {
			t.Errorf("scan output lacks %s:\n%s", want, out)
		}
	}
	s.Plan.Summary = decide.Summary{Pods: 1, LivePods: 1}
	if line := engine.SummaryLine(s, nil); !strings.HasPrefix(line, "1 pod cgroup: 1 live, 0 orphaned (+0 orphan containers") {
		t.Errorf("summary of one pod: %q", line)
	}
}

func TestAge(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "-"}, {-time.Second, "0s"}, {1500 * time.Millisecond, "2s"}, {90 * time.Minute, "1h"}, {72 * time.Hour, "3d"},
	} {
		if got := age(c.d); got != c.want {
			t.Errorf("age(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestScanShowsWhatTheRuntimeLists runs scan against a real containerd: a
// live pod with one container (plus a conmon-like directory of that
// container, as CRI-O makes, and a directory that is not a container), an
// orphan pod holding one process, and a directory at the QoS level that is
// not a pod.
func TestScanShowsWhatTheRuntimeLists(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "cliglance")
	ctrd := testbed.StartContainerd(t)
	liveUID, orphanUID := testbed.RandomUID(), testbed.RandomUID()
	livePod, orphanPod := "kubepods/burstable/pod"+liveUID, "kubepods/burstable/pod"+orphanUID
	for _, d := range []string{livePod, orphanPod, "kubepods/burstable/not-a-pod"} {
		if err := r.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	sb := ctrd.RunPod(t, r.Rel(livePod), liveUID, "live")
	cid := ctrd.CreateStartContainer(t, sb, "app")
	for _, d := range []string{livePod + "/crio-conmon-" + cid, livePod + "/not-a-container"} {
		if err := r.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	proc := testbed.StartProcess(t, "sleep", "600")
	if err := r.AddProc(orphanPod, proc.PID); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.toml")
	text := fmt.Sprintf("[runtime]\nendpoint = %q\n[cgroup]\npod_root = %q\nkubelet_root = %q\n[clean]\nmin_age = \"0s\"\nmax_removal_share = 1.0\nuse_systemd = \"never\"\n[daemon]\nstate_dir = %q\n",
		ctrd.Endpoint(), r.Rel("kubepods"), testbed.KubeletRoot(t), t.TempDir())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI("scan", "--config", cfg)
	if code != 0 {
		t.Fatalf("scan: %d %s", code, errs)
	}
	for _, want := range []string{
		`(?m)^pod +live +keep +live-sandbox \(1 live container\) +- +` + regexp.QuoteMeta(r.Rel(livePod)) + `$`,
		`(?m)^pod +orphan +keep +has-processes \(1 process\) +[0-9]+s +` + regexp.QuoteMeta(r.Rel(orphanPod)) + `$`,
		`(?m)^  other +- +keep +not-a-container-name +- +` + regexp.QuoteMeta(r.Rel(livePod+"/not-a-container")) + `$`,
		`(?m)^  ` + regexp.QuoteMeta(r.Rel("kubepods/burstable/not-a-pod")) + `: not a pod cgroup name$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("scan output does not match %s:\n%s", want, out)
		}
	}

	code, out, errs = runCLI("scan", "--config", cfg, "--json")
	if code != 0 {
		t.Fatalf("scan --json: %d %s", code, errs)
	}
	var raw any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("scan --json: %v\n%s", err, out)
	}
	checkKeys(t, "", raw)
	var doc struct {
		Scan struct {
			Plan struct {
				Items []map[string]any `json:"items"`
			} `json:"plan"`
		} `json:"scan"`
		OtherDirs []otherDir     `json:"other_dirs"`
		Memcg     map[string]any `json:"memcg"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, it := range doc.Scan.Plan.Items {
		switch it["pod_uid"] {
		case liveUID:
			if it["live_containers"] != 1.0 || it["age_ns"] != nil {
				t.Errorf("live pod: live_containers %v (want 1), age_ns %v (want none: not measured)", it["live_containers"], it["age_ns"])
			}
		case orphanUID:
			if it["processes"] != 1.0 || it["age_ns"] == nil {
				t.Errorf("orphan pod: processes %v, age_ns %v", it["processes"], it["age_ns"])
			}
		default:
			t.Errorf("unexpected item %v", it)
		}
	}
	wantOther := []otherDir{
		{Path: r.Rel("kubepods/burstable/not-a-pod"), Why: inventory.UnknownName},
		{Path: r.Rel(livePod + "/not-a-container"), Why: "not a container cgroup name: goes with its pod", InPod: r.Rel(livePod)},
	}
	if !reflect.DeepEqual(doc.OtherDirs, wantOther) {
		t.Errorf("other_dirs = %+v, want %+v", doc.OtherDirs, wantOther)
	}
	if _, ok := doc.Memcg["dying"]; !ok {
		t.Errorf("memcg has no dying count: %v", doc.Memcg)
	}
	// clean keeps both pods; its JSON is checked the same way.
	code, out, errs = runCLI("clean", "--config", cfg, "--json")
	if code != 0 {
		t.Fatalf("clean --json: %d %s\n%s", code, errs, out)
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "", raw)
	if r.Exists(orphanPod) != len(r.Hierarchies) || r.Exists(livePod+"/not-a-container") != len(r.Hierarchies) {
		t.Fatal("clean removed a pod cgroup holding a process, or a directory of a live pod")
	}
}
