// Package names turns cgroup directory names into domain values: which pod
// (UID, QoS class) or container (runtime, ID, kind) a directory belongs to.
// Names are parsed once here; everything downstream works with the values.
// The two kubelet cgroup drivers live in systemd.go and cgroupfs.go.
package names

import "strings"

// Driver is the kubelet/runtime cgroup driver, which decides the names.
type Driver string

// The two cgroup drivers.
const (
	Systemd  Driver = "systemd"
	Cgroupfs Driver = "cgroupfs"
)

// QoS is a pod's QoS class; Guaranteed pods sit directly under the pod root.
type QoS string

// QoS classes.
const (
	Guaranteed QoS = "guaranteed"
	Burstable  QoS = "burstable"
	BestEffort QoS = "besteffort"
)

// QoSClasses lists the classes that have their own parent cgroup.
var QoSClasses = []QoS{Burstable, BestEffort}

// DriverOfPodRoot guesses the driver from the pod root's base name:
// "kubepods.slice" (or any ".slice") is systemd, anything else cgroupfs.
func DriverOfPodRoot(podRoot string) Driver {
	if strings.HasSuffix(podRoot, ".slice") {
		return Systemd
	}
	return Cgroupfs
}

// ParseQoSDir reports whether base is the QoS parent directory of a class.
func ParseQoSDir(d Driver, base string) (QoS, bool) {
	if d == Systemd {
		return systemdQoSDir(base)
	}
	return cgroupfsQoSDir(base)
}

// ParsePodDir parses a pod cgroup directory name. qos is the class of the
// parent directory (Guaranteed when the parent is the pod root).
func ParsePodDir(d Driver, qos QoS, base string) (uid string, ok bool) {
	if d == Systemd {
		return systemdPodDir(qos, base)
	}
	return cgroupfsPodDir(base)
}

// validUID accepts what kubelet puts in pod cgroup names: UUIDs and the
// 32-hex hashes of static pods. Anything else is not a pod we know; such a
// directory is never touched.
func validUID(uid string) bool {
	if len(uid) == 0 || len(uid) > 64 {
		return false
	}
	for i := 0; i < len(uid); i++ {
		c := uid[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return uid[0] != '-' && uid[len(uid)-1] != '-'
}
