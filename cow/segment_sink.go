package cow

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// segmentSink stores a flush's finished segments, each once every pack it
// names is stored, and records them in segs.
type segmentSink struct {
	st   snapstore.Store
	k    *lineage.Keys
	pw   *packWriter
	segs map[uint64]snapfmt.SegmentRef
	pend []pendingSegment
}

type pendingSegment struct {
	idx  uint64
	seg  snapfmt.Segment
	need int // the highest pack sequence number it names
}

// add takes segment idx, whose chunks are in packs up to sequence number
// need; an empty one leaves the manifest.
func (s *segmentSink) add(ctx context.Context, idx uint64, seg snapfmt.Segment, need int) error {
	if len(seg) == 0 {
		delete(s.segs, idx)
		return nil
	}
	s.pend = append(s.pend, pendingSegment{idx, seg, need})
	return s.storeReady(ctx, false)
}

// finish waits for every pack and stores the segments still pending.
func (s *segmentSink) finish(ctx context.Context) error {
	if err := s.pw.finish(); err != nil {
		return err
	}
	return s.storeReady(ctx, true)
}

func (s *segmentSink) storeReady(ctx context.Context, all bool) error {
	below, err := s.pw.durableBelow()
	if err != nil {
		return err
	}
	for len(s.pend) > 0 && (all || s.pend[0].need < below) {
		ps := s.pend[0]
		s.pend = s.pend[1:]
		if err := s.pw.fillSizes(ps.seg); err != nil {
			return err
		}
		enc, err := snapfmt.EncodeSegment(s.k.Format(), ps.seg)
		if err != nil {
			return err
		}
		key := snapfmt.SegmentKey(sha256.Sum256(enc))
		// Always stored, even if an identical segment exists: an old
		// copy's mtime predates this flush's lease, so another daemon's
		// collector could take it before the manifest lands. Segments
		// are small.
		if err := s.st.Put(ctx, key, enc); err != nil {
			return fmt.Errorf("store %s: %w", key, err)
		}
		s.segs[ps.idx] = snapfmt.SegmentRef{Index: ps.idx, Key: key, Blocks: len(ps.seg)}
	}
	return nil
}
