package logging

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
)

// fallbackQueue is how many entries wait for a slow fallback writer.
const fallbackQueue = 4096

// asyncWriter writes to w from its own goroutine so a writer that blocks
// never holds the caller: under systemd, stderr is a stream to the same
// journald that may have stalled. Entries that find the queue full are
// dropped, counted, and the count written before the next one.
type asyncWriter struct {
	w    io.Writer
	once sync.Once
	ch   chan asyncItem
	lost atomic.Int64
}

type asyncItem struct {
	b    []byte
	done chan struct{} // a flush marker when set
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	return &asyncWriter{w: w, ch: make(chan asyncItem, fallbackQueue)}
}

// Write queues a copy of b. It never blocks and never fails.
func (a *asyncWriter) Write(b []byte) (int, error) {
	a.once.Do(func() { go a.run() })
	select {
	case a.ch <- asyncItem{b: append([]byte(nil), b...)}:
	default:
		a.lost.Add(1)
	}
	return len(b), nil
}

func (a *asyncWriter) run() {
	for it := range a.ch {
		if it.done != nil {
			close(it.done)
			continue
		}
		if n := a.lost.Swap(0); n > 0 {
			fmt.Fprintf(a.w, "%s: %d log entries dropped: this output did not keep up\n", audit.DefaultIdent, n)
		}
		_, _ = a.w.Write(it.b)
	}
}

// flush waits up to timeout until everything queued before it is written.
func (a *asyncWriter) flush(timeout time.Duration) bool {
	a.once.Do(func() { go a.run() })
	done := make(chan struct{})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a.ch <- asyncItem{done: done}:
	case <-t.C:
		return false
	}
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
