package names

import "strings"

// systemd driver names (kubelet cgroup_manager_linux.go ToSystemd):
// each path level is a slice named after all its ancestors joined by "-",
// and the pod UID's dashes become underscores:
//
//	kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice
//	kubepods.slice/kubepods-pod<uid_>.slice (Guaranteed)

func systemdQoSDir(base string) (QoS, bool) {
	switch base {
	case "kubepods-burstable.slice":
		return Burstable, true
	case "kubepods-besteffort.slice":
		return BestEffort, true
	}
	return "", false
}

func systemdPodDir(qos QoS, base string) (string, bool) {
	prefix := "kubepods-pod"
	if qos != Guaranteed {
		prefix = "kubepods-" + string(qos) + "-pod"
	}
	if !strings.HasPrefix(base, prefix) || !strings.HasSuffix(base, ".slice") {
		return "", false
	}
	escaped := base[len(prefix) : len(base)-len(".slice")]
	if strings.Contains(escaped, "-") {
		// A raw "-" would be another slice level, not part of the UID.
		return "", false
	}
	uid := strings.ReplaceAll(escaped, "_", "-")
	if !validUID(uid) {
		return "", false
	}
	return uid, true
}

// SystemdPodSlice is the pod slice name kubelet gives a pod.
func SystemdPodSlice(qos QoS, uid string) string {
	escaped := strings.ReplaceAll(uid, "-", "_")
	if qos == Guaranteed {
		return "kubepods-pod" + escaped + ".slice"
	}
	return "kubepods-" + string(qos) + "-pod" + escaped + ".slice"
}

// IsSystemdUnit reports whether a directory name is a systemd unit's
// cgroup (a slice or a scope), which must be stopped through systemd
// rather than removed behind its back.
func IsSystemdUnit(base string) bool {
	return strings.HasSuffix(base, ".slice") || strings.HasSuffix(base, ".scope")
}
