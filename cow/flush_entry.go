package cow

import (
	"context"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// What the engine's other concerns call of the flusher and the hydrator,
// as Engine methods: snapshot creation and copies wake the flusher; copies
// (copy_snapshot.go, snapshot_tier_copy.go) and EBS direct snapshots
// (direct_format.go, direct_snapshot.go) store packs, copy chunks, write
// manifests and drop holds as a flush does. Each only delegates.

// wakeFlusher tells the flusher a snapshot may be pending.
func (e *Engine) wakeFlusher() { e.flusher.wakeUp() }

// closePacks: see flusher.closePacks.
func (e *Engine) closePacks(pw *packWriter, failed bool, snapID string) {
	e.flusher.closePacks(pw, failed, snapID)
}

// unpublish: see flusher.unpublish.
func (e *Engine) unpublish(r meta.SnapshotRecord) error { return e.flusher.unpublish(r) }

// newManifest: see flusher.newManifest.
func (e *Engine) newManifest(r meta.SnapshotRecord, segs map[uint64]snapfmt.SegmentRef) *snapfmt.Manifest {
	return e.flusher.newManifest(r, segs)
}

// copyChunks: see flusher.copyChunks.
func (e *Engine) copyChunks(ctx context.Context, from copySource, k *lineage.Keys, blockSize int, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, replaced []uint64) (int, error) {
	return e.flusher.copyChunks(ctx, from, k, blockSize, pw, dedup, seg, replaced)
}

// dropHold: see hydrator.dropHold.
func (e *Engine) dropHold(ctx context.Context, key string) { e.hydrator.dropHold(ctx, key) }
