package sdunit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

func TestOwnsCgroup(t *testing.T) {
	const pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice"
	for _, tc := range []struct {
		name   string
		cgroup string // the unit's ControlGroup
		path   string
		want   bool
	}{
		{"exact", pod, pod, true},
		{"trailing slash", pod, pod + "/", true},
		{"no leading slash", pod, pod[1:], true},
		{"doubled slashes", pod, "/kubepods.slice//kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice", true},
		{"same name elsewhere", pod, "/other/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice", false},
		{"same name under user manager root", pod, "/user.slice" + pod, false},
		{"parent", pod, "/kubepods.slice/kubepods-burstable.slice", false},
		{"child", pod, pod + "/crio-abc.scope", false},
		{"dot-dot cleaned to the same dir", pod, pod + "/crio-abc.scope/..", true},
		{"prefix only", pod, pod + "x", false},
		{"unit without cgroup", "", pod, false},
		{"empty path", pod, "", false},
		{"both empty", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := Unit{Name: "kubepods-burstable-pod1a2b_3c4d.slice", LoadState: LoadStateLoaded, ControlGroup: tc.cgroup}
			if got := OwnsCgroup(u, tc.path); got != tc.want {
				t.Errorf("OwnsCgroup(%q, %q) = %v, want %v", tc.cgroup, tc.path, got, tc.want)
			}
		})
	}
}

func TestCgroupInterface(t *testing.T) {
	for _, tc := range []struct{ unit, want string }{
		{"kubepods.slice", "Slice"},
		{"crio-0123.scope", "Scope"},
		{"crio.service", "Service"},
		{"dbus.socket", "Socket"},
		{"-.mount", "Mount"},
		{"dev-vda1.swap", "Swap"},
		{"default.target", ""},
		{"foo.timer", ""},
		{"noext", ""},
	} {
		if got := cgroupInterface(tc.unit); got != tc.want {
			t.Errorf("cgroupInterface(%s) = %q, want %q", tc.unit, got, tc.want)
		}
	}
}

func TestMapErr(t *testing.T) {
	noSuch := dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit x.scope not loaded."}}
	masked := dbus.Error{Name: "org.freedesktop.systemd1.UnitMasked", Body: []any{"Unit x.scope is masked."}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"value", noSuch, true},
		{"pointer", &noSuch, true},
		{"wrapped", errors.Join(errors.New("ctx"), noSuch), true},
		{"other D-Bus error", masked, false},
		{"plain error", errors.New("Unit x.scope not loaded."), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(mapErr(tc.err), ErrNoSuchUnit); got != tc.want {
				t.Errorf("errors.Is(mapErr(%v), ErrNoSuchUnit) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStopRejectsNonPositiveTimeout(t *testing.T) {
	// No connection needed: the check comes first.
	m := &Manager{}
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := m.Stop(context.Background(), "x.scope", d); err == nil {
			t.Errorf("Stop with timeout %v: no error", d)
		}
	}
}

func TestConnectRejects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, bus := range []string{"session-ish", "unix:path=/nonexistent/cgroupclean/bus"} {
		if m, err := Connect(ctx, bus); err == nil {
			m.Close()
			t.Errorf("Connect(%q): no error", bus)
		}
	}
}
