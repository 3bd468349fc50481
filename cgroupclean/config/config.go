// Package config loads and validates cgroupcleand's TOML configuration.
// Unknown keys and bad values are errors that name the key and its line:
// a cleanup daemon must not guess what an operator meant.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where packages install the configuration.
const DefaultPath = "/etc/cgroupclean/config.toml"

// Config is the whole configuration. Every key is documented with its
// default in config.example.toml.
type Config struct {
	Runtime Runtime `toml:"runtime"`
	Cgroup  Cgroup  `toml:"cgroup"`
	Clean   Clean   `toml:"clean"`
	Daemon  Daemon  `toml:"daemon"`
	Log     Log     `toml:"log"`
	Memcg   Memcg   `toml:"memcg"`
	Metrics Metrics `toml:"metrics"`
	Doctor  Doctor  `toml:"doctor"`
}

// Runtime is how the container runtime is asked which pods are live.
type Runtime struct {
	Endpoint string   `toml:"endpoint"`
	Timeout  Duration `toml:"timeout"`
}

// Cgroup says where the cgroup trees and kubelet's state are.
type Cgroup struct {
	MountRoot   string `toml:"mount_root"`
	PodRoot     string `toml:"pod_root"`
	Driver      string `toml:"driver"`
	KubeletRoot string `toml:"kubelet_root"`
}

// Clean holds the safety gates and limits of removal.
type Clean struct {
	MinAge               Duration `toml:"min_age"`
	MaxRemovalsPerPass   int      `toml:"max_removals_per_pass"`
	MaxRemovalShare      float64  `toml:"max_removal_share"`
	MassGuardMinPods     int      `toml:"mass_guard_min_pods"`
	KillOrphanProcesses  bool     `toml:"kill_orphan_processes"`
	UseSystemd           string   `toml:"use_systemd"`
	SystemdBus           string   `toml:"systemd_bus"`
	UnitStopTimeout      Duration `toml:"unit_stop_timeout"`
	ConfirmPasses        int      `toml:"confirm_passes"`
	RemoveContainerLevel bool     `toml:"remove_container_orphans"`
	// Mode is act (remove) or observe (every check, nothing removed).
	Mode string `toml:"mode"`
}

// Daemon holds the settings of `cgroupcleand run`.
type Daemon struct {
	Interval Duration `toml:"interval"`
	Jitter   float64  `toml:"jitter"`
	// StateDir holds the memcg watchdog's persisted limits (the
	// one-cleaner lock is in daemon.LockDir, whatever this says).
	StateDir string `toml:"state_dir"`
}

// Log holds logging settings.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration is a time.Duration written as a Go duration string ("5m", "30s").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (want e.g. \"30s\", \"5m\"): %q", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Runtime: Runtime{Endpoint: "unix:///var/run/crio/crio.sock", Timeout: Duration{10 * time.Second}},
		Cgroup: Cgroup{
			MountRoot:   "/sys/fs/cgroup",
			PodRoot:     "",
			Driver:      "auto",
			KubeletRoot: "/var/lib/kubelet",
		},
		Clean: Clean{
			MinAge:               Duration{10 * time.Minute},
			MaxRemovalsPerPass:   50,
			MaxRemovalShare:      0.5,
			MassGuardMinPods:     5,
			KillOrphanProcesses:  false,
			UseSystemd:           "auto",
			SystemdBus:           "system",
			UnitStopTimeout:      Duration{45 * time.Second},
			ConfirmPasses:        2,
			RemoveContainerLevel: true,
			Mode:                 ModeAct,
		},
		Daemon:  Daemon{Interval: Duration{5 * time.Minute}, Jitter: 0.1, StateDir: "/var/lib/cgroupclean"},
		Log:     Log{Level: "info", Format: "auto"},
		Memcg:   DefaultMemcg(),
		Metrics: DefaultMetrics(),
		Doctor:  DefaultDoctor(),
	}
}

// FieldError is one bad key.
type FieldError struct {
	Key  string // section.key
	Line int    // 0 when not known
	Msg  string
}

