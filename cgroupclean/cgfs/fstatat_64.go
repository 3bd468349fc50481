//go:build linux && (amd64 || arm64 || ppc64 || ppc64le || riscv64 || s390x)

package cgfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFstatat is lstat of the NUL-terminated path p below dirfd, as
// unix.Fstatat does it on this platform, without converting a string.
func rawFstatat(dirfd int, p *byte, st *unix.Stat_t) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	return e
}
