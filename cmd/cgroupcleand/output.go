package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
)

func printHeader(w io.Writer, src string, s *engine.Scan) {
	var hs []string
	for _, h := range s.Hierarchies {
		hs = append(hs, h.Name)
	}
	fmt.Fprintf(w, "config:      %s\n", src)
	fmt.Fprintf(w, "hierarchies: %d (%s)\n", len(hs), strings.Join(hs, " "))
	if s.NoPodRoot {
		fmt.Fprintf(w, "pod root:    none found (not a Kubernetes node, or kubelet has not started)\n")
		return
	}
	drv := string(s.Driver)
	if s.RuntimeDriver != "" {
		drv += " (runtime reports " + s.RuntimeDriver + ")"
	}
	fmt.Fprintf(w, "pod root:    %s  driver: %s\n", s.PodRoot, drv)
	if s.Plan.RuntimeError != "" {
		fmt.Fprintf(w, "runtime:     UNREACHABLE: %s\n             nothing will be removed while the runtime cannot be asked\n", s.Plan.RuntimeError)
	} else {
		fmt.Fprintf(w, "runtime:     %s, %s\n", count(len(s.Snapshot.Sandboxes), "sandbox", "sandboxes"), count(len(s.Snapshot.Containers), "container", "containers"))
	}
}

func printScan(w io.Writer, src string, s *engine.Scan) {
	printHeader(w, src, s)
	if s.NoPodRoot {
		return
	}
	fmt.Fprintln(w)
	others := otherDirsByPod(s)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATE\tACTION\tREASON\tAGE\tPATH")
	row := func(it decide.Item, indent string) {
		reason := string(it.Reason)
		if it.Processes > 0 {
			reason += " (" + count(it.Processes, "process", "processes") + ")"
		}
		if n := it.LiveContainers; n > 0 {
			reason += " (" + count(n, "live container", "live containers") + ")"
		}
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, it.Kind, it.State, it.Action, reason, age(it.Age), it.Path)
	}
	nOther := 0
	for _, it := range s.Plan.Items {
		row(it, "")
		for _, c := range it.Children {
			row(c, "  ")
		}
		// Not a container: it is removed with its pod, never alone.
		for _, o := range others[it.Path] {
			fmt.Fprintf(tw, "  %s\t-\t%s\t%s\t-\t%s\n", otherKind, it.Action, otherReason, o)
			nOther++
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s\n", engine.SummaryLine(s, nil))
	if len(s.Plan.Kept) > 0 {
		var parts []string
		for r, n := range s.Plan.Kept {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
		slices.Sort(parts)
		fmt.Fprintf(w, "orphans kept by reason: %s\n", strings.Join(parts, " "))
	}
	if nOther > 0 {
		fmt.Fprintf(w, "%s: %s inside pod cgroups with names that are not container cgroups; each goes with its pod, never alone\n",
			otherKind, count(nOther, "directory", "directories"))
	}
	if s.Inventory != nil && len(s.Inventory.Skipped) > 0 {
		fmt.Fprintf(w, "left alone (not pod cgroups):\n")
		for _, sk := range s.Inventory.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", sk.Path, sk.Why)
		}
	}
	if n := len(decide.Removals(s.Plan)); n > 0 {
		fmt.Fprintf(w, "clean would remove %s\n", count(n, "orphan cgroup", "orphan cgroups"))
	}
}

// What scan shows for a directory inside a pod cgroup whose name is not a
// container cgroup's.
const (
	otherKind   = "other"
	otherReason = "not-a-container-name"
)

// otherDirsByPod lists, by pod cgroup path, the directories inside each pod
// whose names are not container cgroups.
func otherDirsByPod(s *engine.Scan) map[string][]string {
	out := map[string][]string{}
	if s.Inventory == nil {
		return out
	}
	for _, p := range s.Inventory.Pods {
		if len(p.Other) > 0 {
			out[p.Path] = slices.Sorted(slices.Values(p.Other))
		}
	}
	return out
}

// countRuntimeContainers sets each pod item's LiveContainers to the number
// of containers the runtime lists in the pod's sandboxes. The decision
// counted listed container cgroup directories instead (CRI-O's conmon
// scopes and dropped-infra directories included: four for a pod with one
// container), which is what a gate needs but not what an operator reads as
// "live containers". Call it after the plan has been used.
func countRuntimeContainers(s *engine.Scan) {
	podOf := make(map[string]string, len(s.Snapshot.Sandboxes))
	for _, sb := range s.Snapshot.Sandboxes {
		podOf[sb.ID] = sb.PodUID
	}
	n := map[string]int{}
	for _, c := range s.Snapshot.Containers {
		if uid, ok := podOf[c.SandboxID]; ok {
			n[uid]++
		}
	}
	for i := range s.Plan.Items {
		s.Plan.Items[i].LiveContainers = n[s.Plan.Items[i].PodUID]
	}
}

func printResults(w io.Writer, results []engine.Result) {
	if len(results) == 0 {
		fmt.Fprintln(w, "nothing to remove")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tKIND\tDIRS\tDETAIL\tPATH")
	for _, r := range results {
		detail := string(r.Reason)
		if r.Detail != "" {
			detail += ": " + r.Detail
		}
		if r.UnitStopped != "" {
			detail = "stopped " + r.UnitStopped
		}
		if len(r.Killed) > 0 {
			detail += fmt.Sprintf(" killed %v", r.Killed)
		}
		if detail == "" {
			detail = "-"
		}
		dirs := fmt.Sprint(r.Dirs)
		if r.Outcome == engine.WouldRemove {
			dirs = "-" // a dry run removes none
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Outcome, r.Item.Kind, dirs, detail, r.Item.Path)
	}
	tw.Flush()
}

// age shows how long ago a cgroup last changed. 0 is "not measured": the
// times of cgroups the runtime lists are not read (an idle pass stats
// nothing), so live pods show "-".
func age(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// count is "1 thing" or "N things".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
