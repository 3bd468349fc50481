package main

import (
	"fmt"
	"io"

	"github.com/BurntSushi/toml"
)

// cmdCheckConfig validates the configuration and prints the effective
// values (defaults filled in) as TOML. Exit 1 lists every bad key with
// its line; 2 is a usage error.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("check-config", stderr)
	cfgPath, explicit := commonFlags(fset)
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "cgroupcleand check-config: unexpected arguments %q\n", fset.Args())
		return 2
	}
	cfg, src, err := loadConfig(*cfgPath, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "# effective configuration, from %s\n", src)
	if err := toml.NewEncoder(stdout).Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "cgroupcleand check-config: %v\n", err)
		return 1
	}
	return 0
}
