package main

import (
	"fmt"
	"io"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "cgroupcleand run: not built yet")
	return 1
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "cgroupcleand check-config: not built yet")
	return 1
}
