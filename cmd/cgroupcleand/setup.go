package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/daemon"
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

// commonFlags adds --config and --heap-profile, and returns a function
// telling whether --config was set.
func commonFlags(fset *flag.FlagSet) (*string, func() bool) {
	p := fset.String("config", config.DefaultPath, "configuration file (TOML)")
	fset.String(heapProfileFlag, "", "write a pprof heap profile to this new file (and its memory figures to FILE.txt) when the command ends")
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

// lockFlags adds --wait and --state-dir (which overrides daemon.state_dir).
func lockFlags(fset *flag.FlagSet) (wait *bool, stateDir *string) {
	wait = fset.Bool("wait", false, "wait for another cgroupcleand run or clean to end instead of refusing")
	stateDir = fset.String("state-dir", "", "state directory (memcg limits); default daemon.state_dir")
	return wait, stateDir
}

// takeLock checks the state directory (daemon.PrivateDir) and takes the
// one-cleaner lock in lockDir. A lock held by another process is a clear
// message naming its PID; a state or lock directory that others could
// write is refused, naming the path, owner and mode (exit 1 both).
func takeLock(ctx context.Context, cfg *config.Config, lockDir, stateDir string, wait bool, stderr io.Writer, cmd string) (*daemon.Lock, bool) {
	if stateDir != "" {
		if !filepath.IsAbs(stateDir) {
			fmt.Fprintf(stderr, "cgroupcleand %s: --state-dir must be an absolute path, got %q\n", cmd, stateDir)
			return nil, false
		}
		cfg.Daemon.StateDir = filepath.Clean(stateDir)
	}
	if err := daemon.PrivateDir(cfg.Daemon.StateDir, "state directory"); err != nil {
		fmt.Fprintf(stderr, "cgroupcleand %s: %v\n", cmd, err)
		return nil, false
	}
	l, err := daemon.AcquireLock(ctx, lockDir, wait)
	if err != nil {
		fmt.Fprintf(stderr, "cgroupcleand %s: %v\n", cmd, err)
		return nil, false
	}
	return l, true
}
