// Command cgroupcleand finds and removes orphaned Kubernetes pod cgroups.
//
//	cgroupcleand scan  [--config FILE] [--json]     read-only: what is live, orphaned, and why
//	cgroupcleand clean [--config FILE] [--dry-run]  one pass that removes the orphans passing every gate
//	cgroupcleand run   [--config FILE]              the systemd service: passes on an interval
//	cgroupcleand doctor [--json] [--interval 10s]   read-only node health report
//	cgroupcleand check-config [--config FILE]       validate and print the effective config
//	cgroupcleand version
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/cgroupclean/cgroupclean/daemon"
)

const usage = `usage: cgroupcleand <command> [flags]

commands:
  scan          read-only: list pod and container cgroups, live or orphaned, and what clean would do
  clean         one pass: remove the orphans that pass every safety gate
  run           run as a service: a pass every interval (systemd Type=notify)
  doctor        read-only node health report: leaked cgroups and why, zombie memcgs, CFS throttling, writable layers
  check-config  validate the configuration and print the effective values
  version       print version, commit and build date

Run 'cgroupcleand <command> -h' for the flags of a command.
`

func main() {
	daemon.TuneGC()
	os.Exit(cli{lockDir: daemon.LockDir}.run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli is the command line. lockDir is where run and clean take the
// one-cleaner lock: daemon.LockDir, and a directory of their own only in
// the in-process tests; no flag, environment variable or key moves it.
type cli struct{ lockDir string }

func (c cli) run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "scan":
		return cmdScan(rest, stdout, stderr)
	case "clean":
		return cmdClean(rest, stdout, stderr, c.lockDir)
	case "run":
		return cmdRun(rest, stdout, stderr, c.lockDir)
	case "doctor":
		return cmdDoctor(rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "cgroupcleand %s (commit %s, built %s)\n", version, commit, buildDate)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cgroupcleand: unknown command %q\n\n%s", cmd, usage)
	return 2
}
