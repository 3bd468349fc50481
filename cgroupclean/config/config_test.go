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
		{"zero timeout", "[runtime]\ntimeout = \"0s\"\n", "runtime.timeout", 2, "[100ms, 1m0s]"},
		{"tiny timeout", "[runtime]\ntimeout = \"50ms\"\n", "runtime.timeout", 2, "[100ms, 1m0s], got 50ms"},
		{"relative mount root", "[cgroup]\nmount_root = \"sys/fs/cgroup\"\n", "cgroup.mount_root", 2, "absolute"},
		{"empty kubelet root", "[cgroup]\nkubelet_root = \"\"\n", "cgroup.kubelet_root", 2, "empty"},
		{"pod root is /", "[cgroup]\npod_root = \"/\"\n", "cgroup.pod_root", 2, "cgroup root"},
		{"pod root is //", "[cgroup]\npod_root = \"//\"\n", "cgroup.pod_root", 2, "cgroup root"},
		{"pod root is /.", "[cgroup]\npod_root = \"/.\"\n", "cgroup.pod_root", 2, "cgroup root"},
		{"pod root is /x/..", "[cgroup]\npod_root = \"/x/..\"\n", "cgroup.pod_root", 2, "cgroup root"},
		{"pod root relative", "[cgroup]\npod_root = \"kubepods\"\n", "cgroup.pod_root", 2, "absolute"},
		{"pod root not clean", "[cgroup]\npod_root = \"/kubepods/\"\n", "cgroup.pod_root", 2, `as "/kubepods"`},
		{"pod root with //", "[cgroup]\npod_root = \"//kubepods\"\n", "cgroup.pod_root", 2, `as "/kubepods"`},
		{"mount root is /", "[cgroup]\nmount_root = \"/\"\n", "cgroup.mount_root", 2, "/ itself"},
		{"mount root is /./", "[cgroup]\nmount_root = \"/./\"\n", "cgroup.mount_root", 2, "/ itself"},
		{"kubelet root is //", "[cgroup]\nkubelet_root = \"//\"\n", "cgroup.kubelet_root", 2, "/ itself"},
		{"kubelet root relative", "[cgroup]\nkubelet_root = \"var/lib/kubelet\"\n", "cgroup.kubelet_root", 2, "absolute"},
		{"kubelet root with ..", "[cgroup]\nkubelet_root = \"/var/lib/../kubelet\"\n", "cgroup.kubelet_root", 2, `".."`},
		{"pod root with ..", "[cgroup]\npod_root = \"/kubepods/../system.slice\"\n", "cgroup.pod_root", 2, `".."`},
		{"bad driver", "[cgroup]\ndriver = \"v2\"\n", "cgroup.driver", 2, "auto, systemd or cgroupfs"},
		{"negative min age", "[clean]\nmin_age = \"-5m\"\n", "clean.min_age", 2, "[0s, 168h0m0s]"},
		{"no removals allowed", "[clean]\nmax_removals_per_pass = 0\n", "clean.max_removals_per_pass", 2, "[1, 10000]"},
		{"share zero", "[clean]\nmax_removal_share = 0.0\n", "clean.max_removal_share", 2, "(0, 1]"},
		{"share above one", "[clean]\nmax_removal_share = 1.5\n", "clean.max_removal_share", 2, "(0, 1]"},
		{"share nan", "[clean]\nmax_removal_share = nan\n", "clean.max_removal_share", 2, "got NaN"},
		{"share inf", "[clean]\nmax_removal_share = inf\n", "clean.max_removal_share", 2, "got +Inf"},
		{"negative guard", "[clean]\nmass_guard_min_pods = -1\n", "clean.mass_guard_min_pods", 2, "[0, 100]"},
		// Ceilings: without them a value switches a guard off.
		{"guard switched off", "[clean]\nmass_guard_min_pods = 1000000000\n", "clean.mass_guard_min_pods", 2, "[0, 100], got 1000000000"},
		{"timeout of years", "[runtime]\ntimeout = \"100000h\"\n", "runtime.timeout", 2, "[100ms, 1m0s], got 100000h0m0s"},
		{"removal limit off", "[clean]\nmax_removals_per_pass = 2000000\n", "clean.max_removals_per_pass", 2, "[1, 10000]"},
		{"dying act unreachable", "[memcg]\ndying_act = 100000\n", "memcg.dying_act", 2, "[1, 65535]"},
		{"bad use_systemd", "[clean]\nuse_systemd = \"sometimes\"\n", "clean.use_systemd", 2, "auto, always or never"},
		{"bad bus", "[clean]\nsystemd_bus = \"tcp:host=x\"\n", "clean.systemd_bus", 2, "unix:path="},
		{"zero stop timeout", "[clean]\nunit_stop_timeout = \"0s\"\n", "clean.unit_stop_timeout", 2, "[1s, 5m0s]"},
		{"tiny stop timeout", "[clean]\nunit_stop_timeout = \"500ms\"\n", "clean.unit_stop_timeout", 2, "[1s, 5m0s]"},
		{"no confirmation", "[clean]\nconfirm_passes = 0\n", "clean.confirm_passes", 2, "[1, 100]"},
		{"interval too short", "[daemon]\ninterval = \"500ms\"\n", "daemon.interval", 2, "[1s, 24h0m0s]"},
		{"jitter too large", "[daemon]\njitter = 0.75\n", "daemon.jitter", 2, "[0, 0.5]"},
		{"negative jitter", "[daemon]\njitter = -0.1\n", "daemon.jitter", 2, "[0, 0.5]"},
		{"nan jitter", "[daemon]\njitter = nan\n", "daemon.jitter", 2, "got NaN"},
		{"negative interval", "[daemon]\ninterval = \"-5m\"\n", "daemon.interval", 2, "[1s, 24h0m0s]"},
		{"bad log level", "[log]\nlevel = \"trace\"\n", "log.level", 2, "debug, info, warning or error"},
		{"bad log format", "[log]\nformat = \"xml\"\n", "log.format", 2, "auto, journal, text or json"},
		{"bad memcg mode", "[memcg]\nmode = \"on\"\n", "memcg.mode", 2, "off, observe or act"},
		{"pressure nan", "[memcg]\npressure_max = nan\n", "memcg.pressure_max", 2, "got NaN"},
		{"dying ratio inf", "[memcg]\ndying_ratio_act = inf\n", "memcg.dying_ratio_act", 2, "got +Inf"},
		{"dying ratio absurd", "[memcg]\ndying_ratio_act = 1e9\n", "memcg.dying_ratio_act", 2, "[0, 1000]"},
		{"min effect nan", "[memcg]\nmin_effect = -nan\n", "memcg.min_effect", 2, "got NaN"},
		{"probe interval tiny", "[memcg]\nprobe_interval = \"5s\"\n", "memcg.probe_interval", 2, "[10s, 24h0m0s]"},
		{"reclaim cooldown tiny", "[memcg]\nreclaim_cooldown = \"30s\"\n", "memcg.reclaim_cooldown", 2, "[1m0s, 168h0m0s]"},
		{"drop cooldown tiny", "[memcg]\ndrop_caches_cooldown = \"1ns\"\n", "memcg.drop_caches_cooldown", 2, "[10m0s, 168h0m0s]"},
		{"drop cap absurd", "[memcg]\ndrop_caches_daily_cap = 1000\n", "memcg.drop_caches_daily_cap", 2, "[0, 24]"},
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

// Every float key, present or future, refuses NaN and the infinities with
// its key and line: TOML allows them, and NaN passes any "< limit" check.
func TestEveryFloatKeyRefusesNonFinite(t *testing.T) {
	var keys []string
	var walk func(prefix string, v reflect.Type)
	walk = func(prefix string, v reflect.Type) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			key := f.Tag.Get("toml")
			switch {
			case key == "":
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+key+".", f.Type)
			case f.Type.Kind() == reflect.Float64:
				keys = append(keys, prefix+key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if len(keys) < 5 {
		t.Fatalf("found only float keys %v", keys)
	}
	for _, key := range keys {
		section, name, _ := strings.Cut(key, ".")
		for _, v := range []string{"nan", "+nan", "-nan", "inf", "+inf", "-inf"} {
			text := fmt.Sprintf("[%s]\n%s = %s\n", section, name, v)
			_, err := Parse("t.toml", text)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Errorf("%s = %s accepted (err %v)", key, v, err)
				continue
			}
			found := false
			for _, fe := range errs.List {
				found = found || fe.Key == key && fe.Line == 2
			}
			if !found || len(errs.List) != 1 {
				t.Errorf("%s = %s: want one error on %s line 2, got %v", key, v, key, err)
			}
		}
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
