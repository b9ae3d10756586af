package cow

import (
	"context"
	"errors"
	"fmt"
	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"maps"
	"slices"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// This file is the seam between the EBS direct APIs (snapshot_blocks.go,
// direct_snapshot.go) and the snapshot format: every call they make into
// manifests, segments, packs and chunks goes through the few functions
// here, so that a change of the format code touches this file only.

// storedView is a completed snapshot opened for reading: its record, its
// store, its manifest (segments opened) and its lineage's keys.
type storedView struct {
	rec  meta.SnapshotRecord
	st   snapstore.Store
	m    *snapfmt.Manifest
	k    *lineage.Keys
	zero snapfmt.ChunkID // the ID an all-zero block would have: never stored
}

// openStored opens completed snapshot r's manifest. An encrypted one needs
// its KMS key usable.
func (e *Engine) openStored(ctx context.Context, r meta.SnapshotRecord) (*storedView, error) {
	st, err := e.store(r.Store)
	if err != nil {
		return nil, err
	}
	m, err := e.reader.loadManifest(ctx, st, snapfmt.ManifestKey(r.ID))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s was deleted", ErrSnapshotNotFound, r.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	k, err := e.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	v := &storedView{rec: r, st: st, m: m, k: k}
	v.zero = snapfmt.ChunkIDOf(k.Format(), make([]byte, m.BlockSize))
	return v, nil
}

// storedChunk is one stored block of a snapshot: its index (in the
// snapshot's own block size) and its chunk's ID.
type storedChunk struct {
	blk uint64
	id  snapfmt.ChunkID
}

// chunksFrom calls fn with the snapshot's stored blocks from block from
// on, in block order, until fn returns false. All-zero blocks are not
// stored and not listed.
func (v *storedView) chunksFrom(ctx context.Context, e *Engine, from uint64, fn func(storedChunk) bool) error {
	i, _ := searchSegments(v.m.Segments, from>>snapfmt.SegmentShift)
	for ; i < len(v.m.Segments); i++ {
		ref := v.m.Segments[i]
		seg, err := e.reader.sharedSegment(ctx, v.st, ref.Key, v.k)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", v.rec.ID, err)
		}
		base := ref.Index << snapfmt.SegmentShift
		for _, en := range seg.Entries {
			blk := base + uint64(en.Off)
			if blk < from || en.Loc.ID == v.zero {
				continue
			}
			if !fn(storedChunk{blk: blk, id: en.Loc.ID}) {
				return nil
			}
		}
	}
	return nil
}

// readBlock fills dst (one block of the snapshot's size) with block blk.
func (v *storedView) readBlock(ctx context.Context, e *Engine, blk uint64, dst []byte) error {
	return e.reader.readStoredBlock(ctx, v.rec.Store, snapfmt.ManifestKey(v.rec.ID), blk, dst)
}

// sameChunkIDs reports whether equal chunk IDs in a and b mean equal
// blocks: both plaintext (SHA-256) or both of one encrypted lineage.
func sameChunkIDs(a, b *storedView) bool {
	if a.k == nil || b.k == nil {
		return a.k == nil && b.k == nil
	}
	return lineage.Same(&a.k.Enc, &b.k.Enc)
}

// blockWriter stores the blocks of a snapshot written through the direct
// APIs into packs, as a flush does: each content once (dedup against the
// parent's segments too), compressed, sealed in an encrypted lineage.
type blockWriter struct {
	st    snapstore.Store
	k     *lineage.Keys
	pw    *packWriter
	dedup *dedupIndex
}

func newBlockWriter(ctx context.Context, st snapstore.Store, k *lineage.Keys) *blockWriter {
	return &blockWriter{st: st, k: k, pw: newPackWriter(ctx, st), dedup: newDedupIndex()}
}

// directChunk is where a written block's chunk is, and the pack sequence
// number it waits for; zero marks an all-zero block (stored as nothing).
type directChunk struct {
	loc  snapfmt.Loc
	seq  int
	zero bool
}

// put stores block (one block of the snapshot's size) unless an equal one
// is stored already.
func (w *blockWriter) put(block []byte) (directChunk, error) {
	if isZero(block) {
		return directChunk{zero: true, seq: -1}, nil
	}
	loc, seq, err := w.dedup.store(snapfmt.ChunkIDOf(w.k.Format(), block), func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
		return w.pw.add(id, snapfmt.EncodeChunk(w.k.Format(), nil, id, block))
	})
	return directChunk{loc: loc, seq: seq}, err
}

