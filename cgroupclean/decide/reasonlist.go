package decide

// Reasons is every named reason, in the order of reasons.go. Metrics
// pre-set one label value per reason from it, so a reason missing here
// reads "no data" instead of 0: TestReasonsListComplete fails when a Reason
// constant of this package or of engine is not listed.
var Reasons = []Reason{
	LiveSandbox, LiveContainer,
	RuntimeUnreachable, KubeletStateUnknown, KubeletTracksPod, RuntimeListsContainer,
	ContainerRemovalOff, TooYoung, AwaitingConfirmation, ProcessCheckFailed, HasProcesses,
	MassGuardRuntimeEmpty, MassGuardContainersUnlisted, MassGuardContainerShare, MassGuardShare,
	RemovalLimit, GoneSinceScan, RuntimeListsNow,
	KubeletTracksNow, ProcessesAppeared, SystemdUnreachable, UnitNotOwned, UnitJobPending, Busy,
	RemoveFailed, KillFailed, RuntimeUnreachableNow, AuditUnavailable,
}

// FailureReasons are the reasons of a removal that was tried and did not
// finish (engine.Failed); every other reason of an orphan is a refusal.
var FailureReasons = []Reason{Busy, RemoveFailed, KillFailed}

// RefusalReasons are the reasons an orphan is kept: Reasons without the
// live ones and the failures.
func RefusalReasons() []Reason {
	out := make([]Reason, 0, len(Reasons))
	for _, r := range Reasons {
		if r == LiveSandbox || r == LiveContainer || isFailure(r) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func isFailure(r Reason) bool {
	for _, f := range FailureReasons {
		if r == f {
			return true
		}
	}
	return false
}
