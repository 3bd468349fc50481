package main

import (
	"fmt"
	"io"

	"github.com/BurntSushi/toml"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
)

// cmdCheckConfig validates the configuration and prints the effective
// values (defaults filled in) as TOML. Exit 1 lists every bad key with
// its line; 2 is a usage error. A kubelet_root without kubelet's pods/
// is valid but warned about on stderr.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("check-config", stderr)
	cfgPath, explicit := commonFlags(fset)
	if err := fset.Parse(args); err != nil {
		return 2
	}
	stopProfile, ok := startHeapProfile(fset, stderr)
	if !ok {
		return 2
	}
	defer stopProfile()
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "cgroupcleand check-config: unexpected arguments %q\n", fset.Args())
		return 2
	}
	cfg, src, err := loadConfig(*cfgPath, explicit())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Valid, but every pod the runtime does not list would be kept.
	if err := live.CheckKubeletRoot(cfg.Cgroup.KubeletRoot); err != nil {
		fmt.Fprintf(stderr, "warning: cgroup.kubelet_root: %v\n", err)
	}
	fmt.Fprintf(stdout, "# effective configuration, from %s\n", src)
	if err := toml.NewEncoder(stdout).Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "cgroupcleand check-config: %v\n", err)
		return 1
	}
	return 0
}
