package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// countingRuntime answers with snap and counts the questions.
type countingRuntime struct {
	snap  live.Snapshot
	calls atomic.Int64
}

func (r *countingRuntime) Snapshot(context.Context) (live.Snapshot, error) {
	r.calls.Add(1)
	return r.snap, nil
}

// The look-ahead checks share one answer of the runtime for
// ShareRuntimeAnswer, never longer; a shared answer that lists the pod
// refuses it; and checks count as stale from when the runtime was asked,
// not from when they ended, so a removal never starts on an answer older
// than MaxCheckAge.
func TestLookAheadSharesRuntimeAnswer(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "shareanswer")
	uid := "00000000-0000-4000-8000-0000000000aa"
	path := "kubepods/besteffort/pod" + uid
	if err := r.Mkdir(path + "/" + strings.Repeat("e", 64)); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cgroup.KubeletRoot = t.TempDir()
	if err := os.Mkdir(filepath.Join(cfg.Cgroup.KubeletRoot, "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := &countingRuntime{}
	e := &Engine{Config: cfg, Runtime: rt}
	s := &Scan{Hierarchies: r.Hierarchies}
	it := decide.Item{Kind: decide.PodKind, PodUID: uid, Path: r.Rel(path), Action: decide.Remove}

	fresh := &runtimeAnswer{asked: time.Now()}
	c := e.check(context.Background(), s, it, fresh)
	if c.refused != nil || rt.calls.Load() != 0 || !c.asked.Equal(fresh.asked) {
		t.Fatalf("a fresh shared answer: refused %v, %d questions, asked %v (want the shared %v)", c.refused, rt.calls.Load(), c.asked, fresh.asked)
	}
	old := &runtimeAnswer{asked: time.Now().Add(-2 * ShareRuntimeAnswer)}
	before := time.Now()
	c = e.check(context.Background(), s, it, old)
	if c.refused != nil || rt.calls.Load() != 1 || c.asked.Before(before) || !old.asked.Equal(c.asked) {
		t.Fatalf("an old shared answer must be replaced: refused %v, %d questions, asked %v", c.refused, rt.calls.Load(), c.asked)
	}
	listing := &runtimeAnswer{asked: time.Now(), snap: live.Snapshot{Sandboxes: []live.Sandbox{{ID: strings.Repeat("1", 64), PodUID: uid}}}}
	c = e.check(context.Background(), s, it, listing)
	if c.refused == nil || c.refused.Reason != decide.RuntimeListsNow {
		t.Fatalf("a shared answer listing the pod must refuse it, got %+v", c.refused)
	}
	if !(checked{at: time.Now(), asked: time.Now().Add(-MaxCheckAge - time.Millisecond)}).stale(time.Now()) {
		t.Error("checks whose runtime answer is older than MaxCheckAge must be stale")
	}
	if (checked{at: time.Now(), asked: time.Now()}).stale(time.Now()) {
		t.Error("fresh checks are not stale")
	}
}
