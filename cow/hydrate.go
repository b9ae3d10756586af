package cow

import (
	"context"
	"fmt"
)

// A volume created from a snapshot is usable at once: a block not yet in
// its live map is read from its base manifest on first access and kept
// locally as a generation-0 version (not a change: no snapshot needs to
// upload it again), while a background hydrator (hydrator.go) fetches
// the rest. This file is the volume's side: a block fetched and kept.

// hydratingLocked reports whether unmapped blocks come from the base. v.mapMu is held.
func (v *volume) hydratingLocked() bool { return v.record.Hydrating }

// fetchBase fills dst (one block) with block blk of the volume's base. A
// block known to be unreadable fails at once (ErrImpaired); see
// fetchBaseBlock.
func (v *volume) fetchBase(ctx context.Context, blk uint64, dst []byte) error {
	return v.fetchBaseBlock(ctx, blk, dst, false)
}

// fetchBaseBlock is fetchBase; recheck asks the store even for a block
// known to be unreadable (the hydrator's retries). A fetch that fails
// because the snapshot data is bad records the block as unreadable and
// fails with ErrImpaired.
func (v *volume) fetchBaseBlock(ctx context.Context, blk uint64, dst []byte, recheck bool) error {
	if !recheck {
		if err := v.unreadableErr(blk); err != nil {
			return err
		}
	}
	v.mapMu.Lock()
	key, storeName := v.record.BaseManifest, v.record.BaseStore
	v.mapMu.Unlock()
	err := v.env.reader.readStoredBlock(ctx, storeName, key, blk, dst)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("hydrate %s block %d from %s: %w", v.id, blk, key, err)
	if v.recordFault(blk, err) {
		return fmt.Errorf("%w: %w", ErrImpaired, err)
	}
	return err
}

// hydrateBlock makes block blk local if it is still only in the base;
// recheck as for fetchBaseBlock. The caller holds no lock on blk.
func (v *volume) hydrateBlock(ctx context.Context, blk uint64, recheck bool) error {
	if err := v.ensurePage(blk); err != nil {
		return v.ioErr("hydrate", blk, err)
	}
	lk := v.locks.of(blk)
	lk.Lock()
	defer lk.Unlock()
	v.mapMu.Lock()
	e, hydrating := v.live.get(blk), v.hydratingLocked()
	v.mapMu.Unlock()
	if e.mapped() || !hydrating {
		return nil
	}
	buf := v.env.buffers.get(int(v.blockSize))
	defer v.env.buffers.put(buf)
	if err := v.fetchBaseBlock(ctx, blk, buf, recheck); err != nil {
		return err
	}
	if isZero(buf) {
		// Nothing to keep; a zero version stops further fetches.
		v.mapMu.Lock()
		v.setLiveLocked(blk, extent{gen: 0, flags: flagZero})
		v.mapMu.Unlock()
		return nil
	}
	if err := v.env.space.allocate(v.stride); err != nil {
		return v.ioErr("hydrate", blk, err)
	}
	v.mapMu.Lock()
	slot := v.slots.alloc()
	v.mapMu.Unlock()
	if err := v.writeSlot(blk, slot, buf); err != nil {
		v.freeSlot(slot) // it may hold part of the failed write
		return v.ioErr("hydrate", blk, err)
	}
	v.mapMu.Lock()
	v.setLiveLocked(blk, extent{slot: slot, gen: 0}) // the next sync round makes it durable
	v.mapMu.Unlock()
	return nil
}

// rangeMapped reports whether blocks lo to hi (exclusive) are all in v's
// live map.
func (v *volume) rangeMapped(lo, hi uint64) bool {
	v.mapMu.RLock()
	defer v.mapMu.RUnlock()
	return v.live.allMapped(lo, hi)
}
