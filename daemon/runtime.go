package daemon

import (
	"os"
	"runtime/debug"
)

// TuneGC makes the Go collector run at 25% heap growth instead of 100%
// unless GOGC is set. A pass keeps what it reads (about 1 KiB per orphan
// pod) and makes little garbage besides, so collecting more often costs
// little, while the heap's slack over the live data is most of a large
// pass's peak memory (bench/results.md measures both).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}
