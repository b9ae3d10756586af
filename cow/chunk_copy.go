package cow

import (
	"context"
	"fmt"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// copySource is where copyChunks copies from: a store, by name, and the
// lineage of the chunks there.
type copySource struct {
	name string
	st   snapstore.Store
	k    *lineage.Keys
}

// copyChunks copies the chunks of seg that are not being replaced from
// their store into packs of the flush's store, updating seg; it returns the
// highest pack sequence number seg now depends on. Chunks of the target
// lineage k are copied as they are stored; others are opened and sealed
// again under k (blocks of blockSize bytes), with k's chunk IDs.
func (f *flusher) copyChunks(ctx context.Context, from copySource, k *lineage.Keys, blockSize int, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, replaced []uint64) (int, error) {
	skip := map[uint32]bool{}
	for _, b := range replaced {
		skip[uint32(b&(1<<snapfmt.SegmentShift-1))] = true
	}
	same := from.k == k || (from.k != nil && k != nil && lineage.Same(&from.k.Enc, &k.Enc))
	buf := f.env.buffers.get(blockSize)
	defer f.env.buffers.put(buf)
	var scratch []byte
	need := -1
	for off, l := range seg {
		if skip[off] {
			continue
		}
		var nl snapfmt.Loc
		var seq int
		var err error
		if same {
			nl, seq, err = dedup.store(l.ID, func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
				// Verified before it is stored again: a damaged chunk
				// must not get a second, trusted copy.
				b, err := f.env.reader.packs.checkedChunk(ctx, from.name, from.st, l, func(b []byte) error { return snapfmt.VerifyChunk(from.k.Format(), l.ID, b) })
				if err != nil {
					return snapfmt.Loc{}, 0, fmt.Errorf("copy chunk %s: %w", id, err)
				}
				return pw.add(id, b)
			})
		} else {
			_, err = f.env.reader.packs.checkedChunk(ctx, from.name, from.st, l, func(b []byte) error { return snapfmt.DecodeChunk(from.k.Format(), l.ID, b, buf) })
			if err != nil {
				return 0, fmt.Errorf("copy chunk %s: %w", l.ID, err)
			}
			nl, seq, err = dedup.store(snapfmt.ChunkIDOf(k.Format(), buf), func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
				scratch = snapfmt.EncodeChunk(k.Format(), scratch[:0], id, buf)
				return pw.add(id, scratch)
			})
		}
		if err != nil {
			return 0, err
		}
		seg[off] = nl
		need = max(need, seq)
	}
	return need, nil
}
