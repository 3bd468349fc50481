package memcg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrFormat is wrapped by every parser error.
var ErrFormat = errors.New("unexpected format")

// ParseFlatKeyed parses the "key value" lines of cgroup.stat and memory.stat
// (both versions). A line with a value that is not an unsigned integer is an
// error: these files hold only counters.
func ParseFlatKeyed(data []byte) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d %q: want \"key value\": %w", n, line, ErrFormat)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, ErrFormat)
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrFormat)
	}
	return out, nil
}

// CgroupStat is what the watchdog needs from a v2 cgroup.stat.
type CgroupStat struct {
	Descendants      uint64
	DyingDescendants uint64
	// DyingMemory is nr_dying_subsys_memory (kernel 6.12+): dying cgroups
	// that still hold a memory css, the exact zombie count. -1 when absent.
	DyingMemory int64
	// LiveMemory is nr_subsys_memory, -1 when absent.
	LiveMemory int64
}

// Dying returns the best zombie count the file offers.
func (c CgroupStat) Dying() uint64 {
	if c.DyingMemory >= 0 {
		return uint64(c.DyingMemory)
	}
	return c.DyingDescendants
}

// ParseCgroupStat parses a v2 cgroup.stat file.
func ParseCgroupStat(data []byte) (CgroupStat, error) {
	kv, err := ParseFlatKeyed(data)
	if err != nil {
		return CgroupStat{}, fmt.Errorf("cgroup.stat: %w", err)
	}
	d, ok1 := kv["nr_descendants"]
	dd, ok2 := kv["nr_dying_descendants"]
	if !ok1 || !ok2 {
		return CgroupStat{}, fmt.Errorf("cgroup.stat: no nr_descendants/nr_dying_descendants: %w", ErrFormat)
	}
	cs := CgroupStat{Descendants: d, DyingDescendants: dd, DyingMemory: -1, LiveMemory: -1}
	if v, ok := kv["nr_dying_subsys_memory"]; ok {
		cs.DyingMemory = clampInt64(v)
	}
	if v, ok := kv["nr_subsys_memory"]; ok {
		cs.LiveMemory = clampInt64(v)
	}
	return cs, nil
}

// Subsys is one line of /proc/cgroups.
type Subsys struct {
	Name       string
	Hierarchy  int
	NumCgroups int64
	Enabled    bool
}

// ParseProcCgroups parses /proc/cgroups ("#subsys_name hierarchy
// num_cgroups enabled").
func ParseProcCgroups(data []byte) ([]Subsys, error) {
	var out []Subsys
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("/proc/cgroups line %d %q: want 4 fields: %w", n+1, line, ErrFormat)
		}
		h, err1 := strconv.Atoi(f[1])
		num, err2 := strconv.ParseInt(f[2], 10, 64)
		en, err3 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || err3 != nil || h < 0 || num < 0 || en < 0 || en > 1 {
			return nil, fmt.Errorf("/proc/cgroups line %d %q: %w", n+1, line, ErrFormat)
		}
		out = append(out, Subsys{Name: f[0], Hierarchy: h, NumCgroups: num, Enabled: en == 1})
	}
	return out, nil
}

// MemoryNumCgroups returns the memory line's num_cgroups of /proc/cgroups:
// live plus dying memory cgroups of the whole machine.
func MemoryNumCgroups(data []byte) (int64, error) {
	subs, err := ParseProcCgroups(data)
	if err != nil {
		return 0, err
	}
	for _, s := range subs {
		if s.Name == "memory" {
			if !s.Enabled {
				return 0, fmt.Errorf("/proc/cgroups: memory controller disabled")
			}
			return s.NumCgroups, nil
		}
	}
	return 0, fmt.Errorf("/proc/cgroups: no memory line: %w", ErrFormat)
}

// Meminfo is the context logged with each health sample, in bytes.
type Meminfo struct {
	Slab, Percpu, Cached, MemTotal, MemAvailable int64
}

