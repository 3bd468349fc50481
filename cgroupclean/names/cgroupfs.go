package names

import "strings"

// cgroupfs driver names (kubelet ToCgroupfs): plain directories,
//
//	kubepods/burstable/pod<uid>, kubepods/besteffort/pod<uid>, kubepods/pod<uid>

func cgroupfsQoSDir(base string) (QoS, bool) {
	switch base {
	case "burstable":
		return Burstable, true
	case "besteffort":
		return BestEffort, true
	}
	return "", false
}

func cgroupfsPodDir(base string) (string, bool) {
	uid, ok := strings.CutPrefix(base, "pod")
	if !ok || !validUID(uid) {
		return "", false
	}
	return uid, true
}
