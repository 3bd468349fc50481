// Package logging builds cgroupcleand's logger: logrus entries sent natively
// to systemd-journald (one structured entry per decision or action, see
// cgroupclean/audit and systemd/cgroupclean.catalog), or plain text / JSON on
// stderr where there is no journal (a terminal, a container).
//
// The journal is spoken to through its native protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/, sd_journal_send(3)) by
// github.com/coreos/go-systemd/v22/journal.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Formats accepted by New (config key log.format).
const (
	FormatAuto    = "auto"
	FormatJournal = "journal"
	FormatText    = "text"
	FormatJSON    = "json"
)

// ErrNoJournal is returned by New for format "journal" when journald's
// socket does not take datagrams.
var ErrNoJournal = errors.New("journald socket not reachable")

// New returns a logger at level (a logrus level name: debug, info, warning,
// error, ...) that writes in format. Records of actions
// (audit.IsActionRecord of their MESSAGE_ID) are written at every level:
// the audit trail does not depend on how verbose the log is.
//
// Formats:
//
//   - "journal": every entry is sent to journald with its fields; nothing is
//     written to out unless journald fails, then that entry goes to out as
//     text. Fails with ErrNoJournal when journald is not there at start.
//   - "text", "json": entries are written to out.
//   - "auto": "journal" when out is the stream systemd connected to the
//     journal ($JOURNAL_STREAM names out's device:inode, as systemd.exec(5)
//     sets it for a service with StandardError=journal) and journald takes
//     datagrams; "text" on out otherwise. This is the upgrade rule systemd
//     documents; a terminal, a pipe or a container's stderr stay text even
//     when a journal socket exists, because the operator is reading there.
//
// out is normally os.Stderr.
func New(format, level string, out io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	g := &gate{}
	l := logrus.New()
	l.SetOutput(skipEmpty{out})
	switch format {
	case FormatText:
		l.SetFormatter(&gatedFormatter{g: g, f: textFormatter()})
	case FormatJSON:
		l.SetFormatter(&gatedFormatter{g: g, f: &logrus.JSONFormatter{}})
	case FormatJournal:
		if !journal.Enabled() {
			return nil, fmt.Errorf("log format journal: %w", ErrNoJournal)
		}
		useJournal(l, g, out)
	case FormatAuto:
		if IsJournalStream(out) && journal.Enabled() {
			useJournal(l, g, out)
		} else {
			l.SetFormatter(&gatedFormatter{g: g, f: textFormatter()})
		}
	default:
		return nil, fmt.Errorf("log format %q: want auto, journal, text or json", format)
	}
	setLevel(l, g, lvl)
	return l, nil
}

// SetLevel changes the level of a logger made by New (on reload); action
// records stay on at every level. level is a logrus level name.
func SetLevel(l *logrus.Logger, level string) error {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	if gf, ok := l.Formatter.(*gatedFormatter); ok {
		setLevel(l, gf.g, lvl)
		return nil
	}
	l.SetLevel(lvl)
	return nil
}

// setLevel lets logrus build every entry down to info (action records are
// info, warning or error) and leaves the configured level to the gate.
// Below info nothing is an action record, so logrus itself skips debug
// entries unless debug is configured: they cost nothing then.
func setLevel(l *logrus.Logger, g *gate, lvl logrus.Level) {
	g.level.Store(uint32(lvl))
	l.SetLevel(max(lvl, logrus.InfoLevel))
}

// Flush waits up to timeout until the entries a journal logger wrote to its
// fallback writer are out (call before exit). True when there is nothing
// left to write.
func Flush(l *logrus.Logger, timeout time.Duration) bool {
	for _, h := range l.Hooks[logrus.InfoLevel] {
		if jh, ok := h.(*JournalHook); ok {
			return jh.Flush(timeout)
		}
	}
	return true
}

// gate passes entries at the configured level or more severe, and action
// records at any level.
type gate struct{ level atomic.Uint32 }

func (g *gate) pass(e *logrus.Entry) bool {
	if e.Level <= logrus.Level(g.level.Load()) {
		return true
	}
	id, _ := e.Data[audit.MessageID].(string)
	return audit.IsActionRecord(id)
}

// gatedFormatter formats only what the gate passes; logrus then writes
// nothing (skipEmpty) for the rest.
type gatedFormatter struct {
	g *gate
	f logrus.Formatter
}

func (gf *gatedFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if !gf.g.pass(e) {
		return nil, nil
	}
	return gf.f.Format(e)
}

// skipEmpty drops the empty writes of gated-out entries.
type skipEmpty struct{ w io.Writer }

func (s skipEmpty) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return s.w.Write(b)
}

// useJournal makes the journal hook the only sink; out is kept for entries
// journald does not take.
func useJournal(l *logrus.Logger, g *gate, out io.Writer) {
	h := NewJournalHook(out)
	h.gate = g
	l.AddHook(h)
	l.SetFormatter(&gatedFormatter{g: g, f: discardFormatter{}})
	l.SetOutput(io.Discard)
}

func textFormatter() *logrus.TextFormatter {
	return &logrus.TextFormatter{FullTimestamp: true, QuoteEmptyFields: true}
}

// discardFormatter skips formatting entries that the hook already sent.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// IsJournalStream reports whether w is the file that $JOURNAL_STREAM
// ("<device>:<inode>") describes. A malformed variable or a w that is not
// an *os.File is "no": text is then the safe choice.
func IsJournalStream(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(v, "%d:%d", &dev, &ino); err != nil || n != 2 {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return st.Dev == dev && st.Ino == ino
}
