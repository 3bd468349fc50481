package memcg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// fakeKernel plays memory.reclaim on fixture files: this machine's memory
// controller is on v1, so the v2 path is only tested this way.
type fakeKernel struct {
	t          *testing.T
	swappiness bool  // the kernel accepts "swappiness=0"
	perWrite   int64 // most it frees per write (0: all asked)
	delay      time.Duration
	writes     []string
}

func (k *fakeKernel) write(_ context.Context, path string, data []byte, deadline time.Time) error {
	k.writes = append(k.writes, filepath.Base(path)+": "+string(data))
	if k.delay > 0 {
		time.Sleep(k.delay)
	}
	if filepath.Base(path) != "memory.reclaim" {
		return fmt.Errorf("fake kernel: unexpected write to %s", path)
	}
	f := strings.Fields(string(data))
	if len(f) == 2 && (!k.swappiness || f[1] != "swappiness=0") {
		return &os.PathError{Op: "write", Path: path, Err: unix.EINVAL}
	}
	want, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: unix.EINVAL}
	}
	cur, err := readInt(filepath.Join(filepath.Dir(path), "memory.current"))
	if err != nil {
		k.t.Fatal(err)
	}
	freed := min(want, cur)
	if k.perWrite > 0 {
		freed = min(freed, k.perWrite)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "memory.current"), []byte(strconv.FormatInt(cur-freed, 10)+"\n"), 0o644); err != nil {
		k.t.Fatal(err)
	}
	if freed < want {
		return &os.PathError{Op: "write", Path: path, Err: unix.EAGAIN}
	}
	return nil
}

func v2Tree(t *testing.T) Paths {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	return Paths{ProcRoot: filepath.Join(root, "proc"), MemoryRoot: filepath.Join(root, "cgroup"), V2: true, PodRoot: "/kubepods.slice"}
}

func TestReclaimPodRootV2(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name       string
		kernel     fakeKernel
		swapOff    bool
		step, max  int64
		timeout    time.Duration
		freed      int64
		stop       string
		swapZero   bool
		firstWrite string
		wantErr    error
	}{
		{name: "steps up to max with swappiness=0", kernel: fakeKernel{swappiness: true}, swapOff: true, step: 64 * mib, max: 256 * mib,
			freed: 256 * mib, stop: "max", swapZero: true, firstWrite: "memory.reclaim: 67108864 swappiness=0"},
		{name: "kernel refuses swappiness: retried without", kernel: fakeKernel{}, swapOff: true, step: 64 * mib, max: 128 * mib,
			freed: 128 * mib, stop: "max", firstWrite: "memory.reclaim: 67108864 swappiness=0"},
		{name: "swappiness not asked", kernel: fakeKernel{swappiness: true}, step: 64 * mib, max: 64 * mib,
			freed: 64 * mib, stop: "max", firstWrite: "memory.reclaim: 67108864"},
		{name: "EAGAIN: less reclaimable than asked", kernel: fakeKernel{swappiness: true, perWrite: 10 * mib}, swapOff: true, step: 64 * mib, max: 1024 * mib,
			freed: 10 * mib, stop: "eagain", swapZero: true},
		{name: "time bound between steps", kernel: fakeKernel{swappiness: true, delay: 30 * time.Millisecond}, swapOff: true, step: mib, max: 1024 * mib, timeout: 50 * time.Millisecond,
			freed: 2 * mib, stop: "timeout", swapZero: true, wantErr: ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := v2Tree(t)
			cfg := config.DefaultMemcg()
			cfg.ReclaimSwappinessOff = tt.swapOff
			cfg.ReclaimStepBytes, cfg.ReclaimMaxBytes = tt.step, tt.max
			if tt.timeout > 0 {
				cfg.ReclaimTimeout = config.Duration{Duration: tt.timeout}
			}
			x := NewExecutor(paths, cfg, filepath.Join(t.TempDir(), "drop_caches"))
			k := tt.kernel
			k.t = t
			x.write = k.write
			o := x.Apply(context.Background(), Decision{Action: ActionReclaimPodRoot})
			if !errors.Is(o.Err, tt.wantErr) || (tt.wantErr == nil && o.Err != nil) {
				t.Fatalf("err = %v, want %v", o.Err, tt.wantErr)
			}
			if o.FreedBytes != tt.freed || o.Target != paths.PodRootDir() || !strings.Contains(o.Detail, "stop="+tt.stop) ||
				strings.Contains(o.Detail, "swappiness=0") != tt.swapZero {
				t.Errorf("outcome %+v, want freed %d stop %s swappiness0 %v", o, tt.freed, tt.stop, tt.swapZero)
			}
			if tt.firstWrite != "" && k.writes[0] != tt.firstWrite {
				t.Errorf("first write %q, want %q", k.writes[0], tt.firstWrite)
			}
		})
	}
}

