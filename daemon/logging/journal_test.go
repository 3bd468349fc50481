package logging

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
)

// TestJournalFieldsRoundTrip logs decisions at each level to a real
// journald and reads them back with journalctl -o json, field by field.
func TestJournalFieldsRoundTrip(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		var stderr bytes.Buffer
		l, err := New(FormatJournal, "debug", &stderr)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			level    logrus.Level
			id       string
			priority string
		}{
			{logrus.WarnLevel, audit.IDRemovalRefused, "4"},
			{logrus.InfoLevel, audit.IDOrphanRemoved, "6"},
			{logrus.ErrorLevel, audit.IDRemovalFailed, "3"},
			{logrus.DebugLevel, audit.IDMemcgHealth, "7"},
		} {
			t.Run(tc.level.String(), func(t *testing.T) {
				msg := "decision at " + tc.level.String()
				l.WithFields(auditFields()).WithField(audit.MessageID, tc.id).Log(tc.level, msg)
				got := j.Query(t, audit.MessageID+"="+tc.id)
				if len(got) != 1 {
					t.Fatalf("%d entries with MESSAGE_ID=%s, want 1: %v", len(got), tc.id, got)
				}
				want := auditStrings()
				want[audit.MessageID] = tc.id
				want["MESSAGE"] = msg
				want["PRIORITY"] = tc.priority
				want[audit.SyslogIdent] = audit.DefaultIdent
				want["_TRANSPORT"] = "journal"
				for k, v := range want {
					if got[0][k] != v {
						t.Errorf("%s = %q, want %q", k, got[0][k], v)
					}
				}
			})
		}

		t.Run("odd names and values", func(t *testing.T) {
			l.WithFields(logrus.Fields{
				audit.MessageID: audit.IDConfigReloaded,
				"pod-name":      "web-0",
				"_PID":          "1",
				"9lives":        9,
				"took":          1500 * time.Millisecond,
				"multi":         "line one\nline two",
			}).WithError(errors.New("bad key clean.min_age")).Info("odd")
			got := j.Query(t, audit.MessageID+"="+audit.IDConfigReloaded)
			if len(got) != 1 {
				t.Fatalf("%d entries, want 1", len(got))
			}
			for k, v := range map[string]string{
				"POD_NAME": "web-0", "PID": "1", "FIELD_9LIVES": "9", "TOOK": "1.5s",
				"MULTI": "line one\nline two", audit.Error: "bad key clean.min_age",
			} {
				if got[0][k] != v {
					t.Errorf("%s = %q, want %q", k, got[0][k], v)
				}
			}
			if got[0]["_PID"] == "1" {
				t.Error("trusted field _PID was overwritten")
			}
		})

		if stderr.Len() != 0 {
			t.Errorf("journal format wrote to stderr too: %q", stderr.String())
		}
	})
}

// TestAutoFollowsJournalStream: with stderr connected to journald's stream
// transport and JOURNAL_STREAM naming it, as systemd runs a service, "auto"
// sends native entries and writes nothing to the stream; without
// JOURNAL_STREAM the same stream gets text.
func TestAutoFollowsJournalStream(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		stream, env := j.Stream(t, "cgroupcleand-stderr")

		t.Setenv("JOURNAL_STREAM", env)
		l, err := New(FormatAuto, "info", stream)
		if err != nil {
			t.Fatal(err)
		}
		l.WithFields(auditFields()).Info("native")
		got := j.Query(t, audit.MessageID+"="+audit.IDOrphanRemoved)
		if len(got) != 1 || got[0]["_TRANSPORT"] != "journal" || got[0][audit.PodUID] != auditStrings()[audit.PodUID] {
			t.Fatalf("native entry: %v", got)
		}

		t.Setenv("JOURNAL_STREAM", "")
		l, err = New(FormatAuto, "info", stream)
		if err != nil {
			t.Fatal(err)
		}
		l.WithFields(auditFields()).Info("as text")
		text := j.Wait(t, 1, "SYSLOG_IDENTIFIER=cgroupcleand-stderr")
		if len(text) != 1 {
			t.Fatalf("want only the text entry on the stream, got %v", text)
		}
		for _, w := range []string{`msg="as text"`, audit.MessageID + "=" + audit.IDOrphanRemoved} {
			if !strings.Contains(text[0]["MESSAGE"], w) {
				t.Errorf("stream entry %q lacks %q", text[0]["MESSAGE"], w)
			}
		}
	})
}

