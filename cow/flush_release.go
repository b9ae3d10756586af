package cow

import "github.com/cowvol/cowvol/meta"

// releaseFrozen runs after volume v's snapshot at generation gen completed:
// versions born at or before gen that are no longer the volume's newest are
// freed (their data is in snapshot storage now) and their change records
// dropped. A version still live keeps its record, so that it is found and
// freed here once a later write supersedes it and a later snapshot completes.
func (f *flusher) releaseFrozen(v *volume, gen uint64) error {
	if err := v.waitMapped(f.env.ctx()); err != nil {
		return err
	}
	type rec struct {
		gen, blk uint64
		x        meta.Extent
	}
	var recs []rec
	err := f.env.meta.ChangesBetween(v.id, 0, gen, func(g, blk uint64, x meta.Extent) error {
		recs = append(recs, rec{g, blk, x})
		return nil
	})
	if err != nil || len(recs) == 0 {
		return err
	}
	var b meta.Batch
	var free []uint64
	for _, r := range recs {
		lk := v.locks.of(r.blk)
		lk.Lock()
		v.mapMu.Lock()
		cur := v.live.get(r.blk)
		v.mapMu.Unlock()
		live := cur.mapped() && uint64(cur.gen) == r.gen
		switch {
		case live:
		case cur.mapped() && !cur.captured():
			// Superseded by a mapping no sync round has made durable
			// yet: the durable live map still refers to this slot, and
			// a crash now would find it punched. A later release (the
			// next completed snapshot, or the next start) frees it.
		default:
			b.DeleteChange(v.id, r.gen, r.blk)
			if !r.x.Zero() {
				free = append(free, r.x.Slot)
			}
		}
		lk.Unlock()
	}
	if err := f.env.meta.Apply(&b); err != nil {
		return err
	}
	// The slots are retired, not punched here: the mapping that superseded
	// each may have been captured by a sync round that has not committed
	// it yet. The next round, which commits after that one, punches them
	// once its own changes are durable; a slot is reused a round later.
	v.mapMu.Lock()
	for _, s := range free {
		v.slots.retire(s, true)
	}
	v.mapMu.Unlock()
	if len(free) > 0 {
		f.env.log.Debug("released frozen blocks", "volume", v.id, "gen", gen, "blocks", len(free))
	}
	return nil
}
