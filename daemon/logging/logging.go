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
// error, ...) that writes in format:
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
	l := logrus.New()
	l.SetLevel(lvl)
	l.SetOutput(out)
	switch format {
	case FormatText:
		l.SetFormatter(textFormatter())
	case FormatJSON:
		l.SetFormatter(&logrus.JSONFormatter{})
	case FormatJournal:
		if !journal.Enabled() {
			return nil, fmt.Errorf("log format journal: %w", ErrNoJournal)
		}
		useJournal(l, out)
	case FormatAuto:
		if IsJournalStream(out) && journal.Enabled() {
			useJournal(l, out)
		} else {
			l.SetFormatter(textFormatter())
		}
	default:
		return nil, fmt.Errorf("log format %q: want auto, journal, text or json", format)
	}
	return l, nil
}

// useJournal makes the journal hook the only sink; out is kept for entries
// journald does not take.
func useJournal(l *logrus.Logger, out io.Writer) {
	l.AddHook(NewJournalHook(out))
	l.SetFormatter(discardFormatter{})
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
