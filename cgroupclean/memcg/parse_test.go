package memcg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseCgroupStat(t *testing.T) {
	tests := []struct {
		file           string
		text           string
		dying, desc    uint64
		dyingMem, live int64
		wantErr        bool
	}{
		{file: "files/cgroup.stat.6.1", dying: 4731, desc: 212, dyingMem: -1, live: -1},
		{file: "files/cgroup.stat.6.12", dying: 4710, desc: 212, dyingMem: 4710, live: 212},
		{file: "files/cgroup.stat.6.18", dying: 0, desc: 0, dyingMem: -1, live: -1},
		{text: "nr_descendants 3\n", wantErr: true},
		{text: "nr_descendants x\nnr_dying_descendants 1\n", wantErr: true},
		{text: "nr_descendants 1 2\nnr_dying_descendants 1\n", wantErr: true},
		{text: "", wantErr: true},
	}
	for _, tt := range tests {
		name := tt.file
		data := []byte(tt.text)
		if tt.file != "" {
			data = fixture(t, tt.file)
		} else {
			name = tt.text
		}
		t.Run(name, func(t *testing.T) {
			cs, err := ParseCgroupStat(data)
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cs.Dying() != tt.dying || cs.Descendants != tt.desc || cs.DyingMemory != tt.dyingMem || cs.LiveMemory != tt.live {
				t.Errorf("got %+v dying=%d", cs, cs.Dying())
			}
		})
	}
}