func (e FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Key, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// Errors is every problem found in one file.
type Errors struct {
	File string
	List []FieldError
}

func (e *Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s:", e.File)
	for _, f := range e.List {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Load reads a file over the defaults and validates the result.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(path, string(data))
}

// Parse decodes TOML text over the defaults and validates the result.
func Parse(name, text string) (Config, error) {
	cfg := Default()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, &Errors{File: name, List: []FieldError{{Key: keyOrSyntax(pe.LastKey), Line: pe.Position.Line, Msg: pe.Message}}}
		}
		if m := decodeErr.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return Config{}, &Errors{File: name, List: []FieldError{{Key: m[2], Line: line, Msg: m[3]}}}
		}
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	lines := keyLines(text)
	var errs []FieldError
	for _, k := range md.Undecoded() {
		key := k.String()
		errs = append(errs, FieldError{Key: key, Line: lines[key], Msg: "unknown key"})
	}
	for _, fe := range cfg.validate() {
		fe.Line = lines[fe.Key]
		errs = append(errs, fe)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return Config{}, &Errors{File: name, List: errs}
	}
	return cfg, nil
}

// decodeErr matches the plain error BurntSushi/toml returns for a value of
// the wrong type, to report it like every other bad key.
var decodeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)

func keyOrSyntax(k string) string {
	if k == "" {
		return "syntax"
	}
	return k
}

// Validate checks a configuration built in code (tests, defaults).
func (c Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return &Errors{File: "(built-in)", List: errs}
	}
	return nil
}

func (c Config) validate() []FieldError {
	var errs []FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !strings.HasPrefix(c.Runtime.Endpoint, "unix://") && !strings.HasPrefix(c.Runtime.Endpoint, "/") {
		bad("runtime.endpoint", "must be a unix socket (unix:///path or /path), got %q", c.Runtime.Endpoint)
	}
	// A root that is "/" in disguise ("//", "/.", "/x/..") would make
	// every cgroup a pod, or every directory kubelet's.
	checkAbs := func(key, p string, allowEmpty bool, isRoot string) {
		switch {
		case p == "" && allowEmpty:
		case p == "":
			bad(key, "must not be empty")
		case !filepath.IsAbs(p):
			bad(key, "must be an absolute path, got %q", p)
		case filepath.Clean(p) == "/":
			bad(key, "must not be %s, got %q", isRoot, p)
		case hasDotDot(p):
			bad(key, "must not contain \"..\", got %q", p)
		case filepath.Clean(p) != p:
			bad(key, "must be written plainly, as %q, got %q", filepath.Clean(p), p)
		}
	}
	checkAbs("cgroup.mount_root", c.Cgroup.MountRoot, false, "/ itself")
	checkAbs("cgroup.kubelet_root", c.Cgroup.KubeletRoot, false, "/ itself")
	checkAbs("cgroup.pod_root", c.Cgroup.PodRoot, true, "the cgroup root itself")
	checkAbs("daemon.state_dir", c.Daemon.StateDir, false, "/ itself")
	switch c.Cgroup.Driver {
	case "auto", "systemd", "cgroupfs":
	default:
		bad("cgroup.driver", "must be auto, systemd or cgroupfs, got %q", c.Cgroup.Driver)
	}
	switch c.Clean.UseSystemd {
	case "auto", "always", "never":
	default:
		bad("clean.use_systemd", "must be auto, always or never, got %q", c.Clean.UseSystemd)
	}
	switch {
	case c.Clean.SystemdBus == "system", c.Clean.SystemdBus == "user", strings.HasPrefix(c.Clean.SystemdBus, "unix:path="):
	default:
		bad("clean.systemd_bus", "must be system, user or a unix:path= address, got %q", c.Clean.SystemdBus)
	}
	switch c.Log.Level {
	case "debug", "info", "warning", "error":
	default:
		bad("log.level", "must be debug, info, warning or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "journal", "text", "json":
	default:
		bad("log.format", "must be auto, journal, text or json, got %q", c.Log.Format)
	}
	errs = append(errs, c.Memcg.validate()...)
	errs = append(errs, c.Metrics.validate()...)
	errs = append(errs, c.Clean.validateMode()...)
	return append(errs, checkLimits(c)...)
}

// Floors of the durations where a tiny value turns a guard into a loop or
// a call that can never succeed (their ceilings are in limits.go).
const (
	MinRuntimeTimeout  = 100 * time.Millisecond
	MinUnitStopTimeout = time.Second
	MinInterval        = time.Second
)

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// keyLines maps "section.key" to the line that sets it, so errors can point
// at the line. Only simple `key = value` lines under `[section]` headers are
// recognised, which is all this file format uses.
func keyLines(text string) map[string]int {
	out := map[string]int{}
	section := ""
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(strings.Trim(line, "[]"))
			if _, ok := out[section]; !ok {
				out[section] = i + 1
			}
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		key := strings.Trim(strings.TrimSpace(line[:eq]), `"`)
		if section != "" {
			key = section + "." + key
		}
		if _, ok := out[key]; !ok {
			out[key] = i + 1
		}
	}
	return out
}
