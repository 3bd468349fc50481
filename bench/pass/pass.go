// Package pass is one measured job of the bench, run in a fresh process
// (bench/cmd/benchpass) so that its rusage (peak RSS, CPU) is that job's
// alone and its binary links what the daemon links (engine, CRI client,
// logrus), not the test harness.
package pass

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/cri"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Spec says what to run.
type Spec struct {
	// Mode is "scan" (one Scan with the recorded answer in Snapshot),
	// "idle" (daemon passes against the real CRI endpoint of Config) or
	// "exec" (run Args, report its rusage).
	Mode     string
	Config   config.Config
	Snapshot *live.Snapshot
	Passes   int
	// AllocProfile, if set, is where the scan mode writes the allocation
	// profile of its pass (to see what makes up the peak RSS).
	AllocProfile string
	// CPUProfile, if set, is where the idle mode writes the CPU profile of
	// its measured passes.
	CPUProfile string
	// Args is the command of the "exec" mode: run it as a child and report
	// its own rusage. Stdout and Stderr name files for its output ("":
	// /dev/null).
	Args           []string
	Env            []string
	Stdout, Stderr string
}

// Report is what the job saw and what it cost. Times are nanoseconds.
type Report struct {
	Pods, LivePods        int
	Passes                int
	WallNS, UserNS, SysNS int64
	// ExitCode, ChildMaxRSS and FloorRSS are the "exec" mode's: the
	// child's exit status and ru_maxrss from wait4 (bytes), and this
	// process's VmHWM before it started the child. Go starts children
	// with vfork, so a child's maxrss is at least its starter's high-water
	// mark: started from this small process (not from the harness), the
	// figure is the child's own whenever it is above FloorRSS.
	ExitCode              int
	ChildMaxRSS, FloorRSS int64
	// PeakRSS is this process's VmHWM in bytes at the end of the job.
	// Not ru_maxrss from wait4: Go starts a child with vfork, so exec
	// records the PARENT's memory high-water mark as the child's maxrss
	// (fs/exec.c exec_mmap), and the harness holds far more than the job.
	PeakRSS int64
}

// Recorded is a live.Runtime that gives a fixed answer: a recorded CRI
// answer standing in for a runtime with that many sandboxes.
type Recorded struct{ Snap live.Snapshot }

// Snapshot returns the recorded answer, stamped now.
func (r Recorded) Snapshot(context.Context) (live.Snapshot, error) {
	s := r.Snap
	s.TakenAt = time.Now()
	return s, nil
}

// Run runs the job.
func Run(ctx context.Context, spec Spec) (Report, error) {
	rep, err := run(ctx, spec)
	if err != nil {
		return rep, err
	}
	rep.PeakRSS, err = peakRSS()
	return rep, err
}

func run(ctx context.Context, spec Spec) (Report, error) {
	switch spec.Mode {
	case "scan":
		if spec.Snapshot == nil {
			return Report{}, fmt.Errorf("scan: no recorded snapshot")
		}
		e := &engine.Engine{Config: spec.Config, Runtime: Recorded{Snap: *spec.Snapshot}}
		start := time.Now()
		s, err := e.Scan(ctx, nil)
		if err != nil {
			return Report{}, err
		}
		rep := Report{Pods: s.Plan.Summary.Pods, LivePods: s.Plan.Summary.LivePods, Passes: 1, WallNS: int64(time.Since(start))}
		if spec.AllocProfile != "" {
			if err := writeAllocs(spec.AllocProfile); err != nil {
				return rep, err
			}
		}
		return rep, nil
	case "idle":
		return idle(ctx, spec)
	case "exec":
		return execChild(ctx, spec)
	}
	return Report{}, fmt.Errorf("unknown mode %q", spec.Mode)
}

// peakRSS reads VmHWM ("VmHWM:   12345 kB") from /proc/self/status.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

func writeAllocs(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	return f.Close()
}

// idle runs the daemon's work per pass against a real CRI endpoint: one
// warm-up pass, then spec.Passes measured ones. CPU is this process's user
// and sys time (every thread: GC, gRPC) across the measured passes.
func idle(ctx context.Context, spec Spec) (Report, error) {
	rep := Report{Passes: spec.Passes}
	c, err := cri.Dial(spec.Config.Runtime.Endpoint, spec.Config.Runtime.Timeout.Duration)
	if err != nil {
		return rep, err
	}
	defer c.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(logrus.InfoLevel)
	// The daemon keeps a DirCache from pass to pass; so does this idle loop.
	e := &engine.Engine{Config: spec.Config, Runtime: c, Log: log, DirCache: &inventory.DirCache{}}
	var sightings map[string]int
	pass := func(n uint64) error {
		// As the daemon: mountinfo parsed again every 10 passes.
		if n%10 == 0 {
			hs, err := hierarchy.Discover(spec.Config.Cgroup.MountRoot)
			if err != nil {
				return err
			}
			e.Hierarchies = hs
		}
		s, err := e.Scan(ctx, sightings)
		if err != nil {
			return err
		}
		if s.Plan.RuntimeError != "" {
			return fmt.Errorf("idle pass: %s", s.Plan.RuntimeError)
		}
		results := e.Apply(ctx, s, false)
		engine.LogPlan(log, s, n, false)
		engine.LogResults(log, results, n, false)
		engine.LogSummary(log, s, results, n, false)
		sightings = decide.NextSightings(s.Plan, sightings)
		rep.Pods, rep.LivePods = s.Plan.Summary.Pods, s.Plan.Summary.LivePods
		return nil
	}
	if err := pass(0); err != nil {
		return rep, err
	}
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &before); err != nil {
		return rep, err
	}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return rep, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return rep, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for i := 1; i <= spec.Passes; i++ {
		if err := pass(uint64(i)); err != nil {
			return rep, err
		}
	}
	rep.WallNS = int64(time.Since(start))
	if err := unix.Getrusage(unix.RUSAGE_SELF, &after); err != nil {
		return rep, err
	}
	rep.UserNS = after.Utime.Nano() - before.Utime.Nano()
	rep.SysNS = after.Stime.Nano() - before.Stime.Nano()
	return rep, nil
}

// execChild runs spec.Args and reports its wall time and its own rusage.
func execChild(ctx context.Context, spec Spec) (Report, error) {
	if len(spec.Args) == 0 {
		return Report{}, fmt.Errorf("exec: no command")
	}
	floor, err := peakRSS()
	if err != nil {
		return Report{}, err
	}
	cmd := exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	if spec.Env != nil {
		cmd.Env = append(os.Environ(), spec.Env...)
	}
	for _, o := range []struct {
		file string
		to   *io.Writer
	}{{spec.Stdout, &cmd.Stdout}, {spec.Stderr, &cmd.Stderr}} {
		name := o.file
		if name == "" {
			name = os.DevNull
		}
		f, err := os.Create(name)
		if err != nil {
			return Report{}, err
		}
		defer f.Close()
		*o.to = f
	}
	start := time.Now()
	err = cmd.Run()
	rep := Report{Passes: 1, WallNS: int64(time.Since(start)), FloorRSS: floor}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return rep, fmt.Errorf("run %s: %w", spec.Args[0], err)
	}
	rep.ExitCode = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.ChildMaxRSS = ru.Maxrss << 10 // KiB on Linux
		rep.UserNS = syscall.TimevalToNsec(ru.Utime)
		rep.SysNS = syscall.TimevalToNsec(ru.Stime)
	}
	return rep, nil
}
