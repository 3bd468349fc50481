package decide

// Reason names why a cgroup is kept (or, for live ones, why it is live).
// Each becomes the REASON field of its journal entry and a metric label, so
// names are stable: add new ones, never rename.
type Reason string

// Why a cgroup is live.
const (
	LiveSandbox   Reason = "live-sandbox"   // the runtime lists a sandbox of this pod UID
	LiveContainer Reason = "live-container" // the runtime lists this ID as a container or sandbox
)

// Why an orphan is kept, in the order the gates are checked.
const (
	RuntimeUnreachable    Reason = "runtime-unreachable"      // the runtime could not be asked: the whole pass removes nothing
	KubeletStateUnknown   Reason = "kubelet-state-unknown"    // kubelet's pod dirs could not be read
	KubeletTracksPod      Reason = "kubelet-tracks-pod"       // <kubelet_root>/pods/<uid> exists
	RuntimeListsContainer Reason = "runtime-lists-container"  // a container dir inside the pod is still listed
	ContainerRemovalOff   Reason = "container-removal-off"    // clean.remove_container_orphans = false
	TooYoung              Reason = "younger-than-min-age"     // changed less than min_age ago
	AwaitingConfirmation  Reason = "awaiting-confirmation"    // not yet seen orphaned in confirm_passes passes
	ProcessCheckFailed    Reason = "process-check-failed"     // its processes could not be counted
	HasProcesses          Reason = "has-processes"            // processes inside, kill_orphan_processes off
	MassGuardRuntimeEmpty Reason = "mass-guard-runtime-empty" // no sandbox listed while many pod cgroups exist
	MassGuardShare        Reason = "mass-guard-share"         // more than max_removal_share of pods would go
	RemovalLimit          Reason = "removal-limit"            // over max_removals_per_pass
	GoneSinceScan         Reason = "gone"                     // the directory disappeared by itself
	RuntimeListsNow       Reason = "runtime-lists-now"        // the runtime listed it when asked again before removal
	KubeletTracksNow      Reason = "kubelet-tracks-now"       // kubelet's pod dir appeared before removal
	ProcessesAppeared     Reason = "processes-appeared"       // processes found in the final check before removal
	SystemdUnreachable    Reason = "systemd-unreachable"      // a unit owns it but systemd could not be asked
	UnitNotOwned          Reason = "unit-cgroup-mismatch"     // the unit of that name owns another cgroup
	UnitJobPending        Reason = "unit-job-pending"         // systemd has another job (a start) queued for the unit: its stop was refused
	Busy                  Reason = "busy"                     // rmdir said EBUSY: the kernel still sees tasks or children
	RemoveFailed          Reason = "remove-failed"            // another error removing it
	KillFailed            Reason = "kill-failed"              // its processes could not all be killed
	RuntimeUnreachableNow Reason = "runtime-unreachable-now"  // the runtime failed when asked again before removal
	// The journal (or the log output outside systemd) did not take the
	// intent record of a step: the step was not taken (tried next pass).
	AuditUnavailable Reason = "audit-unavailable"
)

// The container mass guards, checked right after mass-guard-runtime-empty:
// a runtime that lists every sandbox but few or none of their containers
// makes the container cgroups of live pods look orphaned. Either refuses
// every removal of the pass.
const (
	// The runtime lists no container at all while live pods hold at least
	// mass_guard_min_pods container cgroups, some of them unlisted.
	MassGuardContainersUnlisted Reason = "mass-guard-containers-unlisted"
	// More than max_removal_share of the container cgroups in live pods
	// are unlisted.
	MassGuardContainerShare Reason = "mass-guard-container-share"
)
