package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// auditFields is one decision as the daemon logs it.
func auditFields() logrus.Fields {
	return logrus.Fields{
		audit.MessageID:   audit.IDOrphanRemoved,
		audit.CgroupPath:  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b1c_2d3e.slice",
		audit.PodUID:      "0b1c-2d3e",
		audit.ContainerID: strings.Repeat("ab", 32),
		audit.Unit:        "kubepods-burstable-pod0b1c_2d3e.slice",
		audit.Action:      audit.ActionStop,
		audit.Reason:      "no-sandbox",
		audit.DryRun:      true,
		audit.Pass:        7,
	}
}

// auditStrings is auditFields as journald stores them.
func auditStrings() map[string]string {
	out := map[string]string{}
	for k, v := range auditFields() {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func TestFieldName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{audit.MessageID, audit.MessageID},
		{audit.MemcgLatency, audit.MemcgLatency},
		{audit.SyslogIdent, audit.SyslogIdent},
		{"pod-uid", "POD_UID"},
		{"cgroup.path", "CGROUP_PATH"},
		{"error", "ERROR"},
		{"_PID", "PID"},
		{"__x y", "X_Y"},
		{"9lives", "FIELD_9LIVES"},
		{"", "FIELD"},
		{"___", "FIELD"},
		{"message", "FIELD_MESSAGE"},
		{"PRIORITY", "FIELD_PRIORITY"},
		{"grüße", "GR__E"},
		{strings.Repeat("a", 80), strings.Repeat("A", 64)},
	} {
		got := FieldName(tc.in)
		if got != tc.want {
			t.Errorf("FieldName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if err := validName(got); err != nil {
			t.Errorf("FieldName(%q) = %q: %v", tc.in, got, err)
		}
	}
}

// validName is journald's rule (sd_journal_print(3), journal_field_valid).
func validName(n string) error {
	if n == "" || len(n) > 64 || n[0] == '_' || (n[0] >= '0' && n[0] <= '9') {
		return errors.New("bad start or length")
	}
	for _, r := range n {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("bad character %q", r)
		}
	}
	return nil
}

func FuzzFieldName(f *testing.F) {
	for _, s := range []string{"pod-uid", "_x", "9", "", "ß", audit.CgroupPath} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := validName(FieldName(s)); err != nil {
			t.Fatalf("FieldName(%q) = %q: %v", s, FieldName(s), err)
		}
	})
}

type stringer struct{ s string }

func (x *stringer) String() string { return x.s } // panics on nil, as many do

