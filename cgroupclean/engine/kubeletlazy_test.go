package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

type fixedRuntime live.Snapshot

func (f fixedRuntime) Snapshot(context.Context) (live.Snapshot, error) { return live.Snapshot(f), nil }

// Kubelet is asked only about pods the runtime does not list: with every
// pod listed a pass does not read kubelet's pod dirs (here missing, which
// would be logged), and the first pod it does not list is kept as of
// unknown state, as before.
func TestKubeletAskedOnlyForUnlistedPods(t *testing.T) {
	r := testbed.NewCgroupRoot(t, "kubelet-lazy")
	uids := []string{"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"}
	var snap live.Snapshot
	for i, u := range uids {
		if err := r.Mkdir("kubepods/burstable/pod" + u + "/" + strings.Repeat("abcdef"[i:i+1], 64)); err != nil {
			t.Fatal(err)
		}
		snap.Sandboxes = append(snap.Sandboxes, live.Sandbox{ID: strings.Repeat("abcdef"[i:i+1], 64), PodUID: u, Ready: true})
	}
	cfg := config.Default()
	cfg.Cgroup.PodRoot, cfg.Cgroup.Driver = r.Rel("kubepods"), "cgroupfs"
	cfg.Cgroup.KubeletRoot = filepath.Join(t.TempDir(), "no-kubelet")
	cfg.Clean.UseSystemd, cfg.Clean.MinAge.Duration = "never", 0
	pass := func() (*engine.Scan, *test.Hook) {
		log, hook := test.NewNullLogger()
		log.SetLevel(logrus.DebugLevel)
		e := &engine.Engine{Config: cfg, Log: log, Runtime: fixedRuntime(snap), Hierarchies: r.Hierarchies}
		s, err := e.Scan(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, hook
	}
	kubeletWarned := func(hook *test.Hook) bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "kubelet state unknown") {
				return true
			}
		}
		return false
	}
	s, hook := pass()
	if s.Plan.Summary.LivePods != 2 || kubeletWarned(hook) {
		t.Fatalf("every pod listed: %+v, kubelet read (warned): %v", s.Plan.Summary, kubeletWarned(hook))
	}
	orphan := "33333333-3333-4333-8333-333333333333"
	if err := r.Mkdir("kubepods/besteffort/pod" + orphan); err != nil {
		t.Fatal(err)
	}
	s, hook = pass()
	if !kubeletWarned(hook) || s.Plan.Summary.UnknownPods != 1 || s.Plan.Summary.Remove != 0 {
		t.Fatalf("a pod the runtime does not list: %+v, kubelet warned %v", s.Plan.Summary, kubeletWarned(hook))
	}
	for _, it := range s.Plan.Items {
		if it.PodUID == orphan && (it.Reason != decide.KubeletStateUnknown || it.Removes()) {
			t.Fatalf("unlisted pod with kubelet unknown: %s/%s", it.Action, it.Reason)
		}
	}
}
