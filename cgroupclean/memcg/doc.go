// Package memcg is the memcg health watchdog: it counts dying ("zombie")
// memory cgroups and times the memory.stat reads kubelet makes, and reclaims
// only when those measurements say so, in order of least harm: reclaim an
// orphan's memory cgroup before its rmdir (PreventZombie), targeted reclaim
// at the pod root, then a rate-limited global drop_caches.
//
// Data flows one way: Probe reads a Sample, the pure Watchdog turns samples,
// config and a clock into a Decision (an action or a named Reason for not
// acting), the Executor applies it, Watchdog.Record measures its effect.
//
// Kernel interfaces: Documentation/admin-guide/cgroup-v2.rst (cgroup.stat,
// memory.reclaim), cgroup-v1/memory.rst (memory.force_empty),
// Documentation/admin-guide/sysctl/vm.rst (drop_caches),
// Documentation/accounting/psi.rst (/proc/pressure).
package memcg