func TestValue(t *testing.T) {
	var nilStringer *stringer
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"s", "s"},
		{true, "true"},
		{false, "false"},
		{42, "42"},
		{int64(-1), "-1"},
		{1.5, "1.5"},
		{errors.New("rmdir: device or resource busy"), "rmdir: device or resource busy"},
		{fmt.Errorf("stop unit x: %w", unix.EBUSY), "stop unit x: device or resource busy"},
		{1500 * time.Millisecond, "1.5s"},
		{&stringer{"stringer"}, "stringer"},
		{nilStringer, "<nil>"},
		{[]int{12, 34}, "12 34"},
		{[]string{"a", "b"}, "a b"},
		{[]byte("raw"), "raw"},
		{nil, ""},
	} {
		if got := Value(tc.in); got != tc.want {
			t.Errorf("Value(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		l    logrus.Level
		want journal.Priority
	}{
		{logrus.PanicLevel, 0},
		{logrus.FatalLevel, 2},
		{logrus.ErrorLevel, 3},
		{logrus.WarnLevel, 4},
		{logrus.InfoLevel, 6},
		{logrus.DebugLevel, 7},
		{logrus.TraceLevel, 7},
	} {
		if got := Priority(tc.l); got != tc.want {
			t.Errorf("Priority(%v) = %d, want %d", tc.l, got, tc.want)
		}
	}
}

func TestFields(t *testing.T) {
	l := logrus.New()
	for _, tc := range []struct {
		name string
		data logrus.Fields
		want map[string]string
	}{
		{"audit fields pass through", auditFields(), func() map[string]string {
			m := auditStrings()
			m[audit.SyslogIdent] = audit.DefaultIdent
			return m
		}()},
		{"collisions get suffixes", logrus.Fields{"pod-uid": "a", "POD_UID": "b", "pod_uid": "c"},
			map[string]string{"POD_UID": "b", "POD_UID_2": "a", "POD_UID_3": "c", audit.SyslogIdent: audit.DefaultIdent}},
		{"identifier can be overridden", logrus.Fields{audit.SyslogIdent: "other"},
			map[string]string{audit.SyslogIdent: "other"}},
		{"message field does not replace MESSAGE", logrus.Fields{"message": "m"},
			map[string]string{"FIELD_MESSAGE": "m", audit.SyslogIdent: audit.DefaultIdent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Fields(logrus.NewEntry(l).WithFields(tc.data))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestFieldsCaller(t *testing.T) {
	e := logrus.NewEntry(logrus.New())
	e.Caller = &runtime.Frame{File: "/src/engine/apply.go", Line: 42, Function: "engine.Apply"}
	got := Fields(e)
	for k, v := range map[string]string{"CODE_FILE": "/src/engine/apply.go", "CODE_LINE": "42", "CODE_FUNC": "engine.Apply"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct{ format, level string }{
		{"text", "loud"},
		{"xml", "info"},
		{"", "info"},
	} {
		if _, err := New(tc.format, tc.level, &bytes.Buffer{}); err == nil {
			t.Errorf("New(%q, %q) accepted", tc.format, tc.level)
		}
	}
}

// TestTextAndJSON: without journald every field reaches the writer.
func TestTextAndJSON(t *testing.T) {
	for _, format := range []string{FormatText, FormatJSON, FormatAuto} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(format, "info", &buf)
			if err != nil {
				t.Fatal(err)
			}
			l.WithFields(auditFields()).WithError(errors.New("boom")).WithField("took", 1500*time.Millisecond).Warn("cgroup removed")
			l.Debug("not at this level")
			out := buf.String()
			if strings.Count(out, "\n") != 1 {
				t.Fatalf("want one line, got %q", out)
			}
			if format == FormatJSON {
				var got map[string]any
				if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				for k, v := range auditFields() {
					if fmt.Sprint(got[k]) != fmt.Sprint(v) {
						t.Errorf("%s = %v, want %v", k, got[k], v)
					}
				}
				if got["msg"] != "cgroup removed" || got["level"] != "warning" || got["error"] != "boom" {
					t.Errorf("msg/level/error wrong: %v", got)
				}
				return
			}
			want := []string{`msg="cgroup removed"`, "level=warning", "error=boom", "took=1.5s"}
			for k, v := range auditStrings() {
				want = append(want, k+"="+v)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("text output lacks %q: %s", w, out)
				}
			}
		})
	}
}

func TestIsJournalStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, env string
		w         io.Writer
		want      bool
	}{
		{"matches", fmt.Sprintf("%d:%d", st.Dev, st.Ino), f, true},
		{"other inode", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), f, false},
		{"other device", fmt.Sprintf("%d:%d", st.Dev+1, st.Ino), f, false},
		{"unset", "", f, false},
		{"malformed", "x:y", f, false},
		{"not a file", fmt.Sprintf("%d:%d", st.Dev, st.Ino), &bytes.Buffer{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.env)
			if got := IsJournalStream(tc.w); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHookFallbackLogic drives the hook with a send that fails for a while:
// failed entries go to the fallback writer as text, with one notice when
// journald goes away and one when it is back, journald is tried for
// every entry, and the first entry it takes again comes after a record
// counting what it missed. The real journald version is
// TestJournaldKilledFallsBack.
func TestHookFallbackLogic(t *testing.T) {
	var buf bytes.Buffer
	var sent []string
	var notice map[string]string
	down := false
	h := NewJournalHook(&buf)
	h.send = func(msg string, _ journal.Priority, vars map[string]string) error {
		if down {
			return unix.ECONNREFUSED
		}
		if vars[audit.MessageID] == audit.IDJournalDropped {
			notice, msg = vars, "notice"
		}
		sent = append(sent, msg)
		return nil
	}
	l := logrus.New()
	l.AddHook(h)
	l.SetOutput(&bytes.Buffer{})
	for _, step := range []struct {
		down bool
		msg  string
	}{{false, "one"}, {true, "two"}, {true, "three"}, {false, "four"}} {
		down = step.down
		l.WithField(audit.PodUID, "u-"+step.msg).Info(step.msg)
	}
	if fmt.Sprint(sent) != "[one notice four]" {
		t.Errorf("sent to journald: %v", sent)
	}
	if notice[audit.JournalDropped] != "2" || notice[audit.Error] != "connection refused" || notice[audit.JournalMissedMS] == "" {
		t.Errorf("notice of the missed entries: %v", notice)
	}
	if !h.Flush(5 * time.Second) {
		t.Fatal("fallback writer not flushed")
	}
	out := buf.String()
	for _, w := range []string{"journald send failed (connection refused)", "msg=two POD_UID=u-two", "msg=three POD_UID=u-three", "journald takes entries again (2 were written here)"} {
		if !strings.Contains(out, w) {
			t.Errorf("fallback lacks %q:\n%s", w, out)
		}
	}
	if strings.Count(out, "send failed") != 1 || strings.Contains(out, "msg=one") || strings.Contains(out, "msg=four") {
		t.Errorf("fallback output:\n%s", out)
	}
}

// TestHookConcurrent: goroutines logging at once while journald refuses
// some entries; each refused entry reaches the fallback exactly once
// (run with -race).
func TestHookConcurrent(t *testing.T) {
	var buf bytes.Buffer
	h := NewJournalHook(&buf)
	h.send = func(msg string, _ journal.Priority, _ map[string]string) error {
		if strings.HasSuffix(msg, "-odd") {
			return unix.ECONNREFUSED
		}
		return nil
	}
	l := logrus.New()
	l.AddHook(h)
	l.SetOutput(io.Discard)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				l.Infof("g%d-i%d-%s", g, i, map[bool]string{true: "odd", false: "even"}[i%2 == 1])
			}
		}()
	}
	for range 8 {
		<-done
	}
	if !h.Flush(5 * time.Second) {
		t.Fatal("fallback writer not flushed")
	}
	out := buf.String()
	for g := range 8 {
		for i := range 50 {
			msg := fmt.Sprintf("msg=g%d-i%d-", g, i)
			if n := strings.Count(out, msg); n != i%2 {
				t.Fatalf("%s appears %d times in the fallback", msg, n)
			}
		}
	}
}

