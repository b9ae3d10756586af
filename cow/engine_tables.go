package cow

import (
	"sync"
	"time"
)

// volumeTable is the engine's volumes. Its mu guards every field.
type volumeTable struct {
	mu        sync.Mutex
	byID      map[string]*volume
	closed    bool
	onRemoved func(id string)
	onResized func(id string) // volume_modify.go
}

// snapshotTable is the engine's snapshots: its own, and the catalogue of
// other daemons'. Its mu guards every field but catalogInterval, and is
// held only briefly: a volume's snapTurn, not mu, makes a fork's limit
// check and fork one step.
type snapshotTable struct {
	mu   sync.Mutex
	byID map[string]*snapshot
	// catalog: completed snapshots of other daemons, from the stores'
	// manifests.
	catalog         map[string]*snapshot
	catalogInterval time.Duration
	// inFlight is the flush under way (nil when none): a snapshot shows
	// completed before its flush has moved the volume's base and released
	// its frozen blocks, and DeleteVolume waits for that tail.
	inFlight *flight
}

// gcState is what garbage collection shares with the rest of the engine.
//
// The RWMutex is held shared by a snapshot flush (and by holdSnapshot) and
// exclusively by garbage collection and snapshot deletion, so that chunks
// a flush is about to reference are never collected under it.
//
// Lock order: gc; then a volume's snapTurn (several: in ID order); then
// snapshots.mu or volumes.mu; then a volume's fork, recMu and mapMu, in
// that order. No engine-wide lock is held across a sync round: a fork
// waits for its volume's data under the volume's snapTurn alone and takes
// snapshots.mu only briefly, never under the fork lock (volume_fork.go).
// Never take gc while holding volumes.mu or snapshots.mu (CreateVolume
// stores its hold before it takes volumes.mu; DeleteSnapshot lists the
// volumes before it takes gc): with a flush holding gc shared and a
// deletion waiting for it, a third party holding volumes.mu and waiting
// for gc would block every caller of volumes.mu for good. gc.mu and the
// caches' locks are leaves.
type gcState struct {
	sync.RWMutex
	// mu guards pending: per store, whether the last collection left
	// garbage in its grace period.
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{} // requestGC wakes gcLoop
	grace   time.Duration // how long unreferenced objects stay (Options.GCGrace)
}
