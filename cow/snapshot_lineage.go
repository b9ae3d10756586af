package cow

import (
	"context"

	"github.com/cowvol/cowvol/meta"
)

// maxLineageDepth bounds the walk up a snapshot's ancestry.
const maxLineageDepth = 1000

// lineageRoot names the lineage of snapshot r for ListChangedBlocks: a
// snapshot written through the direct APIs is of its parent's lineage; a
// snapshot of a volume is of the lineage of the snapshot the volume was
// created from, else of the volume; any other (a copy, a direct snapshot
// without a parent) starts a lineage of its own. A link that can no longer
// be followed (a parent deleted, a volume deleted, so that its source is
// unknown) ends the walk there.
func (e *Engine) lineageRoot(ctx context.Context, r meta.SnapshotRecord) string {
	for range maxLineageDepth {
		next := r.Parent
		if next == "" && r.VolumeID != "" && r.VolumeID != CopyVolumeID {
			src, known := e.volumeSource(r.VolumeID)
			if !known || src == "" {
				return "vol:" + r.VolumeID
			}
			next = src
		}
		if next == "" {
			return "snap:" + r.ID
		}
		s, err := e.lookupSnapshot(ctx, next)
		if err != nil {
			return "snap:" + next
		}
		r = s.record()
	}
	return "snap:" + r.ID
}

// volumeSource is the snapshot volume id was created from ("" for none),
// and whether the volume is known.
func (e *Engine) volumeSource(id string) (string, bool) {
	v, err := e.lookup(id)
	if err != nil {
		return "", false
	}
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	return v.snapshot, true
}

// related reports whether snapshots a and b are of one lineage.
func (e *Engine) related(ctx context.Context, a, b meta.SnapshotRecord) bool {
	if a.VolumeID == b.VolumeID && a.VolumeID != CopyVolumeID && a.VolumeID != "" {
		return true
	}
	return e.lineageRoot(ctx, a) == e.lineageRoot(ctx, b)
}
