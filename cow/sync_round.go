package cow

import (
	"fmt"

	"github.com/cowvol/cowvol/meta"
)

// sync makes every write completed before the call durable: data first,
// then metadata. Concurrent calls share one round (group commit).
func (v *volume) sync() error { return v.syncer.sync() }

// syncWrites makes every write completed before the call durable, like
// sync, but runs no round when none is in flight and no write or map
// change awaits one (slots waiting for reuse alone do not). A fork calls it
// with writers held off, after draining the volume: usually nothing is
// left, and the fork lock is held for no sync at all.
func (v *volume) syncWrites() error {
	return v.syncer.syncIf(func() bool {
		v.mapMu.RLock()
		defer v.mapMu.RUnlock()
		return v.writes.Load() > 0 || len(v.dirty) > 0
	})
}

// syncRound is one group-commit round: capture what changed, fdatasync the
// data file, write and sync the metadata, then let freed slots be reused.
func (v *volume) syncRound() error {
	if v.hot != nil {
		// No write in place may be in flight into a slot this round
		// makes durable (volume_sealed.go).
		v.hot.capture.Lock()
	}
	v.mapMu.Lock()
	unlock := func() {
		v.mapMu.Unlock()
		if v.hot != nil {
			v.hot.capture.Unlock()
		}
	}
	if v.doomed {
		// Deleted: its records are being removed; writing any back
		// would leave orphans.
		unlock()
		return nil
	}
	writes := v.writes.Swap(0)
	if writes == 0 && len(v.dirty) == 0 && v.slots.waiting() == 0 {
		unlock()
		return nil
	}
	c := v.captureLocked(writes)
	unlock()

	v.env.inSyncRound(v.id)
	err := v.file.Sync()
	// In-place writes change no metadata: then the data file's
	// fdatasync is the whole round. Freed slots still need a Badger
	// sync: the records that dropped them (written by releaseFrozen
	// outside this round) must be durable before the slots are reused.
	if err == nil && (c.batch.Len() > 0 || len(c.freed) > 0) {
		if err = v.env.meta.Apply(&c.batch); err == nil {
			err = v.env.metaSync.sync()
		}
	}
	if err != nil {
		v.restoreCapture(c)
		return fmt.Errorf("sync %s: %w", v.id, err)
	}
	return v.finishRound(c)
}

// roundCapture is what a sync round took from the volume under mapMu: the
// metadata batch of the captured blocks and the slots it settles.
type roundCapture struct {
	batch             meta.Batch
	captured          map[uint64]struct{}
	writes            int64  // the writes counter the round reset
	mark              int    // the map journal's end when captured
	end               uint64 // the slots end the batch records
	retired, recycled []uint64
	freed             []uint64
}

// captureLocked takes the dirty entries into a batch, marking them
// captured, and the slots waiting on this round. v.mapMu is held.
func (v *volume) captureLocked(writes int64) *roundCapture {
	c := &roundCapture{captured: v.dirty, writes: writes, end: v.slotsEnd}
	v.dirty = make(map[uint64]struct{}, len(c.captured))
	if v.journal != nil {
		c.mark = v.journal.mark()
	}
	c.retired, c.recycled = v.slots.takeRetired()
	for blk := range c.captured {
		e := v.live.get(blk)
		if e.hasData() && e.slot >= c.end {
			c.end = e.slot + 1
		}
		if e.mapped() {
			// From this round on, durable metadata refers to it.
			e.flags |= flagCaptured
			v.live.set(blk, e)
			me := meta.Extent{Slot: e.slot, Gen: uint64(e.gen)}
			if e.zero() {
				me.Flags |= meta.ExtentZero
			}
			c.batch.PutLive(v.id, blk, me)
			if e.gen != hydratedGen {
				c.batch.PutChange(v.id, blk, me)
			}
		} else {
			// Blocks are only dropped (rather than given a zero
			// version) in the first generation.
			c.batch.DeleteLive(v.id, blk)
			c.batch.DeleteChange(v.id, firstGeneration, blk)
		}
	}
	if c.end > v.slotsEnd {
		// Its slots' data is written (a mapping is set only after its
		// slot's write), so the fdatasync below makes the file at
		// least this long first (meta/slots_end.go).
		c.batch.PutSlotsEnd(v.id, c.end)
	}
	c.freed = v.slots.takePending()
	return c
}

// restoreCapture undoes a failed round: nothing is known to be durable, so
// everything goes back for the next round to try again, and the freed
// slots stay out of use. (The captured entries stay captured: durable
// metadata may or may not refer to them now; captured is the safe side.)
func (v *volume) restoreCapture(c *roundCapture) {
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	// The slots end may have landed: later rounds never write less.
	v.slotsEnd = max(v.slotsEnd, c.end)
	for blk := range c.captured {
		v.dirty[blk] = struct{}{}
	}
	v.writes.Add(c.writes)
	v.slots.pending = append(v.slots.pending, c.freed...)
	v.slots.retired = append(v.slots.retired, c.retired...)
	v.slots.recycled = append(v.slots.recycled, c.recycled...)
}

// finishRound settles a round whose data and metadata are durable: the
// journal drops what it captured, freed and recycled slots are reused,
// retired ones punched.
func (v *volume) finishRound(c *roundCapture) error {
	v.mapMu.Lock()
	v.slotsEnd = max(v.slotsEnd, c.end)
	if v.journal != nil {
		v.journal.drop(c.mark) // what the round captured is durable now
	}
	if len(c.freed) > 0 {
		v.slots.reuse(c.freed)
	}
	v.mapMu.Unlock()
	// The mappings that replaced the retired and recycled slots are
	// durable now. A recycled slot was replaced under the same record
	// keys (its generation's change record, the live entry), so nothing
	// durable refers to it any more: it is reusable at once. A retired one
	// is punched first. (A shutdown may cut the punching short: the next
	// start punches every slot no durable record refers to.)
	if len(c.recycled) > 0 {
		v.mapMu.Lock()
		v.slots.reuse(c.recycled)
		v.mapMu.Unlock()
	}
	if err := v.freeSlots(v.env.ctx(), c.retired); err != nil && v.env.ctx().Err() == nil {
		return err
	}
	return nil
}

// dirtyLen is the number of blocks with unsynced metadata.
func (v *volume) dirtyLen() int {
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	return len(v.dirty) + v.slots.waiting() + int(v.writes.Load())
}
