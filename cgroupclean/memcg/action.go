package memcg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/cgfs"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"golang.org/x/sys/unix"
)

// Errors of the executors; match with errors.Is.
var (
	// ErrTimeout: the kernel was interrupted when the time bound passed.
	// What was reclaimed until then stays reclaimed.
	ErrTimeout = errors.New("time bound reached")
	// ErrPopulated: the cgroup still has processes, so it is not about to
	// be removed and step 1 must not strip its cache.
	ErrPopulated = errors.New("cgroup has processes")
	// ErrRefused: the target is a hierarchy root, which no step touches.
	ErrRefused = errors.New("refused target")
)

// DropCachesPath is the kernel's knob.
const DropCachesPath = "/proc/sys/vm/drop_caches"

// Outcome is what an executor did.
type Outcome struct {
	Action Action
	// Target is the cgroup directory or the drop_caches path.
	Target string
	// Detail says how ("memory.force_empty", "memory.reclaim 3x64MiB
	// swappiness=0", "drop_caches=1").
	Detail     string
	Duration   time.Duration
	FreedBytes int64
	Err        error
}

// writeFunc writes data to a control file, interrupting the kernel when
// deadline passes. Replaced in unit tests to play the kernel's part.
type writeFunc func(ctx context.Context, path string, data []byte, deadline time.Time) error

// Executor runs the watchdog's actions on the paths it was given.
type Executor struct {
	paths Paths
	cfg   config.Memcg
	// dropPath is DropCachesPath in production; tests point it at a file.
	dropPath string
	write    writeFunc
	// noSwappiness is set once the kernel refused "swappiness=0".
	noSwappiness atomic.Bool
}

// NewExecutor returns an executor. dropCachesPath is DropCachesPath except
// in tests. Its cgroup writes are confined to paths.MemoryRoot.
func NewExecutor(paths Paths, cfg config.Memcg, dropCachesPath string) *Executor {
	return &Executor{paths: paths, cfg: cfg, dropPath: dropCachesPath, write: confinedWriter(paths.MemoryRoot)}
}

// confinedWriter is writeBounded with every open confined to the memory
// hierarchy mounted at mount (cgfs.OpenConfined).
func confinedWriter(mount string) writeFunc {
	return func(ctx context.Context, path string, data []byte, deadline time.Time) error {
		return writeBounded(ctx, mount, path, data, deadline)
	}
}

// Apply runs the decision's action. ActionNone does nothing.
func (x *Executor) Apply(ctx context.Context, d Decision) Outcome {
	switch d.Action {
	case ActionReclaimPodRoot:
		return x.reclaimPodRoot(ctx)
	case ActionDropCaches:
		return x.dropCaches(d.DropValue)
	}
	return Outcome{Action: ActionNone}
}

func (x *Executor) reclaimPodRoot(ctx context.Context) (o Outcome) {
	o = Outcome{Action: ActionReclaimPodRoot, Target: x.paths.PodRootDir()}
	start := time.Now()
	defer func() { o.Duration = time.Since(start) }()
	if o.Target == "" || filepath.Clean(o.Target) == filepath.Clean(x.paths.MemoryRoot) {
		o.Err = fmt.Errorf("reclaim at pod root %q: %w", o.Target, ErrRefused)
		return o
	}
	if !x.paths.V2 {
		// v1 has no bounded reclaim: force_empty strips every pod's
		// cache below, which is why it needs the operator's opt-in.
		if !x.cfg.V1ForceEmptyPodRoot {
			o.Err = fmt.Errorf("force_empty at pod root without v1_force_empty_pod_root: %w", ErrRefused)
			return o
		}
		o.Detail = "memory.force_empty"
		o.FreedBytes, o.Err = x.forceEmpty(ctx, o.Target, x.cfg.ReclaimTimeout.Duration)
		return o
	}
	r, err := x.reclaim(ctx, o.Target, x.cfg.ReclaimStepBytes, x.cfg.ReclaimMaxBytes, x.cfg.ReclaimTimeout.Duration, false)
	o.FreedBytes, o.Err, o.Detail = r.Freed, err, r.String()
	return o
}

