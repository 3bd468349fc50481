package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"golang.org/x/sys/unix"
)

// heapProfileFlag is the flag of every command that writes a pprof heap
// profile to PATH, and its VmHWM and Go memory figures to PATH.txt, when
// the command ends (for finding where the peak memory goes). Only a flag:
// no environment variable makes a command running as root write a file.
const heapProfileFlag = "heap-profile"

// startHeapProfile creates the files named by --heap-profile, if set, and
// returns what writes them at the end. Both are created new (O_EXCL) and
// never through a symlink, so the flag cannot be turned into a write over
// an existing file; a file that cannot be created is refused before the
// command does anything (ok false, the message on stderr).
func startHeapProfile(fset *flag.FlagSet, stderr io.Writer) (stop func(), ok bool) {
	f := fset.Lookup(heapProfileFlag)
	if f == nil || f.Value.String() == "" {
		return func() {}, true
	}
	path := f.Value.String()
	prof, err := createNew(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --%s: %v\n", fset.Name(), heapProfileFlag, err)
		return nil, false
	}
	stats, err := createNew(path + ".txt")
	if err != nil {
		prof.Close()
		fmt.Fprintf(stderr, "%s: --%s: %v\n", fset.Name(), heapProfileFlag, err)
		return nil, false
	}
	// Every 4 KiB instead of 512 KiB: the small objects that make up most
	// of a pass show.
	runtime.MemProfileRate = 4096
	return func() {
		defer prof.Close()
		defer stats.Close()
		if _, err := stats.WriteString(memStats()); err != nil {
			fmt.Fprintf(stderr, "heap profile: %v\n", err)
		}
		if err := pprof.Lookup("heap").WriteTo(prof, 0); err != nil {
			fmt.Fprintf(stderr, "heap profile: %v\n", err)
		}
	}, true
}

func createNew(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s (it must not exist yet): %w", path, err)
	}
	return f, nil
}

func memStats() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	var hwm string
	for l := range strings.Lines(string(status)) {
		if strings.HasPrefix(l, "VmHWM:") || strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "Rss") {
			hwm += strings.TrimSpace(l) + " "
		}
	}
	return fmt.Sprintf("%s HeapSys %d HeapInuse %d HeapAlloc %d StackSys %d Sys %d NumGC %d\n",
		hwm, ms.HeapSys, ms.HeapInuse, ms.HeapAlloc, ms.StackSys, ms.Sys, ms.NumGC)
}
