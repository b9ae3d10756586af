package cow

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cowvol/cowvol/meta"
)

// DirectBlockSize is the block of the EBS direct APIs: 512 KiB, whatever
// the snapshot's own block size. A direct block spans several of a
// snapshot's blocks when these are smaller, and part of one when larger.
const DirectBlockSize = 512 << 10

// Errors of the EBS direct APIs, for callers to test with errors.Is.
var (
	// ErrUnrelatedSnapshots: ListChangedBlocks of two snapshots of
	// different lineages.
	ErrUnrelatedSnapshots = errors.New("the snapshots are not of one volume or snapshot lineage")
	// ErrBlockIndex: a direct block index at or past the snapshot's end.
	ErrBlockIndex = errors.New("block index past the end of the snapshot")
)

// ChangedBlock is a direct block that differs between two snapshots:
// InFirst and InSecond say whether each snapshot stores data for it (a
// block that is not stored reads as zeros).
type ChangedBlock struct {
	Index    int64
	InFirst  bool
	InSecond bool
}

// DirectBlocks returns the number of direct blocks of a volume of size
// bytes.
func DirectBlocks(size int64) int64 { return (size + DirectBlockSize - 1) / DirectBlockSize }

// directReads is what the EBS direct APIs' reads use of the engine: the
// lookups of snapshots (and their lineages), the archive tier's check that
// a snapshot is readable, the snapshot reader and read buffers.
type directReads struct {
	snapshot snapshotLookup
	lineage  lineageWalk
	// readable is Engine.checkReadable (snapshot_tier_state.go).
	readable func(ctx context.Context, s *snapshot, fresh bool) error
	reader   *snapshotReader
	buffers  *bufferPool
}

// newDirectReads is what the direct reads use of e.
func newDirectReads(e *Engine) directReads {
	return directReads{
		snapshot: e.lookupSnapshot,
		lineage:  lineageWalk{snapshot: e.lookupSnapshot, volumes: e},
		readable: e.checkReadable, reader: e.reader, buffers: &e.buffers,
	}
}

// completedView opens completed snapshot id of this account for the
// direct APIs.
func (d directReads) completedView(ctx context.Context, id string) (*storedView, error) {
	s, err := d.snapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.owner != "" {
		return nil, fmt.Errorf("%w: snapshot %s belongs to account %s", ErrNotOwner, id, s.owner)
	}
	r := s.record()
	if r.State != string(SnapshotCompleted) {
		return nil, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, id, r.State)
	}
	if err := d.readable(ctx, s, false); err != nil {
		return nil, err
	}
	return d.reader.openStored(ctx, r)
}

// directIndex is the direct block holding byte blk*blockSize.
func directIndex(blk uint64, blockSize int) int64 {
	return int64(blk * uint64(blockSize) / DirectBlockSize)
}

// firstBlock is the first block of size blockSize in direct block idx.
func firstBlock(idx int64, blockSize int) uint64 {
	return uint64(idx) * DirectBlockSize / uint64(blockSize)
}

// ListSnapshotBlocks returns the direct blocks of completed snapshot id
// that hold data, from index start on, at most limit of them, and the
// index to resume from (-1 when there are no more). Its info comes with
// them.
func (e *Engine) ListSnapshotBlocks(ctx context.Context, id string, start int64, limit int) ([]int64, int64, SnapshotInfo, error) {
	return e.directReads.listBlocks(ctx, id, start, limit)
}

// listBlocks is ListSnapshotBlocks.
func (d directReads) listBlocks(ctx context.Context, id string, start int64, limit int) ([]int64, int64, SnapshotInfo, error) {
	v, err := d.completedView(ctx, id)
	if err != nil {
		return nil, -1, SnapshotInfo{}, err
	}
	var out []int64
	next := int64(-1)
	if start >= DirectBlocks(v.m.VolumeSize) {
		return out, next, infoOf(v.rec), nil
	}
	err = v.chunksFrom(ctx, firstBlock(start, v.m.BlockSize), func(c storedChunk) bool {
		idx := directIndex(c.blk, v.m.BlockSize)
		if idx < start || (len(out) > 0 && out[len(out)-1] == idx) {
			return true
		}
		if len(out) == limit {
			next = idx
			return false
		}
		out = append(out, idx)
		return true
	})
	if err != nil {
		return nil, -1, SnapshotInfo{}, err
	}
	return out, next, infoOf(v.rec), nil
}

