package inventory

import "unsafe"

// arena hands out an inventory's long-lived paths and structs from large
// blocks. Reading a pod root makes as much short-lived garbage as it keeps
// (directory listings, stat paths) in the same size classes; kept objects
// scattered among it pin half-empty spans, and a 10,000-pod scan's heap
// grew half again over its live data. Blocks are filled front to back and
// never written again, so the strings cut from them never change.
type arena struct {
	buf  []byte
	pods []Pod
	ctrs []Container
}

const (
	arenaBytes = 64 << 10
	arenaPods  = 256
	arenaCtrs  = 512
)

// join is the cgroup path dir/name (dir clean, name one element).
func (a *arena) join(dir, name string) string {
	if dir == "/" {
		dir = ""
	}
	n := len(dir) + 1 + len(name)
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(arenaBytes, n))
	}
	start := len(a.buf)
	a.buf = append(a.buf, dir...)
	a.buf = append(a.buf, '/')
	a.buf = append(a.buf, name...)
	return unsafe.String(&a.buf[start], n)
}

// str is a copy of s in the arena.
func (a *arena) str(s string) string {
	if len(s) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < len(s) {
		a.buf = make([]byte, 0, max(arenaBytes, len(s)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return unsafe.String(&a.buf[start], len(s))
}

func (a *arena) pod() *Pod {
	if len(a.pods) == cap(a.pods) {
		a.pods = make([]Pod, 0, arenaPods)
	}
	a.pods = a.pods[:len(a.pods)+1]
	return &a.pods[len(a.pods)-1]
}

func (a *arena) container() *Container {
	if len(a.ctrs) == cap(a.ctrs) {
		a.ctrs = make([]Container, 0, arenaCtrs)
	}
	a.ctrs = a.ctrs[:len(a.ctrs)+1]
	return &a.ctrs[len(a.ctrs)-1]
}
