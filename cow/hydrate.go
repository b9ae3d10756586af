package cow

import (
	"context"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// A volume created from a snapshot is usable at once: a block not yet in
// its live map is read from its base manifest on first access and kept
// locally as a generation-0 version (not a change: no snapshot needs to
// upload it again), while a background hydrator fetches the rest.

// hydratingLocked reports whether unmapped blocks come from the base. v.mapMu is held.
func (v *volume) hydratingLocked() bool { return v.record.Hydrating }

// fetchBase fills dst (one block) with block blk of the volume's base.
func (v *volume) fetchBase(ctx context.Context, blk uint64, dst []byte) error {
	v.mapMu.Lock()
	key, storeName := v.record.BaseManifest, v.record.BaseStore
	v.mapMu.Unlock()
	if err := v.eng.readStoredBlock(ctx, storeName, key, blk, dst); err != nil {
		return fmt.Errorf("hydrate %s block %d from %s: %w", v.id, blk, key, err)
	}
	return nil
}

// hydrateBlock makes block blk local if it is still only in the base.
// The caller holds no lock on blk.
func (v *volume) hydrateBlock(ctx context.Context, blk uint64) error {
	lk := v.locks.of(blk)
	lk.Lock()
	defer lk.Unlock()
	v.mapMu.Lock()
	e, hydrating := v.live.get(blk), v.hydratingLocked()
	v.mapMu.Unlock()
	if e.mapped() || !hydrating {
		return nil
	}
	buf := v.eng.buffers.get(int(v.blockSize))
	defer v.eng.buffers.put(buf)
	if err := v.fetchBase(ctx, blk, buf); err != nil {
		return err
	}
	if isZero(buf) {
		// Nothing to keep; a zero version stops further fetches.
		v.mapMu.Lock()
		v.live.set(blk, extent{gen: 0, flags: flagZero})
		v.dirty[blk] = struct{}{}
		v.mapMu.Unlock()
		return nil
	}
	if err := v.eng.space.allocate(v.stride); err != nil {
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
	v.live.set(blk, extent{slot: slot, gen: 0})
	v.dirty[blk] = struct{}{} // the next sync round makes it durable
	v.mapMu.Unlock()
	return nil
}

// startHydrators starts a hydrator for every volume that needs one.
func (e *Engine) startHydrators() {
	for _, v := range e.volumes() {
		v.mapMu.Lock()
		h := v.hydratingLocked()
		v.mapMu.Unlock()
		if h {
			e.startHydrator(v)
		}
	}
}

// startHydrator runs v's background hydration until every block of its
// base is local, the volume is deleted or the engine closes.
func (e *Engine) startHydrator(v *volume) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	v.mapMu.Lock()
	v.stopHydration = func() { cancel(); <-done }
	v.mapMu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(done)
		backoff := time.Second
		for {
			err := e.hydrate(ctx, v)
			if err == nil || ctx.Err() != nil {
				return
			}
			e.log.Warn("hydration failed; retrying", "volume", v.id, "backoff", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, flushRetryMax)
		}
	}()
}

// hydrate fetches every block of v's base that is not local yet, then
// records that the volume no longer depends on the base for reads.
func (e *Engine) hydrate(ctx context.Context, v *volume) error {
	v.mapMu.Lock()
	key, storeName := v.record.BaseManifest, v.record.BaseStore
	v.mapMu.Unlock()
	st, err := e.store(storeName)
	if err != nil {
		return err
	}
	m, err := e.loadManifest(ctx, st, key)
	if err != nil {
		return err
	}
	k, err := e.lineage(m.Encryption.meta())
	if err != nil {
		return err
	}
	start := time.Now()
	n := 0
	for _, ref := range m.Segments {
		seg, err := e.sharedSegment(ctx, st, ref.Key, k)
		if err != nil {
			return err
		}
		for _, se := range seg.entries { // in block order
			if err := e.bg.pace(ctx, int(v.blockSize)); err != nil {
				return err
			}
			blk := ref.Index<<segmentShift | uint64(se.off)
			if blk >= v.blocks {
				continue
			}
			if err := v.hydrateBlock(ctx, blk); err != nil {
				return err
			}
			n++
		}
	}
	// Make the hydrated blocks durable before the volume stops reading
	// its base.
	if err := v.sync(); err != nil {
		return err
	}
	// The hold of the snapshot the volume was created from is dropped
	// unless it is still the base (no snapshot of the volume completed
	// yet: setBase drops it then). Decided under the record's lock, the
	// one setBase takes, so that a flush completing meanwhile either sees
	// Hydrating cleared (and drops the hold itself) or finds it dropped
	// here; no other hold is touched (a flush may have just stored one).
	var drop string
	err = v.updateRecord(func(r *meta.VolumeRecord) {
		r.Hydrating = false
		if h := holdKey(v.id, r.SnapshotID); r.SnapshotID != "" && r.BaseManifest != h {
			drop = h
		}
	}, nil)
	if err != nil {
		return err
	}
	if drop != "" {
		e.dropHold(ctx, drop)
	}
	e.log.Info("volume hydrated", "volume", v.id, "blocks", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// dropHold deletes the hold under key in every store (it is in one).
func (e *Engine) dropHold(ctx context.Context, key string) {
	for name, st := range e.stores {
		if err := st.Delete(ctx, key); err != nil {
			e.log.Warn("dropping a hold (garbage until the volume is deleted)", "key", key, "store", name, "err", err)
		}
	}
}

// dropHolds deletes volume volID's holds except keep, in every store; only
// for a volume being deleted (nothing else may store its holds).
func (e *Engine) dropHolds(ctx context.Context, volID, keep string) {
	for name, st := range e.stores {
		var keys []string
		err := st.List(ctx, "holds/"+volID+"/", func(o snapstore.ObjectInfo) error {
			if o.Key != keep {
				keys = append(keys, o.Key)
			}
			return nil
		})
		for _, k := range keys {
			if err == nil {
				err = st.Delete(ctx, k)
			}
		}
		if err != nil {
			e.log.Warn("dropping holds", "volume", volID, "store", name, "err", err)
		}
	}
}
