package cow

import (
	"context"

	"github.com/cowvol/cowvol/meta"
)

// maxLineageDepth bounds the walk up a snapshot's ancestry.
const maxLineageDepth = 1000

// snapshotLookup finds a snapshot by ID: Engine.lookupSnapshot (this
// daemon's, the catalogue's, or else the stores').
type snapshotLookup func(ctx context.Context, id string) (*snapshot, error)

// lineageWalk follows snapshots' ancestry, for ListChangedBlocks: it needs
// only to find snapshots and volumes by ID.
type lineageWalk struct {
	snapshot snapshotLookup
	volumes  volumeFinder
}

// root names the lineage of snapshot r for ListChangedBlocks: a
// snapshot written through the direct APIs is of its parent's lineage; a
// snapshot of a volume is of the lineage of the snapshot the volume was
// created from, else of the volume; any other (a copy, a direct snapshot
// without a parent) starts a lineage of its own. A link that can no longer
// be followed (a parent deleted, a volume deleted, so that its source is
// unknown) ends the walk there.
func (w lineageWalk) root(ctx context.Context, r meta.SnapshotRecord) string {
	for range maxLineageDepth {
		next := r.Parent
		if next == "" && r.VolumeID != "" && r.VolumeID != CopyVolumeID {
			src, known := w.volumeSource(r.VolumeID)
			if !known || src == "" {
				return "vol:" + r.VolumeID
			}
			next = src
		}
		if next == "" {
			return "snap:" + r.ID
		}
		s, err := w.snapshot(ctx, next)
		if err != nil {
			return "snap:" + next
		}
		r = s.record()
	}
	return "snap:" + r.ID
}

// volumeSource is the snapshot volume id was created from ("" for none),
// and whether the volume is known.
func (w lineageWalk) volumeSource(id string) (string, bool) {
	v, err := w.volumes.lookup(id)
	if err != nil {
		return "", false
	}
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	return v.snapshot, true
}

// related reports whether snapshots a and b are of one lineage.
func (w lineageWalk) related(ctx context.Context, a, b meta.SnapshotRecord) bool {
	if a.VolumeID == b.VolumeID && a.VolumeID != CopyVolumeID && a.VolumeID != "" {
		return true
	}
	return w.root(ctx, a) == w.root(ctx, b)
}
