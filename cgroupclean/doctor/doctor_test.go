package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
)

func TestParseCPUStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     CPUStat
		err      bool
	}{
		{"v1", "nr_periods 200\nnr_throttled 50\nthrottled_time 1500000000\n", CPUStat{200, 50, 1500 * time.Millisecond}, false},
		{"v2", "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 10\nnr_throttled 3\nthrottled_usec 2500\nnr_bursts 0\nburst_usec 0\n", CPUStat{10, 3, 2500 * time.Microsecond}, false},
		{"v2 without bandwidth", "usage_usec 10\nuser_usec 5\nsystem_usec 5\n", CPUStat{}, true},
		{"garbage", "nr_periods x\n", CPUStat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCPUStat([]byte(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseCPUStat = %+v, %v; want %+v, err %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzParseCPUStat(f *testing.F) {
	f.Add([]byte("nr_periods 1\nnr_throttled 1\nthrottled_time 5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCPUStat(b)
		if err == nil && !strings.Contains(string(b), "nr_periods") {
			t.Fatalf("parsed %+v without nr_periods", s)
		}
	})
}

func TestLeakForm(t *testing.T) {
	id := strings.Repeat("a", 64)
	other := strings.Repeat("b", 64)
	for _, tc := range []struct {
		name     string
		it       decide.Item
		podLive  bool
		siblings []string
		want     string
	}{
		{"misc only", decide.Item{Kind: decide.PodKind, Path: "/kubepods/podx", Hierarchies: []string{"misc"}, Children: []decide.Item{{}}}, false, nil, FormMiscOnly},
		{"misc and more", decide.Item{Kind: decide.PodKind, Path: "/kubepods/podx", Hierarchies: []string{"misc", "memory"}, Children: []decide.Item{{}}}, false, nil, FormUnknown},
		{"empty pod", decide.Item{Kind: decide.PodKind, Path: "/kubepods/podx", Hierarchies: []string{"memory", "cpu"}}, false, nil, FormEmptyPod},
		{"pod with a live container counted", decide.Item{Kind: decide.PodKind, Path: "/kubepods/podx", LiveContainers: 1}, false, nil, FormUnknown},
		{"containerd scope in live pod", decide.Item{Kind: decide.ContainerKind, Path: "/p/cri-containerd-" + id + ".scope", ContainerID: id}, true, nil, FormContainerdScope},
		{"containerd scope in orphan pod", decide.Item{Kind: decide.ContainerKind, Path: "/p/cri-containerd-" + id + ".scope", ContainerID: id}, false, nil, FormUnknown},
		{"conmon alone", decide.Item{Kind: decide.ContainerKind, Path: "/p/crio-conmon-" + id + ".scope", ContainerID: id}, true, []string{"crio-" + other + ".scope"}, FormConmon},
		{"conmon with its container", decide.Item{Kind: decide.ContainerKind, Path: "/p/crio-conmon-" + id + ".scope", ContainerID: id}, true, []string{"crio-" + id + ".scope"}, FormUnknown},
		{"conmon cgroupfs alone", decide.Item{Kind: decide.ContainerKind, Path: "/p/crio-conmon-" + id, ContainerID: id}, true, []string{"crio-conmon-" + id}, FormConmon},
		{"bare id", decide.Item{Kind: decide.ContainerKind, Path: "/p/" + id, ContainerID: id}, true, nil, FormUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LeakForm(tc.it, tc.podLive, tc.siblings); got != tc.want {
				t.Fatalf("LeakForm = %s, want %s", got, tc.want)
			}
			if f := forms[tc.want]; f.action == "" || (tc.want != FormUnknown && len(f.refs) == 0) {
				t.Fatalf("form %s lacks its action or public issue", tc.want)
			}
		})
	}
}

func TestLevelAndWorst(t *testing.T) {
	if level(5, 10, 20) != OK || level(10, 10, 20) != Warn || level(25, 10, 20) != Critical || level(5, 0, 0) != OK {
		t.Fatal("level grades wrong")
	}
	r := Report{Findings: []Finding{{Severity: OK}, {Severity: Info}, {Severity: Warn}}}
	if r.Worst() != Warn {
		t.Fatalf("Worst = %s", r.Worst())
	}
}
