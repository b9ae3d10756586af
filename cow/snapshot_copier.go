package cow

import (
	"context"
	"log/slog"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// snapshotCopier copies stored snapshots chunk by chunk into another store
// or lineage: CopySnapshot's copies (flushCopy, which the flusher runs;
// copy_snapshot.go) and the archive tier's (copyTier;
// snapshot_tier_copy.go). It keeps no state between copies: it is what a
// copy uses of the engine, and all it can reach. The engine makes one
// (newSnapshotCopier in newEngine).
type snapshotCopier struct {
	store    func(name string) (snapstore.Store, error)
	lookup   func(ctx context.Context, id string) (*snapshot, error)
	reader   *snapshotReader
	lineages *lineage.Cache
	meta     *meta.Store
	metaSync *groupSync
	log      *slog.Logger
	// ctx is the engine's background context (set once it has started).
	ctx func() context.Context
	// checkReadable refuses the reads of an archived snapshot
	// (snapshot_tier_state.go).
	checkReadable func(ctx context.Context, s *snapshot, fresh bool) error
	// flush is the flush machinery copies share with the flusher.
	flush copyFlusher
	// publisher makes the manifest publisher of a copy (manifest_publish.go).
	publisher func(st snapstore.Store, s *snapshot, k *lineage.Keys, lease *flushLease) *manifestPublisher
}

// copyFlusher is what a copy uses of the flusher's machinery: the target
// store's flush lease (gc.go), the chunk copy (chunk_copy.go), the end of
// an attempt's pack writer and the manifest of new segments (flusher.go),
// and the deletion of a hold (hydrate.go). The engine is one.
type copyFlusher interface {
	holdLease(ctx context.Context, st snapstore.Store, snapID string) (_ *flushLease, stop func(), err error)
	copyChunks(ctx context.Context, from copySource, k *lineage.Keys, blockSize int, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, replaced []uint64) (int, error)
	closePacks(pw *packWriter, failed bool, snapID string)
	newManifest(r meta.SnapshotRecord, segs map[uint64]snapfmt.SegmentRef) *snapfmt.Manifest
	dropHold(ctx context.Context, key string)
}

// newSnapshotCopier is the copier of engine e.
func newSnapshotCopier(e *Engine) *snapshotCopier {
	return &snapshotCopier{
		store: e.store, lookup: e.lookupSnapshot,
		reader: e.reader, lineages: e.lineages,
		meta: e.meta, metaSync: e.metaSync, log: e.log,
		ctx:           func() context.Context { return e.ctx },
		checkReadable: e.checkReadable,
		flush:         e,
		publisher: func(st snapstore.Store, s *snapshot, k *lineage.Keys, lease *flushLease) *manifestPublisher {
			return &manifestPublisher{log: e.log, st: st, s: s, k: k, lease: lease}
		},
	}
}

// copySegments copies the segments of source manifest sm, chunk by chunk
// from its store into packs of pw's under lineage k, and records them in
// segs.
func (c *snapshotCopier) copySegments(ctx context.Context, s *snapshot, from copySource, sm *snapfmt.Manifest, k *lineage.Keys, pw *packWriter, segs map[uint64]snapfmt.SegmentRef) error {
	r := s.record()
	dedup := newDedupIndex()
	sink := &segmentSink{st: pw.st, k: k, pw: pw, segs: segs}
	total, done := 0, 0
	for _, sr := range sm.Segments {
		total += sr.Blocks
	}
	for _, sr := range sm.Segments {
		if s.record().Deleted {
			return errDeletedMidFlush
		}
		seg, err := c.reader.loadSegment(ctx, from.st, sr.Key, from.k)
		if err != nil {
			return err
		}
		need, err := c.flush.copyChunks(ctx, from, k, r.BlockSize, pw, dedup, seg, nil)
		if err != nil {
			return err
		}
		if err := sink.add(ctx, sr.Index, seg, need); err != nil {
			return err
		}
		done += sr.Blocks
		s.mu.Lock()
		s.rec.Progress = min(99, done*100/max(total, 1))
		s.mu.Unlock()
	}
	return sink.finish(ctx)
}
