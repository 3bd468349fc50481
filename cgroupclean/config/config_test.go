package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every bad configuration is rejected with a message that names the key
// and its line, so an operator can fix the file without guessing.
func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		key  string
		line int
		msg  string // part of the message
	}{
		// Unknown keys.
		{"unknown key", "[clean]\nmin_age = \"1m\"\nbogus = 1\n", "clean.bogus", 3, "unknown key"},
		{"unknown top-level key", "interval = \"1m\"\n", "interval", 1, "unknown key"},
		{"unknown section", "\n[deamon]\ninterval = \"1m\"\n", "deamon.interval", 3, "unknown key"},
		{"misspelt key", "[runtime]\nendpoint = \"/run/crio.sock\"\ntimout = \"1s\"\n", "runtime.timout", 3, "unknown key"},
		// Wrong TOML types.
		{"string for int", "[clean]\nconfirm_passes = \"two\"\n", "clean.confirm_passes", 2, "incompatible types"},
		{"int for bool", "[clean]\n\nkill_orphan_processes = 1\n", "clean.kill_orphan_processes", 3, "incompatible types"},
		{"array for duration", "[runtime]\ntimeout = [\"1s\"]\n", "runtime.timeout", 2, "incompatible types"},
		{"int for duration", "[daemon]\ninterval = 300\n", "daemon.interval", 2, "not a duration"},
		{"bad duration", "[clean]\nmin_age = \"ten minutes\"\n", "clean.min_age", 2, "not a duration"},
		{"section is a value", "clean = 3\n", "clean", 1, "type mismatch"},
		// Bad values.
		{"tcp endpoint", "[runtime]\nendpoint = \"tcp://10.0.0.1:1234\"\n", "runtime.endpoint", 2, "unix socket"},
		{"zero timeout", "[runtime]\ntimeout = \"0s\"\n", "runtime.timeout", 2, "positive"},
		{"relative mount root", "[cgroup]\nmount_root = \"sys/fs/cgroup\"\n", "cgroup.mount_root", 2, "absolute"},
		{"empty kubelet root", "[cgroup]\nkubelet_root = \"\"\n", "cgroup.kubelet_root", 2, "empty"},
		{"pod root is /", "[cgroup]\npod_root = \"/\"\n", "cgroup.pod_root", 2, "cgroup root"},
		{"pod root with ..", "[cgroup]\npod_root = \"/kubepods/../system.slice\"\n", "cgroup.pod_root", 2, `".."`},
		{"bad driver", "[cgroup]\ndriver = \"v2\"\n", "cgroup.driver", 2, "auto, systemd or cgroupfs"},
		{"negative min age", "[clean]\nmin_age = \"-5m\"\n", "clean.min_age", 2, "negative"},
		{"no removals allowed", "[clean]\nmax_removals_per_pass = 0\n", "clean.max_removals_per_pass", 2, "at least 1"},
		{"share zero", "[clean]\nmax_removal_share = 0.0\n", "clean.max_removal_share", 2, "(0, 1]"},
		{"share above one", "[clean]\nmax_removal_share = 1.5\n", "clean.max_removal_share", 2, "(0, 1]"},
		{"negative guard", "[clean]\nmass_guard_min_pods = -1\n", "clean.mass_guard_min_pods", 2, "negative"},
		{"bad use_systemd", "[clean]\nuse_systemd = \"sometimes\"\n", "clean.use_systemd", 2, "auto, always or never"},
		{"bad bus", "[clean]\nsystemd_bus = \"tcp:host=x\"\n", "clean.systemd_bus", 2, "unix:path="},
		{"zero stop timeout", "[clean]\nunit_stop_timeout = \"0s\"\n", "clean.unit_stop_timeout", 2, "positive"},
		{"no confirmation", "[clean]\nconfirm_passes = 0\n", "clean.confirm_passes", 2, "at least 1"},
		{"interval too short", "[daemon]\ninterval = \"500ms\"\n", "daemon.interval", 2, "at least 1s"},
		{"jitter too large", "[daemon]\njitter = 0.75\n", "daemon.jitter", 2, "[0, 0.5]"},
		{"negative jitter", "[daemon]\njitter = -0.1\n", "daemon.jitter", 2, "[0, 0.5]"},
		{"bad log level", "[log]\nlevel = \"trace\"\n", "log.level", 2, "debug, info, warning or error"},
		{"bad log format", "[log]\nformat = \"xml\"\n", "log.format", 2, "auto, journal, text or json"},
		{"bad memcg mode", "[memcg]\nmode = \"on\"\n", "memcg.mode", 2, "off, observe or act"},
		// Syntax.
		// The TOML parser notices the missing "]" at the newline, so it
		// names the line after the header.
		{"unclosed table", "[clean\nmin_age = \"1m\"\n", "syntax", 2, "table"},
		{"unclosed string", "[clean]\nuse_systemd = \"auto\n", "clean.use_systemd", 2, "string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.toml", tc.text)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.text)
			}
			msg := err.Error()
			for _, want := range []string{tc.key, fmt.Sprintf("line %d", tc.line), tc.msg} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			var errs *Errors
			if errors.As(err, &errs) {
				for _, fe := range errs.List {
					if fe.Key == tc.key && fe.Line == tc.line {
						return
					}
				}
				t.Errorf("no FieldError{Key: %q, Line: %d} in %+v", tc.key, tc.line, errs.List)
			}
		})
	}
}