// TestJournaldKilledFallsBack kills the real journald by its PID in the
// middle of logging: the entries logged meanwhile go to stderr as text, and
// after journald is restarted entries go to the journal again.
func TestJournaldKilledFallsBack(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		var stderr bytes.Buffer
		l, err := New(FormatJournal, "info", &stderr)
		if err != nil {
			t.Fatal(err)
		}
		logStep := func(step string) {
			l.WithFields(auditFields()).WithField("step", step).Info("step " + step)
		}
		logStep("before")
		// An entry the socket took but journald had not read yet dies with
		// journald; no client can see that. Let it store "before" first.
		j.Sync(t)
		j.Kill(t)
		logStep("down1")
		logStep("down2")
		j.Restart(t)
		logStep("after")
		if !Flush(l, 5*time.Second) {
			t.Fatal("fallback writer not flushed")
		}

		var steps []string
		for _, e := range j.Query(t, audit.MessageID+"="+audit.IDOrphanRemoved) {
			steps = append(steps, e["STEP"])
		}
		if strings.Join(steps, ",") != "before,after" {
			t.Errorf("journal has steps %v, want before,after", steps)
		}
		out := stderr.String()
		for _, w := range []string{"journald send failed", `msg="step down1"`, `msg="step down2"`, "step=down2", audit.PodUID + "=", "journald takes entries again"} {
			if !strings.Contains(out, w) {
				t.Errorf("stderr lacks %q:\n%s", w, out)
			}
		}
		for _, no := range []string{"step before", "step after"} {
			if strings.Contains(out, no) {
				t.Errorf("stderr has %q, which journald took:\n%s", no, out)
			}
		}
	})
}

func TestJournalFormatNeedsJournald(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		j.Kill(t)
		if _, err := New(FormatJournal, "info", &bytes.Buffer{}); !errors.Is(err, ErrNoJournal) {
			t.Fatalf("New(journal) without journald: %v, want ErrNoJournal", err)
		}
		var buf bytes.Buffer
		l, err := New(FormatAuto, "info", &buf)
		if err != nil {
			t.Fatal(err)
		}
		l.Info("to text")
		if !strings.Contains(buf.String(), `msg="to text"`) {
			t.Fatalf("auto without journald wrote %q", buf.String())
		}
	})
}

// TestStalledJournaldBounded stops the real journald (SIGSTOP by its PID)
// while 200 entries are logged: logging waits at most the send budget in
// all, the entries journald did not take go to the fallback writer, and
// after journald runs again the next entry comes after a record counting
// them. (go-systemd's journal.Send, tried the same way, returned for 11
// entries, net.unix.max_dgram_qlen 10 + 1, then blocked until SIGCONT.)
func TestStalledJournaldBounded(t *testing.T) {
	testbed.InJournalNamespace(t, func(j *testbed.Journal) {
		var fallback testbed.SyncBuffer
		l, err := New(FormatJournal, "info", &fallback)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(j.PID(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := range 200 {
			l.WithField(audit.MessageID, audit.IDActionIntent).WithField("N", i).Info("during the stall")
		}
		took := time.Since(start)
		if err := syscall.Kill(j.PID(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if took > DefaultSendBudget+500*time.Millisecond {
			t.Fatalf("200 entries took %s with journald stopped, budget %s", took, DefaultSendBudget)
		}
		j.Sync(t)
		l.WithField(audit.MessageID, audit.IDOrphanRemoved).Info("after the stall")
		if !Flush(l, 5*time.Second) {
			t.Fatal("fallback not flushed")
		}
		taken := len(j.Query(t, audit.MessageID+"="+audit.IDActionIntent))
		notice := j.Query(t, audit.MessageID+"="+audit.IDJournalDropped)
		if len(notice) != 1 || notice[0][audit.JournalDropped] != strconv.Itoa(200-taken) || notice[0]["PRIORITY"] != "4" {
			t.Fatalf("journald took %d entries; notice: %v", taken, notice)
		}
		if n := strings.Count(fallback.String(), "msg=\"during the stall\""); n != 200-taken {
			t.Fatalf("fallback has %d entries, want %d", n, 200-taken)
		}
		after := j.Query(t, audit.MessageID+"="+audit.IDOrphanRemoved)
		if len(after) != 1 {
			t.Fatalf("entry after the stall: %v", after)
		}
		t.Logf("journald stopped: %d of 200 entries taken, logging took %s", taken, took)
	})
}