// ParseMeminfo parses /proc/meminfo ("Key:   123 kB"). Missing keys stay
// 0 (Percpu appeared in 4.16).
func ParseMeminfo(data []byte) (Meminfo, error) {
	var m Meminfo
	dst := map[string]*int64{"Slab": &m.Slab, "Percpu": &m.Percpu, "Cached": &m.Cached, "MemTotal": &m.MemTotal, "MemAvailable": &m.MemAvailable}
	seen := 0
	for n, line := range strings.Split(string(data), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return Meminfo{}, fmt.Errorf("/proc/meminfo line %d %q: %w", n+1, line, ErrFormat)
		}
		p, want := dst[key]
		if !want {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			return Meminfo{}, fmt.Errorf("/proc/meminfo line %d %q: %w", n+1, line, ErrFormat)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || v < 0 || v > 1<<53 {
			return Meminfo{}, fmt.Errorf("/proc/meminfo line %d %q: %w", n+1, line, ErrFormat)
		}
		if len(f) == 2 {
			v *= 1024
		}
		*p = v
		seen++
	}
	if seen == 0 {
		return Meminfo{}, fmt.Errorf("/proc/meminfo: none of Slab, Percpu, Cached: %w", ErrFormat)
	}
	return m, nil
}

// PSILine is one line of a /proc/pressure file.
type PSILine struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// PSI is a parsed /proc/pressure/{memory,io} file.
type PSI struct {
	Some, Full PSILine
}

// ParsePSI parses a pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00
// total=0", then the same for "full"; cpu has no full line on old kernels).
func ParsePSI(data []byte) (PSI, error) {
	var p PSI
	gotSome := false
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		var dst *PSILine
		switch f[0] {
		case "some":
			dst, gotSome = &p.Some, true
		case "full":
			dst = &p.Full
		default:
			return PSI{}, fmt.Errorf("pressure line %d %q: %w", n+1, line, ErrFormat)
		}
		if len(f) != 5 {
			return PSI{}, fmt.Errorf("pressure line %d %q: want 4 values: %w", n+1, line, ErrFormat)
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return PSI{}, fmt.Errorf("pressure line %d %q: %w", n+1, line, ErrFormat)
			}
			var err error
			switch k {
			case "avg10":
				dst.Avg10, err = parsePercent(v)
			case "avg60":
				dst.Avg60, err = parsePercent(v)
			case "avg300":
				dst.Avg300, err = parsePercent(v)
			case "total":
				dst.Total, err = strconv.ParseUint(v, 10, 64)
			default:
				err = ErrFormat
			}
			if err != nil {
				return PSI{}, fmt.Errorf("pressure line %d %q: %w", n+1, line, ErrFormat)
			}
		}
	}
	if !gotSome {
		return PSI{}, fmt.Errorf("pressure: no \"some\" line: %w", ErrFormat)
	}
	return p, nil
}

func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 100 || v != v {
		return 0, ErrFormat
	}
	return v, nil
}

// KernelVersion is major.minor of the running kernel.
type KernelVersion struct {
	Major, Minor int
	Release      string // the full osrelease string, for the log
}

// AtLeast reports whether k >= major.minor.
func (k KernelVersion) AtLeast(major, minor int) bool {
	return k.Major > major || (k.Major == major && k.Minor >= minor)
}

func (k KernelVersion) String() string {
	if k.Release != "" {
		return k.Release
	}
	return fmt.Sprintf("%d.%d", k.Major, k.Minor)
}

// ParseKernelVersion parses /proc/sys/kernel/osrelease ("6.18.44-fc-v595").
func ParseKernelVersion(data []byte) (KernelVersion, error) {
	rel := strings.TrimSpace(string(data))
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return KernelVersion{}, fmt.Errorf("kernel release %q: %w", rel, ErrFormat)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(leadingDigits(parts[1]))
	if err1 != nil || err2 != nil || major < 0 || minor < 0 || major > 1000 || minor > 1000 {
		return KernelVersion{}, fmt.Errorf("kernel release %q: %w", rel, ErrFormat)
	}
	return KernelVersion{Major: major, Minor: minor, Release: rel}, nil
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func clampInt64(v uint64) int64 {
	if v > 1<<62 {
		return 1 << 62
	}
	return int64(v)
}
