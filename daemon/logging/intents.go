package logging

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// IntentWriter writes intent records of actions synchronously and says
// whether the sink took them: journald (its socket holds the record), or
// the log output (the write returned). The engine takes no action whose
// intent record was not taken, so an audit trail lost to a stalled or gone
// journald never hides an action.
type IntentWriter struct{ l *logrus.Logger }

// Intents returns the intent writer of a logger made by New.
func Intents(l *logrus.Logger) IntentWriter { return IntentWriter{l: l} }

// ErrNotTaken wraps why the sink did not take an intent record.
var ErrNotTaken = errors.New("audit record not taken")

// WriteIntent writes one intent record at info level (action records pass
// every level). With journald it is sent at once, within the sender's wait
// budget; when journald does not take it, it is also written to the
// fallback output as text and the error returned.
func (w IntentWriter) WriteIntent(fields logrus.Fields, msg string) error {
	e := logrus.NewEntry(w.l).WithFields(fields)
	e.Time, e.Level, e.Message = time.Now(), logrus.InfoLevel, msg
	for _, h := range w.l.Hooks[logrus.InfoLevel] {
		if jh, ok := h.(*JournalHook); ok {
			if err := jh.fireSync(e); err != nil {
				return fmt.Errorf("%w by journald: %w", ErrNotTaken, err)
			}
			return nil
		}
	}
	b, err := w.l.Formatter.Format(e)
	if err != nil {
		return fmt.Errorf("%w: format: %w", ErrNotTaken, err)
	}
	if _, err := w.l.Out.Write(b); err != nil {
		return fmt.Errorf("%w by the log output: %w", ErrNotTaken, err)
	}
	return nil
}
