package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/bench/pass"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// idleBench measures the daemon's CPU per idle pass on a node with live
// sandboxes run by a real containerd.
func idleBench(ctx context.Context, t *testing.T, k knobs) *IdleResult {
	r := testbed.NewCgroupRoot(t, "bench-idle")
	ctrd := testbed.StartContainerd(t)
	var uids []string
	for i := 0; i < k.idleSandboxes; i++ {
		if ctx.Err() != nil {
			t.Fatal("interrupted")
		}
		uid := testbed.RandomUID()
		rel := []string{"kubepods/pod", "kubepods/burstable/pod", "kubepods/besteffort/pod"}[i%3] + uid
		if err := r.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
		ctrd.RunPod(t, r.Rel(rel), uid, "idle-"+uid[:8])
		uids = append(uids, uid)
	}
	cfg := config.Default()
	cfg.Runtime.Endpoint = ctrd.Endpoint()
	cfg.Cgroup.PodRoot = r.Rel("kubepods")
	cfg.Cgroup.KubeletRoot = kubeletDir(t, uids)
	cfg.Cgroup.Driver = "cgroupfs"
	cfg.Clean.UseSystemd = "never"
	ver, _ := exec.Command("containerd", "--version").Output()
	res := &IdleResult{Sandboxes: k.idleSandboxes, Passes: k.idlePasses, Containerd: strings.Join(strings.Fields(string(ver))[1:], " ")}
	for run := 0; run < k.runs; run++ {
		before, err := procCPU(ctrd.PID())
		if err != nil {
			t.Fatal(err)
		}
		spec := pass.Spec{Mode: "idle", Config: cfg, Passes: k.idlePasses}
		if dir := os.Getenv("BENCH_PROFILE"); dir != "" && run == 0 {
			spec.CPUProfile = filepath.Join(dir, "idle.cpu.pprof")
		}
		rep := runChild(ctx, t, k, spec)
		after, err := procCPU(ctrd.PID())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Pods != k.idleSandboxes || rep.LivePods != k.idleSandboxes {
			t.Fatalf("idle pass saw %d pods, %d live; want %d live", rep.Pods, rep.LivePods, k.idleSandboxes)
		}
		n := float64(rep.Passes)
		res.User = append(res.User, time.Duration(rep.UserNS).Seconds()/n)
		res.Sys = append(res.Sys, time.Duration(rep.SysNS).Seconds()/n)
		res.CPU = append(res.CPU, time.Duration(rep.UserNS+rep.SysNS).Seconds()/n)
		res.Wall = append(res.Wall, time.Duration(rep.WallNS).Seconds()/n)
		// containerd's CPU over the child's whole life (dial and warm-up
		// pass included), so per pass over passes+1.
		res.ContainerdCPU = append(res.ContainerdCPU, (after-before).Seconds()/(n+1))
		res.RSS = append(res.RSS, float64(rep.PeakRSS))
		t.Logf("idle run %d: %s CPU per pass (user %s, sys %s), wall %s; containerd %s",
			run+1, Ms(res.CPU[run]), Ms(res.User[run]), Ms(res.Sys[run]), Ms(res.Wall[run]), Ms(res.ContainerdCPU[run]))
	}
	return res
}

// procCPU is a process's user+sys CPU time from /proc/<pid>/stat (clock
// ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces: state is the
	// first, utime the 12th, stime the 13th.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data)[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, data)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, data)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
