package daemon

import (
	"os"
	"runtime/debug"
)

// TuneGC makes the Go collector run at 50% heap growth instead of 100%
// unless GOGC is set: a node agent that wakes every few minutes should hold
// little memory between passes, and the extra collections cost next to
// nothing at that rate (bench/results.md measures both).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}