func infoOf(r meta.SnapshotRecord) SnapshotInfo { return (&snapshot{rec: r}).info() }

// ReadSnapshotBlock fills dst (DirectBlockSize bytes) with direct block
// idx of completed snapshot id; past the volume's end it reads zeros.
func (e *Engine) ReadSnapshotBlock(ctx context.Context, id string, idx int64, dst []byte) (SnapshotInfo, error) {
	return e.directReads.readBlock(ctx, id, idx, dst)
}

// readBlock is ReadSnapshotBlock.
func (d directReads) readBlock(ctx context.Context, id string, idx int64, dst []byte) (SnapshotInfo, error) {
	v, err := d.completedView(ctx, id)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if idx < 0 || idx >= DirectBlocks(v.m.VolumeSize) {
		return SnapshotInfo{}, fmt.Errorf("%w: block %d of %s, which has %d", ErrBlockIndex, idx, id, DirectBlocks(v.m.VolumeSize))
	}
	return infoOf(v.rec), v.readDirect(ctx, d.buffers, idx, dst[:DirectBlockSize])
}

// readDirect reads direct block idx of v into dst; a block larger than a
// direct one is read into a buffer of bufs.
func (v *storedView) readDirect(ctx context.Context, bufs *bufferPool, idx int64, dst []byte) error {
	bs := v.m.BlockSize
	nblk := uint64(v.m.VolumeSize / int64(bs))
	if bs > DirectBlockSize {
		buf := bufs.get(bs)
		defer bufs.put(buf)
		blk := firstBlock(idx, bs)
		if blk >= nblk {
			clear(dst)
			return nil
		}
		if err := v.readBlock(ctx, blk, buf); err != nil {
			return err
		}
		in := uint64(idx)*DirectBlockSize - blk*uint64(bs)
		copy(dst, buf[in:in+DirectBlockSize])
		return nil
	}
	blk := firstBlock(idx, bs)
	for off := 0; off < DirectBlockSize; off, blk = off+bs, blk+1 {
		if blk >= nblk {
			clear(dst[off:])
			return nil
		}
		if err := v.readBlock(ctx, blk, dst[off:off+bs]); err != nil {
			return err
		}
	}
	return nil
}

// ListChangedBlocks returns the direct blocks that differ between
// completed snapshots first and second, of one lineage, in either order,
// from index start on: at most limit of them, and the index to resume from
// (-1 when there are no more). A page may hold fewer than limit blocks
// with more to come. The second snapshot's info comes with them.
func (e *Engine) ListChangedBlocks(ctx context.Context, first, second string, start int64, limit int) ([]ChangedBlock, int64, SnapshotInfo, error) {
	return e.directReads.listChanged(ctx, first, second, start, limit)
}

// listChanged is ListChangedBlocks.
func (d directReads) listChanged(ctx context.Context, first, second string, start int64, limit int) ([]ChangedBlock, int64, SnapshotInfo, error) {
	a, err := d.completedView(ctx, first)
	if err != nil {
		return nil, -1, SnapshotInfo{}, err
	}
	b, err := d.completedView(ctx, second)
	if err != nil {
		return nil, -1, SnapshotInfo{}, err
	}
	if !d.lineage.related(ctx, a.rec, b.rec) {
		return nil, -1, SnapshotInfo{}, fmt.Errorf("%w: %s and %s", ErrUnrelatedSnapshots, first, second)
	}
	if start >= max(DirectBlocks(a.m.VolumeSize), DirectBlocks(b.m.VolumeSize)) {
		return nil, -1, infoOf(b.rec), nil
	}
	diff := differ{buffers: d.buffers, a: a, b: b, limit: limit}
	diff.byID = a.m.BlockSize == b.m.BlockSize && a.m.BlockSize <= DirectBlockSize && sameChunkIDs(a, b)
	out, next, err := diff.from(ctx, start)
	if err != nil {
		return nil, -1, SnapshotInfo{}, err
	}
	return out, next, infoOf(b.rec), nil
}

