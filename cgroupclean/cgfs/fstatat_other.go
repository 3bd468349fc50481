//go:build linux && !(amd64 || arm64 || ppc64 || ppc64le || riscv64 || s390x)

package cgfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFstatat is lstat of the NUL-terminated path p below dirfd (allocating:
// the syscall that fills unix.Stat_t differs on 32-bit platforms).
func rawFstatat(dirfd int, p *byte, st *unix.Stat_t) unix.Errno {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	if err := unix.Fstatat(dirfd, unsafe.String(p, n), st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if e, ok := err.(unix.Errno); ok {
			return e
		}
		return unix.EINVAL
	}
	return 0
}
