package cow

import (
	"cmp"
	"slices"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// A flush's plan: which segments it writes and, for each, the blocks that
// changed since the base, newest version per block, in block order. It is
// made one segment at a time from the generations' change sets (merged in
// block order for that segment's range), so that a flush holds at most one
// segment's changes (65536 blocks) however large the snapshot: a first
// snapshot of 1 TiB written at 64 KiB blocks is 16 million changed blocks.

// changeSource is what a plan reads of the metadata store.
type changeSource interface {
	ChangesInRange(volID string, afterGen, uptoGen, first, end uint64, fn func(gen, blk uint64, e meta.Extent) error) error
	NextChange(volID string, afterGen, uptoGen, from uint64) (uint64, bool, error)
	ChangedBlocksInRange(volID string, afterGen, uptoGen, first, end uint64, fn func(blk uint64) error) error
}

// blockChange is a block's newest version born since the base.
type blockChange struct {
	blk uint64
	x   meta.Extent
}

// flushPlan walks the segments a flush writes, in index order.
type flushPlan struct {
	src         changeSource
	vol         string
	after, upto uint64 // the generations (after, upto]
	// extra are the base's segments a flush visits although nothing in
	// them changed (a base whose chunks are recoded), ascending.
	extra []uint64
	next  uint64 // the first segment index not yet planned
	done  bool
}

// newFlushPlan plans the changes of volume vol in generations (after, upto];
// extra segments (ascending) are visited too.
func newFlushPlan(src changeSource, vol string, after, upto uint64, extra []uint64) *flushPlan {
	return &flushPlan{src: src, vol: vol, after: after, upto: upto, extra: extra}
}

// segmentPlan is one segment's part of the plan.
type segmentPlan struct {
	idx     uint64
	changes []blockChange // in block order
}

// nextSegment returns the next segment to write; ok is false at the end.
func (p *flushPlan) nextSegment() (sp segmentPlan, ok bool, err error) {
	if p.done {
		return sp, false, nil
	}
	blk, changed, err := p.src.NextChange(p.vol, p.after, p.upto, p.next<<snapfmt.SegmentShift)
	if err != nil {
		return sp, false, err
	}
	for len(p.extra) > 0 && p.extra[0] < p.next {
		p.extra = p.extra[1:]
	}
	switch {
	case changed && (len(p.extra) == 0 || blk>>snapfmt.SegmentShift <= p.extra[0]):
		sp.idx = blk >> snapfmt.SegmentShift
	case len(p.extra) > 0:
		sp.idx = p.extra[0]
	default:
		p.done = true
		return sp, false, nil
	}
	if sp.changes, err = p.segmentChanges(sp.idx); err != nil {
		return sp, false, err
	}
	p.next = sp.idx + 1
	if p.next<<snapfmt.SegmentShift == 0 { // past the last block number
		p.done = true
	}
	return sp, true, nil
}

// segmentChanges merges the generations' changes in segment idx: a later
// generation's version of a block replaces an earlier one's.
func (p *flushPlan) segmentChanges(idx uint64) ([]blockChange, error) {
	first := idx << snapfmt.SegmentShift
	var out []blockChange
	pos := map[uint64]int{}
	err := p.src.ChangesInRange(p.vol, p.after, p.upto, first, first+1<<snapfmt.SegmentShift, func(gen, blk uint64, x meta.Extent) error {
		if i, ok := pos[blk]; ok {
			out[i].x = x
			return nil
		}
		pos[blk] = len(out)
		out = append(out, blockChange{blk, x})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b blockChange) int { return cmp.Compare(a.blk, b.blk) })
	return out, nil
}

// countChanges is the number of distinct blocks the plan's generations
// changed, counted a segment at a time (for progress and the log) from the
// change records' keys alone.
func (p *flushPlan) countChanges() (int, error) {
	total := 0
	from := uint64(0)
	for {
		blk, ok, err := p.src.NextChange(p.vol, p.after, p.upto, from)
		if err != nil || !ok {
			return total, err
		}
		first := blk >> snapfmt.SegmentShift << snapfmt.SegmentShift
		var seen [1 << snapfmt.SegmentShift / 64]uint64
		err = p.src.ChangedBlocksInRange(p.vol, p.after, p.upto, first, first+1<<snapfmt.SegmentShift, func(b uint64) error {
			off := b - first
			if seen[off/64]&(1<<(off%64)) == 0 {
				seen[off/64] |= 1 << (off % 64)
				total++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		from = first + 1<<snapfmt.SegmentShift
		if from == 0 {
			return total, nil
		}
	}
}
