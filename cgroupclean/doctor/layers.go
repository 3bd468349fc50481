package doctor

import (
	"fmt"
)

// Why DefaultInodeThreshold is 100,000: kubelet's cAdvisor walks every
// container's writable layer (its fsHandler, about once a minute per
// container) to count bytes and inodes, and the runtime walks it again for
// ListContainerStats. The cost of a walk grows with the number of inodes:
// one stat per inode, and with cold dentry caches a disk read each. A few
// thousand inodes (an application and its caches) cost milliseconds; at
// 100,000 a walk takes a noticeable fraction of a second of CPU and I/O,
// once a minute, for one container: the point where one container's
// scratch files show in kubelet's own CPU.
const inodeSource = "cgroupclean's choice: cAdvisor's fsHandler walks each writable layer about once a minute, one stat per inode; at 100,000 inodes a walk costs a sizeable share of a second per container per minute (--inode-threshold changes it)"

// checkLayers flags the containers whose writable layer holds more inodes
// than the threshold, from the runtime's own figures (CRI
// ListContainerStats writable_layer): nothing is walked here.
func checkLayers(in Input, r *Report) {
	if in.ContainersErr != nil {
		r.notRun("writable layers (CRI ListContainerStats)", in.ContainersErr)
		return
	}
	if in.Scan == nil {
		return
	}
	nm := newNamer(in)
	podOf := map[string]string{}
	for _, sb := range in.Scan.Snapshot.Sandboxes {
		podOf[sb.ID] = sb.PodUID
	}
	thr := fmt.Sprintf("> %d inodes", in.InodeThreshold)
	withLayer, withInodes, flagged := 0, 0, 0
	for _, c := range in.Containers {
		if !c.HasLayer {
			continue
		}
		withLayer++
		if c.LayerInodes > 0 {
			withInodes++
		}
		if c.LayerInodes <= in.InodeThreshold {
			continue
		}
		flagged++
		r.add(Finding{ID: IDLayerHigh, Severity: Warn, Subject: nm.container(podOf[c.SandboxID], c.ID, c.ID), Value: float64(c.LayerInodes),
			Measured:  fmt.Sprintf("writable layer of container %s holds %d inodes, %d bytes (runtime's figures)", c.ID[:min(12, len(c.ID))], c.LayerInodes, c.LayerBytes),
			Threshold: thr, Source: inodeSource,
			Action: "have the application write scratch files to an emptyDir volume (or clean them up), not to its root filesystem: every file there is walked again each minute"})
	}
	f := Finding{ID: IDLayers, Severity: OK, Value: float64(flagged), Threshold: thr, Source: inodeSource,
		Measured: fmt.Sprintf("%d containers listed, %d with writable layer figures, %d over the threshold", len(in.Containers), withLayer, flagged)}
	if flagged > 0 {
		f.Severity = Warn
	}
	if withLayer > 0 && withInodes == 0 {
		f.Measured += "; the runtime reports 0 inodes for every layer: nothing written yet, not measured yet (containerd refreshes every 10 s), or a snapshotter that does not count them"
		if flagged == 0 {
			f.Severity = Info
		}
	}
	r.add(f)
}
