// Package live holds what the node's sources of truth say is alive: the pod
// sandboxes and containers the container runtime lists over CRI, and the pods
// kubelet still tracks on disk. The decision step keeps any cgroup that one
// of them names.
package live

import (
	"context"
	"time"
)

// Sandbox is one pod sandbox the runtime lists. READY and NOTREADY both mean
// the pod is live: a NOTREADY sandbox still owns its cgroups until removed.
type Sandbox struct {
	ID        string
	PodUID    string
	Name      string
	Namespace string
	Ready     bool
	CreatedAt time.Time
}

// Container is one container the runtime lists, in any state.
type Container struct {
	ID        string
	SandboxID string
	State     string
}

// Snapshot is one answer of the runtime, taken at one moment.
type Snapshot struct {
	Sandboxes  []Sandbox
	Containers []Container
	TakenAt    time.Time
	// CgroupDriver is "systemd" or "cgroupfs" when the runtime reports it,
	// "" when it does not.
	CgroupDriver string
}

// Runtime lists the live sandboxes and containers. An error means the
// runtime could not be asked; callers must then remove nothing.
type Runtime interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Index is a snapshot by the keys cgroup names carry: pod UIDs, and the
// IDs of sandboxes and containers (a container's sandbox counts as listed
// too). One is built per pass and shared by the inventory and the decision,
// so both agree on what is listed.
type Index struct {
	// Sets: an empty value keeps each slot at the key's 16 bytes.
	uids map[string]struct{}
	ids  map[string]struct{}
}

// NewIndex indexes s.
func NewIndex(s Snapshot) *Index {
	x := &Index{uids: make(map[string]struct{}, len(s.Sandboxes)), ids: make(map[string]struct{}, len(s.Sandboxes)+len(s.Containers))}
	for _, sb := range s.Sandboxes {
		x.uids[sb.PodUID] = struct{}{}
		x.ids[sb.ID] = struct{}{}
	}
	// A container's sandbox is normally listed already: only its own ID
	// makes a new entry.
	for _, c := range s.Containers {
		x.ids[c.ID] = struct{}{}
		x.ids[c.SandboxID] = struct{}{}
	}
	return x
}

// PodListed reports whether a sandbox of the pod is listed.
func (x *Index) PodListed(uid string) bool { _, ok := x.uids[uid]; return ok }

// IDListed reports whether a sandbox or container of that ID is listed.
func (x *Index) IDListed(id string) bool { _, ok := x.ids[id]; return ok }
