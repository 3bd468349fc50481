package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// switchRuntime answers with a snapshot that the test can change, and
// counts the questions.
type switchRuntime struct {
	mu    sync.Mutex
	snap  live.Snapshot
	calls atomic.Int64
}

func (r *switchRuntime) Snapshot(context.Context) (live.Snapshot, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.snap
	s.TakenAt = time.Now()
	return s, nil
}

func (r *switchRuntime) list(sb live.Sandbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap.Sandboxes = append(r.snap.Sandboxes, sb)
}

// slowUnits owns every unit at the item's own path; stopping one takes
// a while, during which onStop runs.
type slowUnits struct {
	took   time.Duration
	onStop func(unit string)
}

func (u slowUnits) Lookup(_ context.Context, unit string) (bool, string, error) {
	return true, unitPaths[unit], nil
}

func (u slowUnits) Stop(_ context.Context, unit string) (string, error) {
	time.Sleep(u.took)
	if u.onStop != nil {
		u.onStop(unit)
	}
	return "done", nil
}

var unitPaths = map[string]string{}

// The final checks of the next removal run while the current one is
// removed. Here the first removal's unit stop is slow, and the runtime
// lists the second pod again meanwhile: the second pod's checks, made
// ahead, are too old by then and must be redone, so it is kept. And the
// checks never run more than one removal ahead.
func TestChecksAheadAreRedoneWhenStale(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "checkahead")
	uids := []string{"00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000c"}
	qos := "kubepods.slice/kubepods-besteffort.slice/"
	podPath := func(uid string) string { return qos + names.SystemdPodSlice(names.BestEffort, uid) }
	for _, uid := range uids {
		must(t, r.Mkdir(podPath(uid)+"/cri-containerd-"+strings.Repeat("e", 64)+".scope"))
		unitPaths[names.SystemdPodSlice(names.BestEffort, uid)] = r.Rel(podPath(uid))
	}
	rt := &switchRuntime{snap: live.Snapshot{Sandboxes: []live.Sandbox{{ID: strings.Repeat("1", 64), PodUID: "11111111-1111-4111-8111-111111111111"}}}}
	cfg := config.Default()
	cfg.Cgroup.PodRoot, cfg.Cgroup.KubeletRoot = r.Rel("kubepods.slice"), t.TempDir()
	must(t, os.Mkdir(filepath.Join(cfg.Cgroup.KubeletRoot, "pods"), 0o755))
	cfg.Clean.MinAge, cfg.Clean.ConfirmPasses, cfg.Clean.MaxRemovalShare = config.Duration{}, 1, 1
	cfg.Clean.UseSystemd = "auto"
	must(t, cfg.Validate())

	var calls []int64 // runtime questions asked when each result came
	e := &engine.Engine{Config: cfg, Runtime: rt, OnResult: func(engine.Result) { calls = append(calls, rt.calls.Load()) }}
	e.Units = slowUnits{took: 3 * engine.MaxCheckAge, onStop: func(unit string) {
		if unit == names.SystemdPodSlice(names.BestEffort, uids[0]) {
			rt.list(live.Sandbox{ID: strings.Repeat("2", 64), PodUID: uids[1]})
		}
	}}
	s, err := e.Scan(context.Background(), nil)
	must(t, err)
	if n := len(decide.Removals(s.Plan)); n != 3 {
		t.Fatalf("plan removes %d, want 3 (kept %v)", n, s.Plan.Kept)
	}
	base := rt.calls.Load()
	results := e.Apply(context.Background(), s, false)
	got := map[string]string{}
	for _, res := range results {
		got[res.Item.PodUID] = string(res.Outcome) + "/" + string(res.Reason)
	}
	want := map[string]string{uids[0]: "removed/", uids[1]: "refused/" + string(decide.RuntimeListsNow), uids[2]: "removed/"}
	for uid, w := range want {
		if got[uid] != w {
			t.Errorf("pod %s: %s, want %s", uid, got[uid], w)
		}
	}
	if r.Exists(podPath(uids[1])) != len(r.Hierarchies) {
		t.Errorf("the pod listed again lost directories: in %d of %d hierarchies", r.Exists(podPath(uids[1])), len(r.Hierarchies))
	}
	// Removal k (0-based) has its own questions (its checks, one right
	// before the unit stop, one before the rmdir after it) and at most the
	// next one's checks behind it: 3(k+1)+1, one more for each check redone.
	for k, c := range calls {
		if c-base > int64(3*(k+1)+1)+1 {
			t.Errorf("at result %d the runtime was asked %d times: checks ran more than one removal ahead", k, c-base)
		}
	}
}
