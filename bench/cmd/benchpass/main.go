// Command benchpass runs one measured job of `make bench` (see package
// bench/pass) from a JSON spec file and prints its report as JSON. The
// harness reads the process's peak RSS and CPU from its rusage.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/cgroupclean/cgroupclean/bench/pass"
	"github.com/cgroupclean/cgroupclean/daemon"
)

func main() {
	daemon.TuneGC() // as cgroupcleand does
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchpass SPEC.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "benchpass:", err)
		os.Exit(1)
	}
}

func run(specFile string) error {
	data, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec pass.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("spec %s: %w", specFile, err)
	}
	rep, err := pass.Run(context.Background(), spec)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}
