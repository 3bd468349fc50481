package testbed

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestRunPattern(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"TestA", "^TestA$"},
		{"TestA/sub", "^TestA$/^sub$"},
		{"TestA/x.y_(1)", `^TestA$/^x\.y_\(1\)$`},
	} {
		if got := runPattern(tc.name); got != tc.want {
			t.Errorf("runPattern(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseJournalJSON(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       map[string]string
	}{
		{"strings", `{"MESSAGE":"hi","PRIORITY":"6"}`, map[string]string{"MESSAGE": "hi", "PRIORITY": "6"}},
		{"null when too large", `{"BLOB":null}`, map[string]string{"BLOB": ""}},
		{"bytes", `{"MESSAGE":[104,10,255]}`, map[string]string{"MESSAGE": "h\n\xff"}},
		{"several values", `{"F":["a","b"]}`, map[string]string{"F": "a\nb"}},
		{"several binary values", `{"F":[[97,10],"b"]}`, map[string]string{"F": "a\n\nb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseJournalJSON([]byte(tc.line + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := parseJournalJSON([]byte(`{"F":{"x":1}}`)); err == nil {
		t.Fatal("object value accepted")
	}
}

// TestJournalNamespace proves the harness: a real journald takes native
// and stream entries, Query reads them back, Kill/Restart behave like a
// crash and a restart, and the host's /run/systemd is left as it was.
func TestJournalNamespace(t *testing.T) {
	mine := []string{"/run/systemd/journal", "/run/systemd/journald.conf.d"}
	existed := map[string]bool{}
	for _, p := range mine {
		_, err := os.Stat(p)
		existed[p] = err == nil
	}
	var pids []int
	t.Cleanup(func() { // runs after the harness's own cleanup
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("journald %d still running after the test", pid)
			}
		}
	})
	InJournalNamespace(t, func(j *Journal) {
		pids = append(pids, j.PID())
		if !journal.Enabled() {
			t.Fatal("journal.Enabled() is false with journald running")
		}
		vars := map[string]string{"TESTBED_FIELD": "v1", "MULTI_LINE": "a\nb", "BINARY": "x\xffy", "SYSLOG_IDENTIFIER": "testbed"}
		if err := journal.Send("before kill", journal.PriWarning, vars); err != nil {
			t.Fatal(err)
		}
		got := j.Query(t, "TESTBED_FIELD=v1")
		if len(got) != 1 {
			t.Fatalf("got %d entries, want 1: %v", len(got), got)
		}
		want := map[string]string{"MESSAGE": "before kill", "PRIORITY": "4", "_TRANSPORT": "journal"}
		for k, v := range vars {
			want[k] = v
		}
		for k, v := range want {
			if got[0][k] != v {
				t.Errorf("%s = %q, want %q", k, got[0][k], v)
			}
		}

		f, env := j.Stream(t, "testbed-stream")
		if !strings.Contains(env, ":") {
			t.Fatalf("JOURNAL_STREAM value %q", env)
		}
		fmt.Fprintln(f, "line on the stream")
		s := j.Wait(t, 1, "SYSLOG_IDENTIFIER=testbed-stream")
		if s[0]["MESSAGE"] != "line on the stream" || s[0]["_TRANSPORT"] != "stdout" {
			t.Errorf("stream entry %v", s[0])
		}

		j.Kill(t)
		if err := journal.Send("while down", journal.PriInfo, map[string]string{"TESTBED_FIELD": "v2"}); err == nil {
			t.Fatal("journal.Send succeeded with journald killed")
		}
		j.Restart(t)
		pids = append(pids, j.PID())
		if err := journal.Send("after restart", journal.PriInfo, map[string]string{"TESTBED_FIELD": "v3"}); err != nil {
			t.Fatal(err)
		}
		all := j.Query(t, "TESTBED_FIELD=v1", "+", "TESTBED_FIELD=v2", "+", "TESTBED_FIELD=v3")
		var msgs []string
		for _, e := range all {
			msgs = append(msgs, e["MESSAGE"])
		}
		if !slices.Equal(msgs, []string{"before kill", "after restart"}) {
			t.Fatalf("messages %q", msgs)
		}
	})
	// In both processes: the tmpfs is gone once fn returns.
	for _, p := range mine {
		if _, err := os.Stat(p); (err == nil) != existed[p] {
			t.Errorf("%s: existed before %v, stat after: %v", p, existed[p], err)
		}
	}
}
