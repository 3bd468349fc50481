package apply

import (
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func TestParseCgroupLine(t *testing.T) {
	tests := []struct{ line, name, path string }{
		{"4:cpu,cpuacct:/kubepods/x", "cpu,cpuacct", "/kubepods/x"},
		{"4:cpuacct,cpu:/kubepods/x", "cpu,cpuacct", "/kubepods/x"},
		{"9:name=systemd:/user.slice", "name=systemd", "/user.slice"},
		{"0::/init.scope", "unified", "/init.scope"},
		{"12:misc:/", "misc", "/"},
	}
	for _, tt := range tests {
		n, p, ok := parseCgroupLine(tt.line)
		if !ok || n != tt.name || p != tt.path {
			t.Errorf("%q: %q %q %v", tt.line, n, p, ok)
		}
	}
	for _, bad := range []string{"", "garbage", "1:memory", "1:memory:relative"} {
		if _, _, ok := parseCgroupLine(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The /proc scan finds the same processes as reading cgroup.procs, in the
// cgroup and below it, and not in a sibling whose name shares a prefix.
func TestScanProcessesMatchesCgroupProcs(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "procscan")
	must(t, r.Mkdir("pod/ctr"))
	must(t, r.Mkdir("pod-x"))
	must(t, r.Mkdir("empty"))
	a, b := sleeper(t), sleeper(t)
	must(t, r.AddProc("pod/ctr", a.Process.Pid))
	must(t, r.AddProc("pod-x", b.Process.Pid))
	pm, err := ScanProcesses("/proc", r.Hierarchies)
	must(t, err)
	for _, tt := range []struct {
		rel  string
		want bool
	}{{"pod", true}, {"pod/ctr", true}, {"pod-x", true}, {"empty", false}} {
		got := pm.Count(r.Rel(tt.rel))
		direct, err := Pids(r.Hierarchies, r.Rel(tt.rel))
		must(t, err)
		if (got > 0) != tt.want || (len(direct) > 0) != tt.want {
			t.Errorf("%s: /proc scan %d, cgroup.procs %d, want populated=%v", tt.rel, got, len(direct), tt.want)
		}
	}
	if n := pm.Count(r.Rel("pod")); n != len(r.Hierarchies) {
		t.Errorf("pod: one process counted %d times, want once per hierarchy (%d)", n, len(r.Hierarchies))
	}
}
