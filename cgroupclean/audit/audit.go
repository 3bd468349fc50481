// Package audit names the structured fields and message IDs that every
// decision and action is logged with. Field names are journald field names
// (upper case, see systemd.journal-fields(7)) so the journald hook passes them
// through unchanged and an auditor can filter on them with journalctl.
// The message IDs are described in systemd/cgroupclean.catalog.
package audit

// Structured field names.
const (
	MessageID     = "MESSAGE_ID"
	CgroupPath    = "CGROUP_PATH"
	PodUID        = "POD_UID"
	ContainerID   = "CONTAINER_ID"
	Unit          = "UNIT"
	Action        = "ACTION"
	Reason        = "REASON"
	DryRun        = "DRY_RUN"
	Pass          = "PASS"
	Hierarchy     = "HIERARCHY"
	Kind          = "CGROUP_KIND"
	Error         = "ERROR"
	DurationMS    = "DURATION_MS"
	Pids          = "PIDS"
	Processes     = "PROCESSES"
	RemovedDirs   = "REMOVED_DIRS"
	Removed       = "REMOVED"
	Kept          = "KEPT"
	Failed        = "FAILED"
	Live          = "LIVE"
	Orphans       = "ORPHANS"
	Endpoint      = "CRI_ENDPOINT"
	MemcgDying    = "MEMCG_DYING"
	MemcgLatency  = "MEMCG_STAT_LATENCY_US"
	MemcgTrigger  = "MEMCG_TRIGGER"
	MemcgFreed    = "MEMCG_FREED_BYTES"
	ConfigFile    = "CONFIG_FILE"
	SyslogIdent   = "SYSLOG_IDENTIFIER"
	DefaultIdent  = "cgroupcleand"
	ActionRemove  = "remove"
	ActionStop    = "stop-unit"
	ActionKill    = "kill"
	ActionKeep    = "keep"
	ActionReclaim = "reclaim"
	ActionDrop    = "drop-caches"
)

// Message IDs: one fixed 128-bit id per kind of event (journalctl MESSAGE_ID=...).
const (
	IDOrphanRemoved      = "4f0d1c7e2b8a4d6f9a1e3c5b7d9f0a21"
	IDRemovalRefused     = "9b2e4f6a8c0d4e1f8a3b5c7d9e1f2a43"
	IDUnitStopped        = "c3a5e7f9b1d34f2a8c4e6a8b0d2f4a65"
	IDPassSummary        = "1e3f5a7c9b2d4e6f8a0c2e4a6b8d0f87"
	IDRuntimeUnreachable = "7a9c1e3f5b7d4f9a8b1c3e5d7f9b1ca9"
	IDMemcgAction        = "e5f7a9c1d3b54a7c8e9f1b3d5a7c9ecb"
	IDRemovalFailed      = "2d4f6b8a0c1e4a3b9c5d7e9f1b3d5fed"
	IDProcessesKilled    = "8f1a3c5e7b9d4c2e8f4a6c8e0a2c4b0f"
	IDConfigReloaded     = "5c7e9a1b3d5f4e8a9b2d4f6a8c0e2d31"
	IDMemcgHealth        = "a1c3e5f7092b4d6f8b1d3f5a7c9e0b53"
)

// Fields of the unknown state: a source of truth (the runtime, kubelet)
// could not be asked, so a cgroup may be live and is never called an
// orphan.
const (
	// State is live, orphan or unknown, on the entries of kept cgroups.
	State = "STATE"
	// Unknown counts the pod cgroups of unknown state in a pass summary.
	Unknown = "UNKNOWN"
)
