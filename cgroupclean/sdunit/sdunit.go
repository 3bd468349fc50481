// Package sdunit stops the systemd units (slices, scopes) that own
// orphaned pod and container cgroups. It speaks systemd's D-Bus API
// (org.freedesktop.systemd1, see org.freedesktop.systemd1(5)) through
// go-systemd: a cgroup that systemd owns is stopped with StopUnit and
// forgotten with ResetFailedUnit, never rmdir'ed behind systemd's back.
//
// A unit name alone proves nothing: a same-named directory may sit
// elsewhere in the tree. Callers Lookup the unit and check OwnsCgroup
// against the directory they found before they Stop anything.
package sdunit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Errors callers match with errors.Is.
var (
	// ErrNoSuchUnit: systemd has no such unit loaded (never existed, or
	// a transient unit already stopped and garbage-collected).
	ErrNoSuchUnit = errors.New("unit not loaded")
	// ErrJobConflict: systemd refused the stop (mode "fail") because
	// another job, such as a start, is queued for the unit or for a unit
	// the stop would take along. Nothing was stopped.
	ErrJobConflict = errors.New("another job is queued for the unit")
	// ErrJobFailed: the stop job ended with a result other than "done".
	ErrJobFailed = errors.New("stop job did not complete")
	// ErrJobTimeout: no job result within the caller's timeout. The job
	// is left queued in systemd; it ends on systemd's own stop timeout.
	ErrJobTimeout = errors.New("gave up waiting for stop job")
)

// Load states systemd reports (systemd.unit(5), "LoadState").
const (
	LoadStateLoaded   = "loaded"
	LoadStateNotFound = "not-found"
)

// Manager is a connection to one systemd manager.
type Manager struct {
	conn *sddbus.Conn
}

// Connect opens a connection to a systemd manager. bus is:
//   - "" or "system": the node's systemd over the system bus; as root,
//     when the system bus is down, systemd's private socket
//     /run/systemd/private (as go-systemd's NewWithContext and systemctl do).
//   - "user": the calling user's systemd --user over the session bus
//     ($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus).
//   - a D-Bus address of a bus daemon, e.g. "unix:path=/run/user/0/bus".
//
// ctx is the connection's lifetime, as in go-systemd: when it ends the
// connection is closed; give it a deadline only for short-lived use.
func Connect(ctx context.Context, bus string) (*Manager, error) {
	var (
		c   *sddbus.Conn
		err error
	)
	switch {
	case bus == "" || bus == "system":
		c, err = sddbus.NewWithContext(ctx)
	case bus == "user":
		c, err = sddbus.NewUserConnectionContext(ctx)
	case strings.Contains(bus, ":"):
		c, err = sddbus.NewConnection(func() (*dbus.Conn, error) { return DialBus(ctx, bus) })
	default:
		return nil, fmt.Errorf("connect to systemd: bus %q is not system, user or a D-Bus address", bus)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to systemd on %s bus: %w", busName(bus), err)
	}
	return &Manager{conn: c}, nil
}

// DialBus connects to a bus daemon at addr the way go-systemd does for
// the system bus: EXTERNAL auth with the numeric uid (no user lookup),
// then Hello.
func DialBus(ctx context.Context, addr string) (*dbus.Conn, error) {
	c, err := dbus.Dial(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func busName(bus string) string {
	if bus == "" {
		return "system"
	}
	return bus
}

// Close closes the connection.
func (m *Manager) Close() { m.conn.Close() }

// Unit is what systemd says about one unit.
type Unit struct {
	Name string
	// LoadState is "loaded" for a unit systemd knows, "not-found" for
	// one it does not (also "masked", "error", "bad-setting").
	LoadState string
	// ActiveState is "active", "inactive", "failed", "activating",
	// "deactivating" or "reloading"; SubState is type-specific
	// ("running", "abandoned", "stop-sigterm", ...).
	ActiveState string
	SubState    string
	// ControlGroup is the unit's cgroup path from the hierarchy root, ""
	// when the unit has no cgroup (not loaded, not active, or a type
	// without one). The system manager gives paths such as
	// "/kubepods.slice/kubepods-burstable.slice/...". A systemd --user
	// manager gives the full path too, its own cgroup included
	// ("/user.slice/user-0.slice/user@0.service/app.slice/..." on a
	// node, "/<test root>/kubepods.slice/..." in the tests).
	ControlGroup string
}

// Loaded reports whether systemd has the unit loaded. For a slice this
// proves nothing: systemd loads any valid slice name without a unit file
// (LoadState "loaded", ActiveState "inactive", no ControlGroup). Decide
// with OwnsCgroup, not with Loaded.
func (u Unit) Loaded() bool { return u.LoadState == LoadStateLoaded }

// Lookup asks systemd about unit. An unknown unit is not an error: a scope
// or service comes back with LoadState "not-found", a slice as loaded but
// inactive without a ControlGroup (see Loaded). Errors are D-Bus failures
// and invalid names.
func (m *Manager) Lookup(ctx context.Context, unit string) (Unit, error) {
	props, err := m.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return Unit{}, fmt.Errorf("look up unit %s: %w", unit, err)
	}
	u := Unit{
		Name:        unit,
		LoadState:   str(props["LoadState"]),
		ActiveState: str(props["ActiveState"]),
		SubState:    str(props["SubState"]),
	}
	iface := cgroupInterface(unit)
	if !u.Loaded() || iface == "" {
		return u, nil
	}
	// ControlGroup lives on the type's interface, not on Unit.
	p, err := m.conn.GetUnitTypePropertyContext(ctx, unit, iface, "ControlGroup")
	if err != nil {
		return u, fmt.Errorf("look up unit %s: control group: %w", unit, err)
	}
	u.ControlGroup, _ = p.Value.Value().(string)
	return u, nil
}

// cgroupInterface names the D-Bus interface that carries ControlGroup for
// a unit's type ("" for types without a cgroup).
func cgroupInterface(unit string) string {
	switch path.Ext(unit) {
	case ".slice":
		return "Slice"
	case ".scope":
		return "Scope"
	case ".service":
		return "Service"
	case ".socket":
		return "Socket"
	case ".mount":
		return "Mount"
	case ".swap":
		return "Swap"
	}
	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// OwnsCgroup reports whether u is the unit whose cgroup is cgroupPath, a
// path from the hierarchy root such as
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice"
// (not a /sys/fs/cgroup/... filesystem path). Paths are compared exactly
// after cleaning: a unit of the same name anywhere else, a parent or a
// child does not own it. A unit without a ControlGroup owns nothing.
func OwnsCgroup(u Unit, cgroupPath string) bool {
	if u.ControlGroup == "" || cgroupPath == "" {
		return false
	}
	return cleanCgroup(u.ControlGroup) == cleanCgroup(cgroupPath)
}

func cleanCgroup(p string) string { return path.Clean("/" + p) }
