// Command pause is the sandbox ("pause") image of the testbed's containerd:
// a static binary that sleeps until SIGTERM or SIGINT, as the real pause
// container does. There is no registry to pull one from.
//
// Run as a container with arguments, it is also the tests' workload:
//
//	pause spin            burn CPU until signalled (throttling tests)
//	pause files N DIR     create N empty files in DIR (in the container's
//	                      writable layer), then wait
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of a pod it would inherit orphans: let the kernel reap them.
	signal.Ignore(syscall.SIGCHLD)
	if len(os.Args) > 1 {
		if err := work(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "pause:", err)
			os.Exit(1)
		}
	}
	<-c
	os.Exit(0)
}

func work(args []string) error {
	switch {
	case args[0] == "spin":
		go func() {
			for n := 0; ; n++ {
				_ = n * n
			}
		}()
		return nil
	case args[0] == "files" && len(args) == 3:
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		if err := os.MkdirAll(args[2], 0o755); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			f, err := os.Create(filepath.Join(args[2], "f"+strconv.Itoa(i)))
			if err != nil {
				return err
			}
			f.Close()
		}
		// Tell the test the files are there.
		return os.WriteFile(filepath.Join(args[2], "done"), nil, 0o644)
	}
	return fmt.Errorf("unknown work %q", args)
}