// With the real bounded write, a fixture memory.reclaim file receives
// exactly the line the kernel would parse. The production executor refuses
// the same fixture: it is not a cgroup mount, so the confined open fails.
func TestReclaimWritesFixtureFile(t *testing.T) {
	paths := v2Tree(t)
	cfg := config.DefaultMemcg()
	cfg.ReclaimStepBytes, cfg.ReclaimMaxBytes = 1<<20, 1<<20
	file := filepath.Join(paths.PodRootDir(), "memory.reclaim")
	o := NewExecutor(paths, cfg, "").Apply(context.Background(), Decision{Action: ActionReclaimPodRoot})
	if !errors.Is(o.Err, cgfs.ErrUnconfined) {
		t.Fatalf("write to a fixture outside cgroupfs: %v, want cgfs.ErrUnconfined", o.Err)
	}
	if got, _ := os.ReadFile(file); len(got) != 0 {
		t.Fatalf("refused write still wrote %q", got)
	}
	x := NewExecutor(paths, cfg, "")
	x.write = func(ctx context.Context, path string, data []byte, deadline time.Time) error {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return writeFdBounded(ctx, fd, path, data, deadline)
	}
	if o := x.Apply(context.Background(), Decision{Action: ActionReclaimPodRoot}); o.Err != nil {
		t.Fatal(o.Err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "1048576 swappiness=0" {
		t.Errorf("memory.reclaim got %q", got)
	}
}

func TestPreventZombieV2(t *testing.T) {
	tests := []struct {
		name    string
		procs   string
		current string
		freed   int64
		wantErr error
	}{
		{name: "reclaims until empty", current: "200000000", freed: 200000000},
		{name: "already empty", current: "0", freed: 0},
		{name: "has processes", procs: "4242\n", current: "200000000", wantErr: ErrPopulated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := v2Tree(t)
			dir := filepath.Join(paths.PodRootDir(), "kubepods-burstable.slice")
			os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(tt.procs), 0o644)
			os.WriteFile(filepath.Join(dir, "memory.current"), []byte(tt.current), 0o644)
			k := &fakeKernel{t: t, swappiness: true}
			x := &Executor{write: k.write}
			freed, err := x.preventZombie(context.Background(), dir, true, time.Second)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if freed != tt.freed {
				t.Errorf("freed %d, want %d", freed, tt.freed)
			}
			if cur, _ := readInt(filepath.Join(dir, "memory.current")); tt.wantErr == nil && cur != 0 {
				t.Errorf("memory.current %d after prevention", cur)
			}
			if tt.wantErr != nil && len(k.writes) > 0 {
				t.Errorf("wrote %v to a populated cgroup", k.writes)
			}
		})
	}
}

func TestRefusedTargets(t *testing.T) {
	paths := v2Tree(t)
	cfg := config.DefaultMemcg()
	noPod := paths
	noPod.PodRoot = "/"
	v1 := paths
	v1.V2 = false
	for name, x := range map[string]*Executor{
		"pod root is the hierarchy root": NewExecutor(noPod, cfg, ""),
		"v1 without opt-in":              NewExecutor(v1, cfg, ""),
	} {
		k := &fakeKernel{t: t}
		x.write = k.write
		o := x.Apply(context.Background(), Decision{Action: ActionReclaimPodRoot})
		if !errors.Is(o.Err, ErrRefused) || len(k.writes) > 0 {
			t.Errorf("%s: err %v writes %v", name, o.Err, k.writes)
		}
	}
	if err := DropCaches(filepath.Join(t.TempDir(), "x"), 4); !errors.Is(err, ErrRefused) {
		t.Errorf("drop_caches 4: %v", err)
	}
}

// drop_caches goes to the injected path, never the real knob, in unit tests.
func TestDropCachesInjectedPath(t *testing.T) {
	for _, v := range []int{1, 2, 3} {
		path := filepath.Join(t.TempDir(), "drop_caches")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		x := NewExecutor(Paths{ProcRoot: "testdata/v1/proc"}, config.DefaultMemcg(), path)
		o := x.Apply(context.Background(), Decision{Action: ActionDropCaches, DropValue: v})
		got, _ := os.ReadFile(path)
		if o.Err != nil || string(got) != strconv.Itoa(v) || o.Detail != "drop_caches="+strconv.Itoa(v) {
			t.Errorf("value %d: wrote %q, outcome %+v", v, got, o)
		}
	}
}

func TestLogAction(t *testing.T) {
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	w := NewWatchdog(actCfg(), v2Env, &fakeClock{t0})
	var d Decision
	for range 3 {
		d = w.Observe(zombies)
	}
	o := Outcome{Action: d.Action, Target: "/sys/fs/cgroup/kubepods.slice", Detail: "memory.reclaim", Duration: 1500 * time.Millisecond, FreedBytes: 1 << 30}
	e := w.Record(d, o, smp(120, 300, 0))
	LogAction(log, d, o, e)
	LogHealth(log, d)
	LogPrevent(log, "/sys/fs/cgroup/memory/kubepods/podx", 4096, time.Millisecond, ErrTimeout)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d entries:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{
		`"` + audit.MessageID + `":"` + audit.IDMemcgAction + `"`,
		`"` + audit.Action + `":"` + audit.ActionReclaim + `"`,
		`"` + audit.MemcgTrigger + `":"dying-count"`,
		`"` + audit.MemcgDying + `":6000`,
		`"` + FieldDyingAfter + `":120`,
		`"` + audit.MemcgFreed + `":1073741824`,
		`"` + audit.DurationMS + `":1500`,
		`"` + FieldEffect + `":"moved"`,
	} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("action entry lacks %s:\n%s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], audit.IDMemcgHealth) || !strings.Contains(lines[1], `"level":"warning"`) {
		t.Errorf("health entry: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"`+audit.Error+`"`) || !strings.Contains(lines[2], "prevent-on-remove") {
		t.Errorf("prevent entry: %s", lines[2])
	}
}