// differ compares two snapshots direct block by direct block.
type differ struct {
	buffers *bufferPool
	a, b    *storedView
	limit   int
	// byID: equal chunk IDs mean equal blocks, and the snapshots' blocks
	// tile direct blocks, so the chunk lists decide; otherwise every
	// direct block either stores is read from both and compared.
	byID bool
}

// candidate is a direct block that at least one snapshot stores data in.
type candidate struct {
	idx        int64
	inA, inB   bool
	aIDs, bIDs []storedChunk
}

// maxReadsPerPage bounds the blocks a page compares by content.
const maxReadsPerPage = 256

func (d *differ) from(ctx context.Context, start int64) ([]ChangedBlock, int64, error) {
	// Past the last block collected of a side that has more, that
	// side's blocks are unknown: the page ends there.
	horizon := int64(1<<63 - 1)
	ca, err := d.collect(ctx, d.a, start, &horizon)
	if err != nil {
		return nil, -1, err
	}
	cb, err := d.collect(ctx, d.b, start, &horizon)
	if err != nil {
		return nil, -1, err
	}
	var out []ChangedBlock
	reads := 0
	for i, j := 0, 0; i < len(ca) || j < len(cb); {
		c := candidate{}
		switch {
		case j == len(cb) || (i < len(ca) && ca[i].idx < cb[j].idx):
			c, i = candidate{idx: ca[i].idx, inA: true, aIDs: ca[i].ids}, i+1
		case i == len(ca) || cb[j].idx < ca[i].idx:
			c, j = candidate{idx: cb[j].idx, inB: true, bIDs: cb[j].ids}, j+1
		default:
			c = candidate{idx: ca[i].idx, inA: true, inB: true, aIDs: ca[i].ids, bIDs: cb[j].ids}
			i, j = i+1, j+1
		}
		if len(out) == d.limit || reads == maxReadsPerPage || c.idx > horizon {
			return out, c.idx, nil
		}
		changed, read, err := d.changed(ctx, c)
		if err != nil {
			return nil, -1, err
		}
		if read {
			reads++
		}
		if changed {
			out = append(out, ChangedBlock{Index: c.idx, InFirst: c.inA, InSecond: c.inB})
		}
	}
	if horizon < 1<<63-1 {
		return out, horizon + 1, nil // a side has more past its last collected
	}
	return out, -1, nil
}

// changed reports whether candidate c differs, and whether it read the
// blocks to tell.
func (d *differ) changed(ctx context.Context, c candidate) (bool, bool, error) {
	if !c.inA || !c.inB {
		return true, false, nil
	}
	if d.byID {
		return !sameChunks(c.aIDs, c.bIDs), false, nil
	}
	bufA := d.buffers.get(DirectBlockSize)
	defer d.buffers.put(bufA)
	bufB := d.buffers.get(DirectBlockSize)
	defer d.buffers.put(bufB)
	if err := d.a.readDirect(ctx, d.buffers, c.idx, bufA[:DirectBlockSize]); err != nil {
		return false, true, err
	}
	if err := d.b.readDirect(ctx, d.buffers, c.idx, bufB[:DirectBlockSize]); err != nil {
		return false, true, err
	}
	return !bytes.Equal(bufA[:DirectBlockSize], bufB[:DirectBlockSize]), true, nil
}

func sameChunks(a, b []storedChunk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// directChunks is one direct block a snapshot stores data in, with its
// stored blocks.
type directChunks struct {
	idx int64
	ids []storedChunk
}

// collect lists the direct blocks v stores data in from start on: enough
// of them for one page (limit plus the read bound, plus one to resume at).
// When v has more, horizon is lowered to the last one collected.
func (d *differ) collect(ctx context.Context, v *storedView, start int64, horizon *int64) ([]directChunks, error) {
	var out []directChunks
	want := d.limit + maxReadsPerPage + 1
	err := v.chunksFrom(ctx, firstBlock(start, v.m.BlockSize), func(c storedChunk) bool {
		idx := directIndex(c.blk, v.m.BlockSize)
		if idx < start {
			return true
		}
		if n := len(out); n > 0 && out[n-1].idx == idx {
			out[n-1].ids = append(out[n-1].ids, c)
			return true
		}
		if len(out) == want {
			*horizon = min(*horizon, out[len(out)-1].idx)
			return false
		}
		out = append(out, directChunks{idx: idx, ids: []storedChunk{c}})
		return true
	})
	return out, err
}