// addBase lets the writer reuse the chunks of a parent's segment.
func (w *blockWriter) addBase(seg snapfmt.Segment) { w.dedup.addBase(seg) }

// parentSegment loads segment idx of the parent (nil when it has none),
// in the mutable form.
func (e *Engine) parentSegment(ctx context.Context, p *storedView, idx uint64) (snapfmt.Segment, error) {
	i, ok := searchSegments(p.m.Segments, idx)
	if !ok {
		return nil, nil
	}
	return e.reader.loadSegment(ctx, p.st, p.m.Segments[i].Key, p.k)
}

// directSegments builds the segments of a written snapshot: the parent's
// (recoded into the writer's lineage when recode), with the written
// blocks (by block index) applied. It returns the segment references.
func (e *Engine) directSegments(ctx context.Context, w *blockWriter, parent *storedView, recode bool, blockSize int, written map[uint64]directChunk) (map[uint64]snapfmt.SegmentRef, error) {
	segs := map[uint64]snapfmt.SegmentRef{}
	byIdx := map[uint64][]uint64{}
	if parent != nil {
		for _, sr := range parent.m.Segments {
			segs[sr.Index] = sr
			if recode {
				byIdx[sr.Index] = nil
			}
		}
	}
	for blk := range written {
		byIdx[blk>>snapfmt.SegmentShift] = append(byIdx[blk>>snapfmt.SegmentShift], blk)
	}
	sink := &segmentSink{st: w.st, k: w.k, pw: w.pw, segs: segs}
	for _, idx := range slices.Sorted(maps.Keys(byIdx)) {
		seg := snapfmt.Segment{}
		if parent != nil {
			ps, err := e.parentSegment(ctx, parent, idx)
			if err != nil {
				return nil, err
			}
			if ps != nil {
				seg = ps
			}
		}
		need := -1
		if recode {
			from := copySource{name: parent.rec.Store, st: parent.st, k: parent.k}
			n, err := e.copyChunks(ctx, from, w.k, blockSize, w.pw, w.dedup, seg, byIdx[idx])
			if err != nil {
				return nil, err
			}
			need = n
		}
		for _, blk := range byIdx[idx] {
			c, off := written[blk], uint32(blk&(1<<snapfmt.SegmentShift-1))
			if c.zero {
				delete(seg, off)
				continue
			}
			seg[off] = c.loc
			need = max(need, c.seq)
		}
		if err := sink.add(ctx, idx, seg, need); err != nil {
			return nil, err
		}
	}
	if err := sink.finish(ctx); err != nil {
		return nil, err
	}
	return segs, nil
}

// publishDirect stores the manifest of written snapshot r, of segments
// segs, and returns it; the snapshot is complete in every reader's eyes
// once this returns. It publishes as flushes and copies do
// (manifestPublisher): a manifest already stored under r's key is adopted
// if it is r's and refused if it is another snapshot's, never overwritten.
func (e *Engine) publishDirect(ctx context.Context, w *blockWriter, r meta.SnapshotRecord, lease *flushLease, segs map[uint64]snapfmt.SegmentRef) (*snapfmt.Manifest, error) {
	pub := &manifestPublisher{log: e.log, st: w.st, s: &snapshot{rec: r}, k: w.k, lease: lease}
	m, _, err := pub.adopt(ctx)
	if err == nil && m == nil {
		m, _, err = pub.publish(ctx, e.newManifest(r, segs))
	}
	if err != nil {
		return nil, err
	}
	e.reader.cacheManifest(w.st, snapfmt.ManifestKey(r.ID), m)
	return m, nil
}

// discardWriter ends a writer whose snapshot will not complete: its stored
// packs are deleted, best effort.
func (e *Engine) discardWriter(w *blockWriter, snapID string) { e.closePacks(w.pw, true, snapID) }

// packsStored is how many packs the writer stored (after close).
func (w *blockWriter) packsStored() int { return w.pw.packs }

// forget drops what the writer keeps in memory to dedup (it writes no
// more).
func (w *blockWriter) forget() { w.dedup = nil }

// close waits for a completed writer's uploads.
func (w *blockWriter) close() { w.pw.abort() }