func TestMemoryNumCgroups(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    int64
		wantErr bool
	}{
		{name: "6.18 fixture", data: fixture(t, "v1/proc/cgroups"), want: 12},
		{name: "4.18 node", data: fixture(t, "files/cgroups.4.18"), want: 9642},
		{name: "no memory line", data: []byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\n"), wantErr: true},
		{name: "memory disabled", data: []byte("memory\t0\t1\t0\n"), wantErr: true},
		{name: "short line", data: []byte("memory\t4\t12\n"), wantErr: true},
		{name: "negative", data: []byte("memory\t4\t-12\t1\n"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MemoryNumCgroups(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseMemoryStat(t *testing.T) {
	tests := []struct {
		file, key string
		want      uint64
	}{
		{"files/memory.stat.v2", "file", 5368709120},
		{"files/memory.stat.v2", "percpu", 98566144},
		{"files/memory.stat.v1", "cache", 10547200},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.key, func(t *testing.T) {
			kv, err := ParseFlatKeyed(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if kv[tt.key] != tt.want {
				t.Errorf("%s = %d, want %d", tt.key, kv[tt.key], tt.want)
			}
		})
	}
	if _, err := ParseFlatKeyed([]byte("cache 1\nrss -1\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("negative value: err = %v, want ErrFormat", err)
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    Meminfo
		wantErr bool
	}{
		{name: "4.18 without Percpu", data: fixture(t, "files/meminfo.4.18"), want: Meminfo{
			Slab: 18817820 * 1024, Cached: 66741272 * 1024, MemTotal: 131746992 * 1024, MemAvailable: 70235436 * 1024}},
		{name: "garbage", data: []byte("hello\n"), wantErr: true},
		{name: "bad unit", data: []byte("Slab: 12 MB\n"), wantErr: true},
		{name: "none of ours", data: []byte("Foo: 12 kB\n"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeminfo(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	m, err := ParseMeminfo(fixture(t, "files/meminfo.6.18"))
	if err != nil || m.Slab == 0 || m.Percpu == 0 || m.Cached == 0 {
		t.Errorf("6.18 meminfo: %+v, %v", m, err)
	}
}

func TestParsePSI(t *testing.T) {
	tests := []struct {
		name      string
		data      []byte
		someAvg10 float64
		fullTotal uint64
		wantErr   bool
	}{
		{name: "v2 memory", data: fixture(t, "v2/proc/pressure/memory"), someAvg10: 31.5, fullTotal: 5555555},
		{name: "some only", data: []byte("some avg10=1.00 avg60=0.00 avg300=0.00 total=7\n"), someAvg10: 1},
		{name: "no some", data: []byte("full avg10=1.00 avg60=0.00 avg300=0.00 total=7\n"), wantErr: true},
		{name: "over 100", data: []byte("some avg10=101.00 avg60=0.00 avg300=0.00 total=7\n"), wantErr: true},
		{name: "unknown key", data: []byte("some avg10=1.00 avg60=0.00 avg900=0.00 total=7\n"), wantErr: true},
		{name: "NaN", data: []byte("some avg10=NaN avg60=0.00 avg300=0.00 total=7\n"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePSI(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if p.Some.Avg10 != tt.someAvg10 || p.Full.Total != tt.fullTotal {
				t.Errorf("got %+v", p)
			}
		})
	}
	for _, f := range []string{"files/pressure.cpu", "files/pressure.io", "files/pressure.memory"} {
		if _, err := ParsePSI(fixture(t, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseKernelVersion(t *testing.T) {
	tests := []struct {
		in         string
		major, min int
		atLeast59  bool
		wantErr    bool
	}{
		{in: "6.18.44-fc-v595\n", major: 6, min: 18, atLeast59: true},
		{in: "4.18.0-147.el8.x86_64", major: 4, min: 18},
		{in: "5.9.0", major: 5, min: 9, atLeast59: true},
		{in: "5.8.18-100.fc31", major: 5, min: 8},
		{in: "5.10-rc1", major: 5, min: 10, atLeast59: true},
		{in: "six", wantErr: true},
		{in: "6.x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, err := ParseKernelVersion([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if k.Major != tt.major || k.Minor != tt.min || k.AtLeast(5, 9) != tt.atLeast59 {
				t.Errorf("got %+v", k)
			}
		})
	}
}

// Fuzz targets: parsers must never panic, and what they accept must be
// consistent. Seeds are the fixture files.

func seed(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(""))
	f.Add([]byte("\x00\n \n"))
}

func FuzzParseCgroupStat(f *testing.F) {
	seed(f, "files/cgroup.stat.6.1", "files/cgroup.stat.6.12", "files/cgroup.stat.6.18")
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := ParseCgroupStat(data)
		if err == nil && cs.DyingMemory >= 0 && cs.Dying() != uint64(cs.DyingMemory) {
			t.Fatalf("Dying() ignores nr_dying_subsys_memory: %+v", cs)
		}
	})
}

func FuzzParseProcCgroups(f *testing.F) {
	seed(f, "v1/proc/cgroups", "files/cgroups.4.18")
	f.Fuzz(func(t *testing.T, data []byte) {
		subs, err := ParseProcCgroups(data)
		for _, s := range subs {
			if err == nil && s.NumCgroups < 0 {
				t.Fatalf("negative count accepted: %+v", s)
			}
		}
		_, _ = MemoryNumCgroups(data)
	})
}

func FuzzParseMemoryStat(f *testing.F) {
	seed(f, "files/memory.stat.v1", "files/memory.stat.v2")
	f.Fuzz(func(t *testing.T, data []byte) {
		kv, err := ParseFlatKeyed(data)
		if err != nil && kv != nil {
			t.Fatal("map returned with an error")
		}
		_ = fileBytes(data, true)
	})
}

func FuzzParseMeminfo(f *testing.F) {
	seed(f, "files/meminfo.6.18", "files/meminfo.4.18")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeminfo(data)
		if err == nil && (m.Slab < 0 || m.Percpu < 0 || m.Cached < 0) {
			t.Fatalf("negative: %+v", m)
		}
	})
}

func FuzzParsePSI(f *testing.F) {
	seed(f, "files/pressure.memory", "files/pressure.io", "files/pressure.cpu", "v2/proc/pressure/memory")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePSI(data)
		if err == nil && (p.Some.Avg10 < 0 || p.Some.Avg10 > 100) {
			t.Fatalf("out of range: %+v", p)
		}
	})
}

func FuzzParseKernelVersion(f *testing.F) {
	seed(f, "v1/proc/sys/kernel/osrelease", "v2/proc/sys/kernel/osrelease")
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKernelVersion(data)
		if err == nil && (k.Major < 0 || k.Minor < 0) {
			t.Fatalf("negative: %+v", k)
		}
	})
}
