package cow

// engineHooks are injection points: a test sets them, before the
// operations it orders start, to run its next step at an exact point of an
// engine operation instead of sleeping. nil: nothing runs. Production code
// never sets them.
type engineHooks struct {
	// holdWaitsForGC runs in holdSnapshot (CreateVolume from a snapshot)
	// just before it takes e.gc shared.
	holdWaitsForGC func()
	// deleteWaitsForGC runs in DeleteSnapshot, after it found the
	// snapshot, just before it takes e.gc.
	deleteWaitsForGC func()
	// inSyncRound runs in a volume's sync round after it captured the
	// changes, just before it syncs the data file (volID: the volume).
	// Set it before the engine's first volume is created.
	inSyncRound func(volID string)
	// deleteWaitsForTurn runs in DeleteVolume just before it takes the
	// volume's snapshot turn to count its pending snapshots.
	deleteWaitsForTurn func()
}