func (x *Executor) dropCaches(value int) Outcome {
	o := Outcome{Action: ActionDropCaches, Target: x.dropPath, Detail: "drop_caches=" + strconv.Itoa(value)}
	before := x.meminfo()
	start := time.Now()
	o.Err = DropCaches(x.dropPath, value)
	o.Duration = time.Since(start)
	after := x.meminfo()
	freed := before.Cached - after.Cached
	if value&2 != 0 {
		freed += before.Slab - after.Slab
	}
	o.FreedBytes = max(freed, 0)
	return o
}

func (x *Executor) meminfo() Meminfo {
	data, err := os.ReadFile(filepath.Join(x.paths.ProcRoot, "meminfo"))
	if err != nil {
		return Meminfo{}
	}
	m, _ := ParseMeminfo(data)
	return m
}

// DropCaches writes value (1 page cache, 2 slab, 3 both) to path. Only
// clean, unmapped pages go; it is global, so the watchdog rate-limits it.
func DropCaches(path string, value int) error {
	if value < 1 || value > 3 {
		return fmt.Errorf("drop_caches value %d: %w", value, ErrRefused)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(value)), 0o200); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// PreventZombie reclaims the charges of an orphan's memory cgroup just
// before its rmdir, so the removed cgroup is freed at once instead of
// lingering as a dying memcg: v1 memory.force_empty, v2 memory.reclaim until
// memory.current is 0 or the kernel finds nothing more. It returns the
// bytes freed. Outcomes: (n, nil) done; (n, ErrTimeout) the bound passed
// (rmdir may still go ahead); (0, ErrPopulated) the cgroup has processes;
// (0, other) the files could not be used. memoryMount is the memory
// hierarchy's mountpoint: the writes cannot leave it.
func PreventZombie(ctx context.Context, memoryMount, memoryCgroupDir string, v2 bool, timeout time.Duration) (int64, error) {
	x := &Executor{write: confinedWriter(memoryMount)}
	return x.preventZombie(ctx, memoryCgroupDir, v2, timeout)
}

func (x *Executor) preventZombie(ctx context.Context, dir string, v2 bool, timeout time.Duration) (int64, error) {
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return 0, fmt.Errorf("prevent zombie memcg %s: %w", dir, err)
	}
	if len(strings.TrimSpace(string(procs))) > 0 {
		return 0, fmt.Errorf("prevent zombie memcg %s: %w", dir, ErrPopulated)
	}
	if !v2 {
		return x.forceEmpty(ctx, dir, timeout)
	}
	cur, err := readInt(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, fmt.Errorf("prevent zombie memcg %s: %w", dir, err)
	}
	if cur == 0 {
		return 0, nil
	}
	// Ask for everything, in steps so the time bound is checked between
	// them; stop early once memory.current reaches 0.
	const step = 64 << 20
	r, err := x.reclaim(ctx, dir, min(step, cur), cur+step, timeout, true)
	return r.Freed, err
}

// forceEmpty writes v1 memory.force_empty and returns the drop of
// memory.usage_in_bytes.
func (x *Executor) forceEmpty(ctx context.Context, dir string, timeout time.Duration) (int64, error) {
	usage := filepath.Join(dir, "memory.usage_in_bytes")
	before, err := readInt(usage)
	if err != nil {
		return 0, fmt.Errorf("force_empty %s: %w", dir, err)
	}
	werr := x.write(ctx, dir+"/memory.force_empty", []byte("0"), time.Now().Add(timeout))
	after, err := readInt(usage)
	if err != nil {
		after = before
	}
	freed := max(before-after, 0)
	if werr != nil {
		return freed, fmt.Errorf("force_empty %s: %w", dir, werr)
	}
	return freed, nil
}

// ReclaimResult describes a memory.reclaim run.
type ReclaimResult struct {
	Steps          int
	Requested      int64
	Freed          int64 // fall of memory.current
	SwappinessZero bool
	// Stop is why it ended: "max", "empty", "eagain" (the kernel reclaimed
	// less than asked), "timeout" or "error".
	Stop string
}

func (r ReclaimResult) String() string {
	s := fmt.Sprintf("memory.reclaim %d steps, %d bytes asked, stop=%s", r.Steps, r.Requested, r.Stop)
	if r.SwappinessZero {
		s += " swappiness=0"
	}
	return s
}

