package testbed

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestUserSystemdScopeInNestedSlices(t *testing.T) {
	sd := StartUserSystemd(t)
	p := StartProcess(t, "sleep", "300")
	unit := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda1b2c3d4_0000_4000_8000_000000000001.slice/crio-" + strings.Repeat("ab", 32) + ".scope"
	cg := sd.StartScope(t, unit, p.PID)

	if want := "/" + sd.Root.Name + "/" + unit; cg != want {
		t.Fatalf("cgroup path %s, want %s", cg, want)
	}
	c := sd.Conn(t)
	prop, err := c.GetUnitTypePropertyContext(context.Background(), filepath.Base(unit), "Scope", "ControlGroup")
	if err != nil {
		t.Fatal(err)
	}
	if got := prop.Value.Value().(string); got != cg {
		t.Errorf("systemd ControlGroup %s, harness says %s", got, cg)
	}
	for _, h := range sd.Root.Hierarchies {
		if h.Name != "name=systemd" && h.Name != "unified" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(h.Mountpoint, cg, "cgroup.procs"))
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if strings.TrimSpace(string(data)) != strconv.Itoa(p.PID) {
			t.Errorf("%s: scope holds %q, want pid %d", h.Name, data, p.PID)
		}
	}
	if !p.Alive() {
		t.Fatal("process died")
	}
}

func TestSliceChain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kubepods.slice", "kubepods.slice"},
		{"kubepods-burstable.slice", "kubepods.slice/kubepods-burstable.slice"},
		{"kubepods-besteffort-podx_y.slice", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx_y.slice"},
	} {
		if got := sliceChain(tc.in); got != tc.want {
			t.Errorf("sliceChain(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// After the test, nothing the harness started is left: no manager, no
// process, no cgroup, no temp dir.
func TestUserSystemdCleansUp(t *testing.T) {
	var (
		sd  *UserSystemd
		p   *Process
		cg  string
		pid int
	)
	t.Run("inner", func(t *testing.T) {
		sd = StartUserSystemd(t)
		pid = sd.PID
		p = StartProcess(t, "sh", "-c", "trap '' TERM; exec sleep 300")
		cg = sd.StartScope(t, "kubepods.slice/kubepods-pod1.slice/crio-1.scope", p.PID)
	})
	if p.Alive() {
		t.Errorf("scope process %d still alive", p.PID)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("manager %d still running", pid)
	}
	for _, h := range sd.Root.Hierarchies {
		if _, err := os.Stat(h.Path(sd.Root.Name)); !os.IsNotExist(err) {
			t.Errorf("%s: test root left behind (%s inside it): %v", h.Name, cg, err)
		}
	}
	if _, err := os.Stat(sd.Dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind: %v", sd.Dir, err)
	}
}
