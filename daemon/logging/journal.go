package logging

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

// maxFieldName is journald's limit on field names (longer ones are dropped).
const maxFieldName = 64

// JournalHook sends every logrus entry to journald as one structured entry.
// Waiting for journald is bounded (see DefaultSendBudget): an entry that
// journald does not take, stalled or gone, is written as text to the
// fallback writer (from a goroutine of its own, so a stalled stderr does
// not block either), counted, and the next entry journald takes is
// preceded by a notice (MESSAGE_ID audit.IDJournalDropped) saying how many
// were missed. Every entry tries journald again.
type JournalHook struct {
	send func(msg string, pri journal.Priority, vars map[string]string) error
	gate *gate // nil: every entry the logger passes

	mu          sync.Mutex // serialises sends, fallback writes and the counts
	fallback    *asyncWriter
	text        logrus.Formatter
	missed      int
	missedSince time.Time
	missedErr   error
}

// NewJournalHook returns a hook that falls back to text on fallback.
func NewJournalHook(fallback io.Writer) *JournalHook {
	return &JournalHook{send: newSender(JournalSocket).send, fallback: newAsyncWriter(fallback), text: textFormatter()}
}

// Levels is every level: the hook is the logger's only sink.
func (h *JournalHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire sends e to journald, or writes it to the fallback writer. It returns
// nil either way: logrus would only print the error and skip later hooks.
func (h *JournalHook) Fire(e *logrus.Entry) error {
	if h.gate != nil && !h.gate.pass(e) {
		return nil
	}
	_ = h.fireSync(e)
	return nil
}

// fireSync is Fire returning whether journald took e: an entry it did not
// take goes to the fallback writer as well.
func (h *JournalHook) fireSync(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.missed > 0 {
		msg, vars := h.notice()
		if err := h.send(msg, journal.PriWarning, vars); err != nil {
			h.miss(e, err)
			return err
		}
		fmt.Fprintf(h.fallback, "%s: journald takes entries again (%d were written here)\n", audit.DefaultIdent, h.missed)
		h.missed, h.missedErr = 0, nil
	}
	if err := h.send(e.Message, Priority(e.Level), Fields(e)); err != nil {
		h.miss(e, err)
		return err
	}
	return nil
}

// miss writes e to the fallback writer and counts it.
func (h *JournalHook) miss(e *logrus.Entry, err error) {
	if h.missed == 0 {
		h.missedSince, h.missedErr = time.Now(), err
		fmt.Fprintf(h.fallback, "%s: journald send failed (%v), writing entries here until it is back\n", audit.DefaultIdent, err)
	}
	h.missed++
	b, ferr := h.text.Format(e)
	if ferr != nil {
		b = []byte(fmt.Sprintf("%s level=%s msg=%q (format: %v)\n", e.Time.Format(time.RFC3339), e.Level, e.Message, ferr))
	}
	_, _ = h.fallback.Write(b)
}

// notice is the entry that says how many entries journald missed.
func (h *JournalHook) notice() (string, map[string]string) {
	took := time.Since(h.missedSince)
	msg := fmt.Sprintf("journald did not take %d log entries, the first %s ago (%v); they were written to stderr as text instead",
		h.missed, took.Round(time.Millisecond), h.missedErr)
	return msg, map[string]string{
		audit.MessageID:       audit.IDJournalDropped,
		audit.JournalDropped:  strconv.Itoa(h.missed),
		audit.JournalMissedMS: strconv.FormatInt(took.Milliseconds(), 10),
		audit.Error:           fmt.Sprint(h.missedErr),
		audit.SyslogIdent:     audit.DefaultIdent,
	}
}

// Flush waits up to timeout until the entries written to the fallback
// writer are out; false if they are not (the writer blocks).
func (h *JournalHook) Flush(timeout time.Duration) bool {
	return h.fallback.flush(timeout)
}

// Priority maps a logrus level to a syslog priority (sd-daemon(3)).
func Priority(l logrus.Level) journal.Priority {
	switch l {
	case logrus.PanicLevel:
		return journal.PriEmerg
	case logrus.FatalLevel:
		return journal.PriCrit
	case logrus.ErrorLevel:
		return journal.PriErr
	case logrus.WarnLevel:
		return journal.PriWarning
	case logrus.InfoLevel:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

// Fields converts an entry's fields (and caller, when reported) to journald
// fields. SYSLOG_IDENTIFIER defaults to cgroupcleand. Names that map to the
// same journald name get a numeric suffix instead of overwriting each other.
func Fields(e *logrus.Entry) map[string]string {
	vars := make(map[string]string, len(e.Data)+4)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic suffixes on collisions
	for _, k := range keys {
		base := FieldName(k)
		name := base
		for i := 2; taken(vars, name); i++ {
			suffix := "_" + strconv.Itoa(i)
			name = base[:min(len(base), maxFieldName-len(suffix))] + suffix
		}
		vars[name] = Value(e.Data[k])
	}
	if _, ok := vars[audit.SyslogIdent]; !ok {
		vars[audit.SyslogIdent] = audit.DefaultIdent
	}
	if e.Caller != nil {
		vars["CODE_FILE"] = e.Caller.File
		vars["CODE_LINE"] = strconv.Itoa(e.Caller.Line)
		vars["CODE_FUNC"] = e.Caller.Function
	}
	return vars
}

func taken(vars map[string]string, name string) bool {
	_, ok := vars[name]
	return ok
}

// FieldName turns a logrus field name into a valid journald field name:
// upper case, only [A-Z0-9_], not starting with "_" (those are trusted
// fields journald sets itself) or a digit, at most 64 characters. Names
// from cgroupclean/audit are already valid and come back unchanged.
// MESSAGE and PRIORITY belong to the hook, so fields of those names become
// FIELD_MESSAGE and FIELD_PRIORITY.
func FieldName(k string) string {
	b := make([]byte, 0, len(k))
	for _, r := range strings.ToUpper(k) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
	}
	name := strings.TrimLeft(string(b), "_")
	switch {
	case name == "":
		name = "FIELD"
	case name[0] >= '0' && name[0] <= '9', name == "MESSAGE", name == "PRIORITY":
		name = "FIELD_" + name
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}

// Value formats a field value as journald stores it: bools as true/false,
// errors as their message, durations and other Stringers as String(),
// slices as their elements separated by spaces, the rest as fmt.Sprint.
func Value(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case error, fmt.Stringer: // fmt.Sprint survives a nil receiver
		return fmt.Sprint(x)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = Value(rv.Index(i).Interface())
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v)
}