// reclaim writes memory.reclaim in steps of step bytes up to maxBytes.
// swappiness=0 is asked when configured (always for prevention: an orphan's
// anon memory is not worth swap I/O); a kernel that refuses it (EINVAL,
// before 6.10 or so) is asked again without, and not asked again.
func (x *Executor) reclaim(ctx context.Context, dir string, step, maxBytes int64, timeout time.Duration, stopWhenEmpty bool) (ReclaimResult, error) {
	r := ReclaimResult{SwappinessZero: (x.cfg.ReclaimSwappinessOff || stopWhenEmpty) && !x.noSwappiness.Load()}
	current := filepath.Join(dir, "memory.current")
	before, err := readInt(current)
	if err != nil {
		r.Stop = "error"
		return r, fmt.Errorf("memory.reclaim %s: %w", dir, err)
	}
	deadline := time.Now().Add(timeout)
	var werr error
	for r.Stop == "" {
		if r.Requested >= maxBytes {
			r.Stop = "max"
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.Stop, werr = "timeout", ErrTimeout
			break
		}
		n := min(step, maxBytes-r.Requested)
		arg := strconv.FormatInt(n, 10)
		if r.SwappinessZero {
			arg += " swappiness=0"
		}
		err := x.write(ctx, dir+"/memory.reclaim", []byte(arg), deadline)
		switch {
		case err == nil:
			r.Steps++
			r.Requested += n
			if stopWhenEmpty {
				if cur, err := readInt(current); err == nil && cur == 0 {
					r.Stop = "empty"
				}
			}
		case errors.Is(err, unix.EINVAL) && r.SwappinessZero:
			x.noSwappiness.Store(true)
			r.SwappinessZero = false
		case errors.Is(err, unix.EAGAIN):
			r.Steps++
			r.Requested += n
			r.Stop = "eagain"
		case errors.Is(err, ErrTimeout):
			r.Stop, werr = "timeout", err
		default:
			r.Stop, werr = "error", err
		}
	}
	after, err := readInt(current)
	if err != nil {
		after = before
	}
	r.Freed = max(before-after, 0)
	if werr != nil {
		return r, fmt.Errorf("memory.reclaim %s: %w", dir, werr)
	}
	return r, nil
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 1<<63 - 1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", path, s, ErrFormat)
	}
	return v, nil
}

// writeBounded writes data in one write(2) on its own OS thread. Both
// memory.force_empty and memory.reclaim loop in the kernel and give up with
// EINTR when a signal is pending, so when the deadline passes the thread is
// sent SIGURG (which the Go runtime already handles and ignores when it has
// nothing to preempt) until the write returns. path is opened confined to
// mount (cgfs.OpenConfined): a symlink or ".." cannot turn the write into
// one outside the memory hierarchy.
func writeBounded(ctx context.Context, mount, path string, data []byte, deadline time.Time) error {
	// Split by hand: filepath.Dir would clean away a ".." the check must see.
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return fmt.Errorf("open %s: %w", path, cgfs.ErrUnconfined)
	}
	fd, err := cgfs.OpenConfined(mount, path[:i], path[i+1:], unix.O_WRONLY)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	return writeFdBounded(ctx, fd, path, data, deadline)
}

// writeFdBounded is the bounded write of writeBounded on an open fd.
func writeFdBounded(ctx context.Context, fd int, path string, data []byte, deadline time.Time) error {
	var stop atomic.Bool
	tid := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, so a late
		// signal cannot reach a thread that runs other work.
		runtime.LockOSThread()
		tid <- unix.Gettid()
		for {
			_, err := unix.Write(fd, data)
			if errors.Is(err, unix.EINTR) && !stop.Load() {
				continue // a runtime signal, not ours
			}
			done <- err
			return
		}
	}()
	t := <-tid
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var werr error
	select {
	case werr = <-done:
	case <-timer.C:
		werr = interrupt(&stop, t, done)
	case <-ctx.Done():
		werr = interrupt(&stop, t, done)
	}
	switch {
	case werr == nil:
		return nil
	case errors.Is(werr, unix.EINTR):
		return fmt.Errorf("write %s: %w", path, ErrTimeout)
	}
	return &os.PathError{Op: "write", Path: path, Err: werr}
}

func interrupt(stop *atomic.Bool, tid int, done <-chan error) error {
	stop.Store(true)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	pid := unix.Getpid()
	for {
		_ = unix.Tgkill(pid, tid, unix.SIGURG)
		select {
		case err := <-done:
			return err
		case <-tick.C:
		}
	}
}