// All the problems of one file are reported at once, in line order.
func TestParseReportsEveryError(t *testing.T) {
	text := `[clean]
confirm_passes = 0
bogus = true

[daemon]
jitter = 0.9
interval = "100ms"
`
	_, err := Parse("multi.toml", text)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	var got []string
	for _, fe := range errs.List {
		got = append(got, fmt.Sprintf("%s:%d", fe.Key, fe.Line))
	}
	want := []string{"clean.confirm_passes:2", "clean.bogus:3", "daemon.jitter:6", "daemon.interval:7"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors %v, want %v\n%s", got, want, err)
	}
	if !strings.HasPrefix(err.Error(), "config multi.toml:\n  clean.confirm_passes (line 2): ") {
		t.Errorf("message layout:\n%s", err)
	}
}

// Valid files parse over the defaults: what is not written keeps its
// default.
func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		check func(c Config) bool
	}{
		{"empty file", "", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"comments only", "# nothing\n\n[clean]\n# min_age = \"1h\"\n", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"daemon settings", "[daemon]\ninterval = \"90s\"\njitter = 0.25\n", func(c Config) bool {
			return c.Daemon.Interval.Duration == 90*time.Second && c.Daemon.Jitter == 0.25 && c.Clean.ConfirmPasses == 2
		}},
		{"containerd node", `[runtime]
endpoint = "unix:///run/containerd/containerd.sock"
timeout = "3s"
[cgroup]
pod_root = "/kubepods"
driver = "cgroupfs"
[clean]
min_age = "0s"
confirm_passes = 3
use_systemd = "never"
kill_orphan_processes = true
`, func(c Config) bool {
			return c.Runtime.Endpoint == "unix:///run/containerd/containerd.sock" && c.Runtime.Timeout.Duration == 3*time.Second &&
				c.Cgroup.PodRoot == "/kubepods" && c.Cgroup.Driver == "cgroupfs" && c.Clean.MinAge.Duration == 0 &&
				c.Clean.ConfirmPasses == 3 && c.Clean.UseSystemd == "never" && c.Clean.KillOrphanProcesses &&
				c.Clean.MaxRemovalsPerPass == 50
		}},
		{"bare socket path and user bus", "[runtime]\nendpoint = \"/var/run/crio/crio.sock\"\n[clean]\nsystemd_bus = \"unix:path=/run/user/0/bus\"\n", func(c Config) bool {
			return c.Runtime.Endpoint == "/var/run/crio/crio.sock" && c.Clean.SystemdBus == "unix:path=/run/user/0/bus"
		}},
		{"limits at their edges", "[clean]\nmax_removal_share = 1.0\nmass_guard_min_pods = 0\n[daemon]\ninterval = \"1s\"\njitter = 0.5\n", func(c Config) bool {
			return c.Clean.MaxRemovalShare == 1 && c.Daemon.Interval.Duration == time.Second && c.Daemon.Jitter == 0.5
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("ok.toml", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("parsed %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("parsed config does not validate: %v", err)
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		fe   FieldError
		want string
	}{
		{FieldError{Key: "daemon.jitter", Line: 4, Msg: "must be in [0, 0.5], got 2"}, "daemon.jitter (line 4): must be in [0, 0.5], got 2"},
		{FieldError{Key: "daemon.jitter", Msg: "must be in [0, 0.5], got 2"}, "daemon.jitter: must be in [0, 0.5], got 2"},
	} {
		if got := tc.fe.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
