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

// doctor says what it saw and gives a cause only where the tree shows it:
// a pod slice with a running process and no container is not "the sandbox
// went while kubelet was not running", and a lone conmon cgroup is not
// "upgrade CRI-O" on any CRI-O.
func TestOrphanFindingSaysWhatWasSeen(t *testing.T) {
	id := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name, form, cause string
		it                decide.Item
		observed          []string
	}{
		{"pod with a process", FormEmptyPod, CauseUnknown,
			decide.Item{Kind: decide.PodKind, State: decide.Orphan, Action: decide.Keep, Reason: decide.HasProcesses, Path: "/kubepods.slice/kubepods-pod1.slice", Hierarchies: []string{"memory"}, Processes: 1},
			[]string{"no container cgroup left", "with 1 process in it", "kept: has-processes"}},
		{"lone conmon", FormConmon, CauseUnknown,
			decide.Item{Kind: decide.ContainerKind, State: decide.Orphan, Action: decide.Remove, Path: "/p/crio-conmon-" + id + ".scope", ContainerID: id, Hierarchies: []string{"memory"}},
			[]string{"crio-conmon-<id> cgroup whose crio-<id> is gone", "clean would remove it"}},
		{"misc only", FormMiscOnly, forms[FormMiscOnly].cause,
			decide.Item{Kind: decide.PodKind, State: decide.Orphan, Action: decide.Remove, Path: "/kubepods/podx", Hierarchies: []string{"misc"}},
			[]string{"only in the v1 misc hierarchy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := orphanFinding(tc.it, tc.form)
			if f.ID != IDOrphan || f.Form != tc.form || f.Cause != tc.cause {
				t.Errorf("finding %s form %q cause %q, want %s %q %q", f.ID, f.Form, f.Cause, IDOrphan, tc.form, tc.cause)
			}
			for _, want := range tc.observed {
				if !strings.Contains(f.Measured, want) {
					t.Errorf("measured %q does not say %q", f.Measured, want)
				}
			}
			for _, claim := range []string{"upgrade CRI-O", "the sandbox went while kubelet was not running, so"} {
				if strings.Contains(f.Action, claim) || strings.Contains(f.Measured, claim) || strings.Contains(f.Cause, claim) {
					t.Errorf("states %q as fact: %+v", claim, f)
				}
			}
		})
	}
	for name, f := range forms {
		if f.cause != "" && name != FormMiscOnly {
			t.Errorf("form %s gives a cause its shape does not show: %q", name, f.cause)
		}
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
