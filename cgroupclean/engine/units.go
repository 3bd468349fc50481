package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
)

// SystemdUnits adapts the D-Bus client to Units.
func SystemdUnits(m *sdunit.Manager, stopTimeout time.Duration) Units {
	return systemdUnits{m: m, timeout: stopTimeout}
}

type systemdUnits struct {
	m       *sdunit.Manager
	timeout time.Duration
}

func (u systemdUnits) Lookup(ctx context.Context, unit string) (bool, string, error) {
	info, err := u.m.Lookup(ctx, unit)
	if err != nil {
		return false, "", err
	}
	// systemd loads any slice name without a unit file; only a unit with a
	// cgroup owns a directory.
	return info.Loaded() && info.ControlGroup != "", info.ControlGroup, nil
}

func (u systemdUnits) Stop(ctx context.Context, unit string) (string, error) {
	r, err := u.m.Stop(ctx, unit, u.timeout)
	if err != nil {
		return "", err
	}
	detail := "job " + r.Result
	if len(r.ResetFailed) > 0 {
		detail += fmt.Sprintf(", reset failed %v", r.ResetFailed)
	}
	return detail + ", took " + r.Duration.Round(time.Millisecond).String(), nil
}