// TestGateKeepsActionRecords: at every level, records of actions pass and
// the other entries follow the level, also after SetLevel (reload).
func TestGateKeepsActionRecords(t *testing.T) {
	for _, level := range []string{"debug", "info", "warning", "error"} {
		t.Run(level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(FormatText, "debug", &buf)
			if err != nil {
				t.Fatal(err)
			}
			if err := SetLevel(l, level); err != nil {
				t.Fatal(err)
			}
			lvl, _ := logrus.ParseLevel(level)
			for _, id := range []string{audit.IDActionIntent, audit.IDOrphanRemoved, audit.IDUnitStopped, audit.IDMemcgAction, audit.IDKeptSummary, audit.IDPassSummary, ""} {
				buf.Reset()
				l.WithField(audit.MessageID, id).Info("entry " + id)
				want := audit.IsActionRecord(id) || lvl >= logrus.InfoLevel
				if got := buf.Len() > 0; got != want {
					t.Errorf("MESSAGE_ID=%q at level %s written=%v, want %v", id, level, got, want)
				}
			}
			buf.Reset()
			l.WithField(audit.MessageID, audit.IDOrphanRemoved).Debug("debug action")
			if got := buf.Len() > 0; got != (lvl == logrus.DebugLevel) {
				t.Errorf("a debug entry at level %s written=%v", level, got)
			}
			if l.IsLevelEnabled(logrus.DebugLevel) != (lvl == logrus.DebugLevel) {
				t.Errorf("debug entries are built at level %s", level)
			}
		})
	}
	for _, id := range []string{audit.IDRemovalRefused, audit.IDKeptSummary, audit.IDPassSummary, audit.IDRuntimeUnreachable, audit.IDMemcgHealth, audit.IDConfigReloaded} {
		if audit.IsActionRecord(id) {
			t.Errorf("%s is not a record of an action", id)
		}
	}
}
