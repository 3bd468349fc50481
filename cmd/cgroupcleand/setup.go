package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/cgroupclean/sdunit"
	"github.com/sirupsen/logrus"
)

// loadConfig reads the file named by --config, or the default path if it
// exists, or the built-in defaults.
func loadConfig(path string, explicit bool) (config.Config, string, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return config.Default(), "(built-in defaults)", nil
		}
	}
	cfg, err := config.Load(path)
	return cfg, path, err
}

// commonFlags adds --config and returns a function telling whether it was set.
func commonFlags(fset *flag.FlagSet) (*string, func() bool) {
	p := fset.String("config", config.DefaultPath, "configuration file (TOML)")
	return p, func() bool {
		set := false
		fset.Visit(func(f *flag.Flag) {
			if f.Name == "config" {
				set = true
			}
		})
		return set
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fset := flag.NewFlagSet("cgroupcleand "+name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	return fset
}

// newEngine connects to the runtime and, with the systemd driver, to
// systemd. A connection that fails is recorded in the engine, not fatal:
// the pass then keeps everything that needed it, with the reason.
func newEngine(ctx context.Context, cfg config.Config, log logrus.FieldLogger) (*engine.Engine, func()) {
	e := &engine.Engine{Config: cfg, Log: log}
	var closers []func()
	client, err := cri.Dial(cfg.Runtime.Endpoint, cfg.Runtime.Timeout.Duration)
	if err != nil {
		e.RuntimeErr = err
	} else {
		e.Runtime = client
		closers = append(closers, func() { _ = client.Close() })
	}
	if wantSystemd(e) {
		m, err := sdunit.Connect(ctx, cfg.Clean.SystemdBus)
		if err != nil {
			e.UnitsErr = fmt.Errorf("connect to systemd (%s bus): %w", cfg.Clean.SystemdBus, err)
		} else {
			e.Units = unitAdapter{m: m, timeout: cfg.Clean.UnitStopTimeout.Duration}
			closers = append(closers, m.Close)
		}
	}
	return e, func() {
		for _, c := range closers {
			c()
		}
	}
}

func wantSystemd(e *engine.Engine) bool {
	switch e.Config.Clean.UseSystemd {
	case "never":
		return false
	case "always":
		return true
	}
	_, _, driver, err := e.Discover()
	return err == nil && driver == names.Systemd
}

// unitAdapter lets the engine use the D-Bus client.
type unitAdapter struct {
	m       *sdunit.Manager
	timeout time.Duration
}

func (a unitAdapter) Lookup(ctx context.Context, unit string) (bool, string, error) {
	u, err := a.m.Lookup(ctx, unit)
	if err != nil {
		return false, "", err
	}
	// systemd loads any slice name without a unit file; only a unit with a
	// cgroup is one that owns a directory.
	return u.Loaded() && u.ControlGroup != "", u.ControlGroup, nil
}

func (a unitAdapter) Stop(ctx context.Context, unit string) (string, error) {
	r, err := a.m.Stop(ctx, unit, a.timeout)
	if err != nil {
		return "", err
	}
	detail := "job " + r.Result
	if len(r.ResetFailed) > 0 {
		detail += fmt.Sprintf(", reset failed %v", r.ResetFailed)
	}
	return detail + ", took " + r.Duration.Round(time.Millisecond).String(), nil
}
