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
