package names

import "strings"

// ContainerKind says which runtime object a container cgroup belongs to.
type ContainerKind string

// Container cgroup kinds (CRI-O internal/config/cgmgr; containerd's CRI).
const (
	// CrioContainer is crio-<id>.scope (systemd) or crio-<id> (cgroupfs).
	// With the cgroupfs driver an empty crio-<sandboxID> dir is also what
	// CRI-O leaves for a dropped infra container (cri-o#6349).
	CrioContainer ContainerKind = "crio"
	// CrioConmon is crio-conmon-<id>.scope or crio-conmon-<id>.
	CrioConmon ContainerKind = "crio-conmon"
	// ContainerdScope is cri-containerd-<id>.scope (systemd driver).
	ContainerdScope ContainerKind = "cri-containerd"
	// BareID is a plain <64 hex> directory: containerd with cgroupfs names
	// sandbox and container cgroups by ID alone.
	BareID ContainerKind = "id"
)

// ParseContainerDir parses a container cgroup directory name inside a pod
// cgroup. Names it does not know are not containers and are never touched
// on their own.
func ParseContainerDir(base string) (id string, kind ContainerKind, ok bool) {
	name := strings.TrimSuffix(base, ".scope")
	scope := name != base
	switch {
	case strings.HasPrefix(name, "crio-conmon-"):
		id, kind = name[len("crio-conmon-"):], CrioConmon
	case strings.HasPrefix(name, "crio-"):
		id, kind = name[len("crio-"):], CrioContainer
	case strings.HasPrefix(name, "cri-containerd-"):
		if !scope {
			return "", "", false
		}
		id, kind = name[len("cri-containerd-"):], ContainerdScope
	case !scope:
		id, kind = name, BareID
	default:
		return "", "", false
	}
	if !isContainerID(id) {
		return "", "", false
	}
	return id, kind, true
}

// isContainerID accepts the 64 lower-case hex digits both runtimes use.
func isContainerID(id string) bool { return len(id) == 64 && isLowerHex(id) }
