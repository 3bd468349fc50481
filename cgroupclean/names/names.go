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

// validUID accepts exactly the pod UIDs kubelet puts in pod cgroup names:
//   - a canonical UUID, 8-4-4-4-12 lower-case hex digits (the API server's
//     metadata.uid, which google/uuid writes in lower case);
//   - 32 lower-case hex digits, the UID kubelet gives a static pod that
//     has none (hex of an MD5 hash, pkg/kubelet/config/common.go).
//
// Upper case is refused: neither source writes it, and the runtime
// reports the UID in kubelet's spelling, so an upper-case directory could
// never match a listed sandbox and would read as an orphan. Anything else
// is not a pod we know; such a directory is reported and never touched.
func validUID(uid string) bool {
	switch len(uid) {
	case 32:
		return isLowerHex(uid)
	case 36:
		for i := 0; i < len(uid); i++ {
			dash := i == 8 || i == 13 || i == 18 || i == 23
			if dash != (uid[i] == '-') || !dash && !isLowerHexDigit(uid[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isLowerHexDigit(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHexDigit(s[i]) {
			return false
		}
	}
	return true
}
