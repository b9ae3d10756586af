package cow

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// flushSourceBase is what a flush builds on: the volume's base snapshot.
type flushSourceBase struct {
	gen       uint64                        // the base's generation: changes after it are new
	segs      map[uint64]snapfmt.SegmentRef // the base's segments, replaced as the flush goes
	storeName string
	st        snapstore.Store
	k         *lineage.Keys
	// recode: the base's chunks are copied rather than referenced, when
	// they are in another store (a regional snapshot of a volume whose
	// next goes to the Outpost, or back) or of another lineage (an
	// encrypted volume made from a plaintext snapshot).
	recode bool
}

// flushBase reads the base of volume v's snapshot r.
func (f *flusher) flushBase(ctx context.Context, v *volume, r meta.SnapshotRecord) (*flushSourceBase, error) {
	v.mapMu.Lock()
	key, storeName, gen := v.record.BaseManifest, v.record.BaseStore, v.record.BaseGen
	v.mapMu.Unlock()
	b := &flushSourceBase{gen: gen, segs: map[uint64]snapfmt.SegmentRef{}, storeName: storeName}
	if key == "" {
		return b, nil
	}
	var err error
	if b.st, err = f.env.engine.store(storeName); err != nil {
		return nil, fmt.Errorf("%w: base of %s: %v", errPermanent, v.id, err)
	}
	bm, err := f.env.reader.loadManifest(ctx, b.st, key)
	if err != nil {
		return nil, fmt.Errorf("base manifest of %s: %w", v.id, err)
	}
	for _, sr := range bm.Segments {
		b.segs[sr.Index] = sr
	}
	if b.k, err = f.env.lineages.Get(lineage.FromFormat(bm.Encryption)); err != nil {
		return nil, fmt.Errorf("base of %s: %w", v.id, err)
	}
	b.recode = storeName != r.Store || !lineage.Same(lineage.FromFormat(bm.Encryption), r.Encryption)
	return b, nil
}

// extra are the base segments a flush visits though nothing changed in
// them: all of them when the base is recoded (copied over segment by
// segment), none otherwise.
func (b *flushSourceBase) extra() []uint64 {
	if !b.recode {
		return nil
	}
	idx := make([]uint64, 0, len(b.segs))
	for i := range b.segs {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// segmentPlanner gives a flush its segments in index order (a flushPlan,
// or a planAhead running one).
type segmentPlanner interface {
	nextSegment() (segmentPlan, bool, error)
}

// uploadSnapshot stores snapshot s's packs and segments, segment by
// segment as plan gives them, and records the segments in base.segs.
func (f *flusher) uploadSnapshot(ctx context.Context, s *snapshot, v *volume, k *lineage.Keys, pw *packWriter, base *flushSourceBase, plan segmentPlanner, total int) error {
	r := s.record()
	dedup := newDedupIndex()
	sink := &segmentSink{st: pw.st, k: k, pw: pw, segs: base.segs}
	var done atomic.Int64
	progress := func(blocks int) {
		n := done.Add(int64(blocks))
		s.mu.Lock()
		s.rec.Progress = min(99, int(n*100/int64(max(total, 1))))
		s.mu.Unlock()
	}
	for {
		if s.record().Deleted {
			return errDeletedMidFlush
		}
		if err := ctx.Err(); err != nil {
			return err // shutting down: resumes at the next start
		}
		sp, ok, err := plan.nextSegment()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		seg := snapfmt.Segment{}
		if ref, ok := base.segs[sp.idx]; ok {
			if seg, err = f.env.reader.loadSegment(ctx, base.st, ref.Key, base.k); err != nil {
				return err
			}
		}
		need := -1
		if base.recode {
			from := copySource{name: base.storeName, st: base.st, k: base.k}
			replaced := make([]uint64, len(sp.changes))
			for i, c := range sp.changes {
				replaced[i] = c.blk
			}
			if need, err = f.copyChunks(ctx, from, k, r.BlockSize, pw, dedup, seg, replaced); err != nil {
				return err
			}
		} else {
			dedup.addBase(seg)
		}
		n, err := f.uploadBlocks(ctx, v, k, pw, dedup, seg, sp.changes, progress)
		if err != nil {
			return err
		}
		if err := sink.add(ctx, sp.idx, seg, max(need, n)); err != nil {
			return err
		}
	}
	return sink.finish(ctx)
}

// uploadBlocks stores the changed blocks blks of one segment into packs
// and updates seg to name their chunks; it returns the highest pack
// sequence number seg now depends on (-1 for none). Zero versions and
// all-zero blocks leave seg. Workers take the changes in batches of
// consecutive blocks (flush_batch.go).
func (f *flusher) uploadBlocks(ctx context.Context, v *volume, k *lineage.Keys, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, blks []blockChange, progress func(int)) (int, error) {
	var (
		mu       sync.Mutex
		firstErr error
		need     = -1
		wg       sync.WaitGroup
	)
	batches := flushBatches(blks, int(v.blockSize))
	work := make(chan []blockChange)
	for range min(flushWorkers, max(1, len(batches))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bu := f.newBatchUploader(v, k, pw, dedup)
			defer bu.close()
			for batch := range work {
				res, seq, err := bu.upload(ctx, batch)
				mu.Lock()
				if err != nil {
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					continue
				}
				for _, r := range res {
					if r.zero {
						delete(seg, r.off)
					} else {
						seg[r.off] = r.loc
					}
				}
				need = max(need, seq)
				mu.Unlock()
				progress(len(batch))
			}
		}()
	}
feed:
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return need, firstErr
}
