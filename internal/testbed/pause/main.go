// Command pause is the sandbox ("pause") image of the testbed's containerd:
// a static binary that sleeps until SIGTERM or SIGINT, as the real pause
// container does. There is no registry to pull one from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of a pod it would inherit orphans: let the kernel reap them.
	signal.Ignore(syscall.SIGCHLD)
	<-c
	os.Exit(0)
}
