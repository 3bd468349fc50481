package cri

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// TestSnapshotContainerd lists the pods of a real containerd: the live
// ones (READY, and stopped but not removed as NOTREADY), never a removed
// one, the containers with their sandbox, and the cgroupfs driver.
func TestSnapshotContainerd(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "cri")
	ctrd := testbed.StartContainerd(t)

	type pod struct{ uid, name, id string }
	run := func(name string) pod {
		uid := testbed.RandomUID()
		rel := "kubepods/burstable/pod" + uid
		if err := r.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
		return pod{uid: uid, name: name, id: ctrd.RunPod(t, r.Rel(rel), uid, name)}
	}
	ready, stopped, removed := run("ready"), run("stopped"), run("removed")
	ctrID := ctrd.CreateStartContainer(t, ready.id, "app")
	ctrd.StopPod(t, stopped.id)
	ctrd.StopRemovePod(t, removed.id)

	c, err := Dial(ctrd.Endpoint(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	before := time.Now()
	snap, err := c.Snapshot(t.Context())
	took := time.Since(before)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Snapshot (with driver detection) took %v", took)

	sort.Slice(snap.Sandboxes, func(i, j int) bool { return snap.Sandboxes[i].Name < snap.Sandboxes[j].Name })
	wantSandboxes := []struct {
		p     pod
		ready bool
	}{
		{p: ready, ready: true},
		{p: stopped, ready: false},
	}
	if len(snap.Sandboxes) != len(wantSandboxes) {
		t.Fatalf("got %d sandboxes %+v, want ready and stopped (removed %s must be absent)", len(snap.Sandboxes), snap.Sandboxes, removed.id)
	}
	for i, w := range wantSandboxes {
		got := snap.Sandboxes[i]
		want := live.Sandbox{ID: w.p.id, PodUID: w.p.uid, Name: w.p.name, Namespace: testbed.PodNamespace, Ready: w.ready, CreatedAt: got.CreatedAt}
		if got != want {
			t.Errorf("sandbox %d: got %+v, want %+v", i, got, want)
		}
		if got.CreatedAt.Before(before.Add(-time.Minute)) || got.CreatedAt.After(before) {
			t.Errorf("sandbox %s: created at %v, want shortly before %v", got.Name, got.CreatedAt, before)
		}
	}
	wantContainers := []live.Container{{ID: ctrID, SandboxID: ready.id, State: "CONTAINER_RUNNING"}}
	if len(snap.Containers) != 1 || snap.Containers[0] != wantContainers[0] {
		t.Errorf("containers: got %+v, want %+v", snap.Containers, wantContainers)
	}
	if snap.CgroupDriver != DriverCgroupfs {
		t.Errorf("driver: got %q, want %q", snap.CgroupDriver, DriverCgroupfs)
	}
	if snap.TakenAt.Before(before) || snap.TakenAt.After(before.Add(took)) {
		t.Errorf("TakenAt %v not within the call (%v + %v)", snap.TakenAt, before, took)
	}

	before = time.Now()
	if _, err := c.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("second Snapshot (driver cached) took %v", time.Since(before))
}

// TestSnapshotFailsWithinTimeout: a runtime that is down or does not
// answer gives an error within the timeout, never a hang or an empty list.
func TestSnapshotFailsWithinTimeout(t *testing.T) {
	const timeout = 700 * time.Millisecond
	tests := []struct {
		name string
		// setup returns the endpoint and the fault to cause after a first
		// good call (nil: the endpoint is broken from the start).
		setup func(t *testing.T) (endpoint string, fault func())
	}{
		{
			name: "containerd killed after a good call",
			setup: func(t *testing.T) (string, func()) {
				ctrd := testbed.StartContainerd(t)
				return ctrd.Endpoint(), func() { ctrd.Kill9(t) }
			},
		},
		{
			name: "listener that accepts and never answers",
			setup: func(t *testing.T) (string, func()) {
				return silentListener(t), nil
			},
		},
		{
			name: "no socket",
			setup: func(t *testing.T) (string, func()) {
				return "unix://" + filepath.Join(shortDir(t), "absent.sock"), nil
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint, fault := tc.setup(t)
			c, err := Dial(endpoint, timeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if fault != nil {
				if _, err := c.Snapshot(t.Context()); err != nil {
					t.Fatalf("before the fault: %v", err)
				}
				fault()
			}
			start := time.Now()
			snap, err := c.Snapshot(t.Context())
			took := time.Since(start)
			t.Logf("error after %v: %v", took, err)
			if err == nil {
				t.Fatalf("no error, snapshot %+v", snap)
			}
			// Two calls at most (sandboxes, containers), each bounded.
			if took > timeout+500*time.Millisecond {
				t.Errorf("took %v, timeout is %v", took, timeout)
			}
		})
	}
}

// TestSnapshotAfterContainerdRestart: the same client works again once the
// runtime is back, and the sandbox survived kill -9 of containerd.
func TestSnapshotAfterContainerdRestart(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "crirestart")
	ctrd := testbed.StartContainerd(t)
	uid := testbed.RandomUID()
	id := ctrd.RunPod(t, r.Rel("kubepods/pod"+uid), uid, "survivor")
	c, err := Dial(ctrd.Endpoint(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	ctrd.Kill9(t)
	if _, err := c.Snapshot(t.Context()); err == nil {
		t.Fatal("no error with containerd dead")
	}
	ctrd.Restart(t)
	var snap live.Snapshot
	// gRPC reconnects with backoff: allow a few tries.
	restarted := time.Now()
	deadline := restarted.Add(10 * time.Second)
	tries := 0
	for {
		tries++
		snap, err = c.Snapshot(t.Context())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	t.Logf("answer %v after restart, %d tries", time.Since(restarted), tries)
	if len(snap.Sandboxes) != 1 || snap.Sandboxes[0].ID != id || !snap.Sandboxes[0].Ready {
		t.Fatalf("after restart: got %+v, want sandbox %s READY", snap.Sandboxes, id)
	}
	if snap.CgroupDriver != DriverCgroupfs {
		t.Errorf("driver after restart: got %q, want %q", snap.CgroupDriver, DriverCgroupfs)
	}
}

// shortDir is a temp dir whose paths fit a unix socket address.
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cgct-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// silentListener accepts connections and never reads or writes: a hung
// runtime.
func silentListener(t *testing.T) string {
	sock := filepath.Join(shortDir(t), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
			if ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = l.Close(); <-done })
	return "unix://" + sock
}
