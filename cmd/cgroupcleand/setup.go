package main

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
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
