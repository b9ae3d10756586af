package cow

import (
	"context"
	"fmt"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
)

// flushBatchBytes is how much data a flush worker takes at once: the
// changes of up to this many bytes of consecutive blocks. Per-block costs
// (a read system call, a hand-off to a worker, a lock on the segment, the
// background pacing) are paid once per batch instead: at 4 KiB blocks a
// batch is 64 blocks; at 256 KiB and more, one block.
const flushBatchBytes = 256 << 10

// flushBatches cuts a segment's changes (in block order) into batches of
// at most max(1, flushBatchBytes/blockSize) changes of consecutive blocks.
func flushBatches(changes []blockChange, blockSize int) [][]blockChange {
	limit := max(1, flushBatchBytes/max(1, blockSize))
	var out [][]blockChange
	start := 0
	for i := 1; i <= len(changes); i++ {
		if i == len(changes) || i-start == limit || changes[i].blk != changes[i-1].blk+1 {
			out = append(out, changes[start:i:i])
			start = i
		}
	}
	return out
}

// slotRun is how many of batch's leading changes are data (not zero)
// versions in consecutive slots, which one read fetches.
func slotRun(batch []blockChange) int {
	if len(batch) == 0 || batch[0].x.Zero() {
		return 0
	}
	n := 1
	for n < len(batch) && !batch[n].x.Zero() && batch[n].x.Slot == batch[0].x.Slot+uint64(n) {
		n++
	}
	return n
}

// readBatch reads the data versions of batch into buf (one block size per
// change, in batch order): consecutive slots of a plaintext volume in one
// read, others (a sealed volume's, which open block by block) one by one.
// A zero version's block is left as it is (the caller skips it).
func (v *volume) readBatch(batch []blockChange, buf []byte) error {
	bs := int(v.blockSize)
	for i := 0; i < len(batch); {
		n := 1
		if v.hot == nil {
			n = max(1, slotRun(batch[i:]))
		}
		c := batch[i]
		switch {
		case c.x.Zero():
		case n > 1 && v.stride == int64(bs):
			if _, err := v.file.ReadAt(buf[i*bs:(i+n)*bs], v.slotOffset(c.x.Slot)); err != nil {
				return fmt.Errorf("read frozen block %d of %s: %w", c.blk, v.id, err)
			}
		default:
			n = 1
			if err := v.readSlot(c.blk, c.x.Slot, buf[i*bs:(i+1)*bs]); err != nil {
				return fmt.Errorf("read frozen block %d of %s: %w", c.blk, v.id, err)
			}
		}
		i += n
	}
	return nil
}

// batchResult is what a batch did to its segment: per change, the chunk
// its block now names, or (zero) that the block leaves the segment.
type batchResult struct {
	off  uint32
	loc  snapfmt.Loc
	zero bool
}

// batchUploader is one flush worker's state: its buffers, reused from
// batch to batch so that a flush makes no garbage per block.
type batchUploader struct {
	buffers *bufferPool
	bg      *ioGovernor // paces the flush against foreground I/O
	v       *volume
	k       *lineage.Keys
	pw      *packWriter
	dedup   *dedupIndex
	buf     []byte // a batch's blocks
	scratch []byte // a compressed chunk, copied into the pack by add
	res     []batchResult
}

// newBatchUploader is a flush worker's state for volume v's blocks, stored
// under lineage k into pw through dedup.
func (f *flusher) newBatchUploader(v *volume, k *lineage.Keys, pw *packWriter, dedup *dedupIndex) *batchUploader {
	bs := int(v.blockSize)
	return &batchUploader{
		buffers: f.env.buffers, bg: f.env.bg, v: v, k: k, pw: pw, dedup: dedup,
		buf:     f.env.buffers.get(max(1, flushBatchBytes/bs) * bs),
		scratch: f.env.buffers.get(bs + bs/8 + 64),
	}
}

// close returns the worker's buffers.
func (u *batchUploader) close() {
	u.buffers.put(u.buf)
	u.buffers.put(u.scratch)
}

// upload stores batch's blocks and returns what each did to the segment
// (valid until the next call) and the highest pack sequence number they
// are in (-1 for none).
func (u *batchUploader) upload(ctx context.Context, batch []blockChange) ([]batchResult, int, error) {
	bs := int(u.v.blockSize)
	if err := u.bg.pace(ctx, len(batch)*bs); err != nil {
		return nil, -1, err
	}
	// A frozen slot is never written again and not freed before this
	// snapshot completes.
	if err := u.v.readBatch(batch, u.buf); err != nil {
		return nil, -1, err
	}
	u.res = u.res[:0]
	need := -1
	for i, c := range batch {
		block := u.buf[i*bs : (i+1)*bs]
		r := batchResult{off: uint32(c.blk & (1<<snapfmt.SegmentShift - 1))}
		r.zero = c.x.Zero() || isZero(block)
		if !r.zero {
			loc, seq, err := u.dedup.store(snapfmt.ChunkIDOf(u.k.Format(), block), func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
				u.scratch = snapfmt.EncodeChunk(u.k.Format(), u.scratch[:0], id, block)
				return u.pw.add(id, u.scratch)
			})
			if err != nil {
				return nil, -1, err
			}
			r.loc, need = loc, max(need, seq)
		}
		u.res = append(u.res, r)
	}
	return u.res, need, nil
}
