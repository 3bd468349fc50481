// Package audit names the structured fields and message IDs that every
// decision and action is logged with. Field names are journald field names
// (upper case, see systemd.journal-fields(7)) so the journald hook passes them
// through unchanged and an auditor can filter on them with journalctl.
// The message IDs are described in systemd/cgroupclean.catalog.
//
// Records of actions (IsActionRecord) are written whatever log.level says:
// an intent record before each action that changes the node (kill, unit
// stop, rmdir), an outcome record after it, both with the same ACTION_ID
// and ACTION, so an intent without its outcome marks an action that was cut
// short (a crash, a SIGKILL).
package audit

// Structured field names.
const (
	MessageID    = "MESSAGE_ID"
	CgroupPath   = "CGROUP_PATH"
	PodUID       = "POD_UID"
	ContainerID  = "CONTAINER_ID"
	Unit         = "UNIT"
	Action       = "ACTION"
	Reason       = "REASON"
	DryRun       = "DRY_RUN"
	Pass         = "PASS"
	Hierarchy    = "HIERARCHY"
	Kind         = "CGROUP_KIND"
	Error        = "ERROR"
	DurationMS   = "DURATION_MS"
	Pids         = "PIDS"
	Processes    = "PROCESSES"
	RemovedDirs  = "REMOVED_DIRS"
	Removed      = "REMOVED"
	Kept         = "KEPT"
	Failed       = "FAILED"
	Live         = "LIVE"
	Orphans      = "ORPHANS"
	Endpoint     = "CRI_ENDPOINT"
	MemcgDying   = "MEMCG_DYING"
	MemcgLatency = "MEMCG_STAT_LATENCY_US"
	MemcgTrigger = "MEMCG_TRIGGER"
	MemcgFreed   = "MEMCG_FREED_BYTES"
	ConfigFile   = "CONFIG_FILE"
	// ActionID is shared by the intent and outcome records of the steps
	// of one removal (kill, stop-unit, remove).
	ActionID = "ACTION_ID"
	// Hierarchies names (space-separated) the hierarchies a removal will
	// rmdir in; RemovedHierarchies those where every directory is gone,
	// FailedHierarchies those where a directory is left.
	Hierarchies        = "HIERARCHIES"
	RemovedHierarchies = "REMOVED_HIERARCHIES"
	FailedHierarchies  = "FAILED_HIERARCHIES"
	// Dirs is how many directories a removal will rmdir.
	Dirs = "DIRS"
	// Count and Examples are a kept summary's number of cgroups and a few
	// of their paths (space-separated; a path with a space is quoted).
	Count    = "COUNT"
	Examples = "EXAMPLES"
	// JournalDropped counts the entries journald did not take (stalled or
	// gone) before the record that carries it; JournalMissedMS is how long
	// that lasted.
	JournalDropped  = "JOURNAL_DROPPED"
	JournalMissedMS = "JOURNAL_MISSED_MS"
	SyslogIdent     = "SYSLOG_IDENTIFIER"
	DefaultIdent    = "cgroupcleand"
	ActionRemove    = "remove"
	ActionStop      = "stop-unit"
	ActionKill      = "kill"
	ActionKeep      = "keep"
	ActionReclaim   = "reclaim"
	ActionDrop      = "drop-caches"
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
	IDActionIntent       = "c35dacc3ac2944cabbb4b3a12d183f9e"
	IDKeptSummary        = "75d082cc6dac4c5ea06d6e905105246f"
	IDJournalDropped     = "f6e5092d3be3489ba589861e3a951ee8"
	// IDWouldRemove: observe mode, an orphan that passed every gate and
	// final check and that act mode would have removed.
	IDWouldRemove = "fe3c9eaba55b41e2ab17a584edc8194c"
	// IDActionRefused is the outcome of a step whose intent was written
	// but that did not act: a check right before it said no, or the
	// intent record itself was not taken (REASON audit-unavailable).
	IDActionRefused = "0b7d2e94c6a14f3e8d51a9c2f7e06b38"
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

// IsActionRecord reports whether id is the MESSAGE_ID of a record of an
// action (its intent or its outcome), or of the notice that such records
// were lost: they are written at every log level.
func IsActionRecord(id string) bool {
	switch id {
	case IDActionIntent, IDOrphanRemoved, IDRemovalFailed, IDUnitStopped, IDProcessesKilled, IDMemcgAction, IDJournalDropped,
		IDWouldRemove, IDActionRefused:
		return true
	}
	return false
}
