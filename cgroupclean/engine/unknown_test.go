package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/inventory"
	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// unknownScan is a pass over a live pod, a pod kubelet tracks and an
// orphan, with the runtime or kubelet unreachable.
func unknownScan(runtimeErr, kubeletErr error) *engine.Scan {
	now := time.Now()
	inv := &inventory.Inventory{Driver: names.Cgroupfs}
	uids := []string{"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"}
	for _, u := range uids {
		p := "/kubepods/burstable/pod" + u
		inv.Pods = append(inv.Pods, &inventory.Pod{UID: u, QoS: names.Burstable, Path: p, In: []string{"memory"}, Changed: now.Add(-time.Hour),
			Containers: []*inventory.Container{{ID: strings.Repeat(u[:1], 64), Kind: names.BareID, Path: p + "/" + strings.Repeat(u[:1], 64), In: []string{"memory"}}}})
	}
	snap := live.Snapshot{Sandboxes: []live.Sandbox{{ID: strings.Repeat("a", 64), PodUID: uids[0], Ready: true}},
		Containers: []live.Container{{ID: strings.Repeat("1", 64), SandboxID: strings.Repeat("a", 64)}}}
	if runtimeErr != nil {
		snap = live.Snapshot{}
	}
	in := decide.Input{Inventory: inv, Snapshot: snap, RuntimeErr: runtimeErr, KubeletErr: kubeletErr,
		KubeletPods: map[string]bool{uids[1]: true}, Now: now}
	s := &engine.Scan{Inventory: inv, Snapshot: snap, Plan: decide.Decide(in, decide.Policy{MaxRemovalsPerPass: 50, MaxRemovalShare: 1, ConfirmPasses: 1, RemoveContainers: true})}
	if runtimeErr != nil {
		s.Plan.RuntimeError = runtimeErr.Error()
	}
	return s
}

// TestRecordsSayUnknownNotOrphan: while the runtime cannot be asked, the
// journal entries, the summary entry and the summary line (the daemon's
// STATUS=, scan's last line) say the state is unknown: no pod is called
// an orphan, and there is no LIVE=0.
func TestRecordsSayUnknownNotOrphan(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	s := unknownScan(errors.New("dial unix /run/crio/crio.sock: connect: connection refused"), nil)
	engine.LogPlan(log, s, 7, false)
	engine.LogSummary(log, s, nil, 7, false)
	line := engine.SummaryLine(s, nil)
	if !strings.HasPrefix(line, "RUNTIME UNREACHABLE, nothing removed;") || !strings.Contains(line, "3 pod cgroups, all of unknown state") || strings.Contains(line, "live") || strings.Contains(line, "orphan") ||
		strings.Contains(line, "kept") {
		t.Errorf("summary line: %q", line)
	}
	kept, summaries := 0, 0
	for _, e := range hook.AllEntries() {
		switch e.Data[audit.MessageID] {
		case audit.IDRemovalRefused:
			kept++
			if strings.Contains(e.Message, "orphan") || e.Data[audit.State] != "unknown" || e.Data[audit.Reason] != string(decide.RuntimeUnreachable) {
				t.Errorf("kept entry: %q %v", e.Message, e.Data)
			}
		case audit.IDPassSummary:
			summaries++
			if _, ok := e.Data[audit.Live]; ok {
				t.Errorf("summary entry has LIVE=%v", e.Data[audit.Live])
			}
			if _, ok := e.Data[audit.Orphans]; ok {
				t.Errorf("summary entry has ORPHANS=%v", e.Data[audit.Orphans])
			}
			if e.Data[audit.Unknown] != 3 || e.Message != line {
				t.Errorf("summary entry: %q %v", e.Message, e.Data)
			}
		}
	}
	if kept != 3 || summaries != 1 {
		t.Errorf("%d kept entries (want one per pod), %d summaries", kept, summaries)
	}
}

// TestRecordsWithKubeletUnknown: the runtime answered but kubelet's state
// could not be read: the pods the runtime lists are live, the others are
// of unknown state (not orphans), and the summary says how many.
func TestRecordsWithKubeletUnknown(t *testing.T) {
	log, hook := test.NewNullLogger()
	s := unknownScan(nil, errors.New("kubelet state unknown"))
	engine.LogPlan(log, s, 1, false)
	engine.LogSummary(log, s, nil, 1, false)
	line := engine.SummaryLine(s, nil)
	if want := "3 pod cgroups: 1 live, 0 orphaned, 2 of unknown state (left alone) (+0 orphan containers in live pods); "; !strings.HasPrefix(line, want) {
		t.Errorf("summary line %q, want prefix %q", line, want)
	}
	for _, e := range hook.AllEntries() {
		if e.Data[audit.MessageID] == audit.IDRemovalRefused && (strings.Contains(e.Message, "orphan") || e.Data[audit.State] != "unknown") {
			t.Errorf("kept entry: %q %v", e.Message, e.Data)
		}
		if e.Data[audit.MessageID] == audit.IDPassSummary && fmt.Sprint(e.Data[audit.Live], e.Data[audit.Unknown]) != "1 2" {
			t.Errorf("summary entry: %v", e.Data)
		}
	}
}
