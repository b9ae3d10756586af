package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// A volume created from a snapshot is usable at once: a block not yet in
// its live map is read from its base manifest on first access and kept
// locally as a generation-0 version (not a change: no snapshot needs to
// upload it again), while a background hydrator fetches the rest.

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

// startHydrators starts a hydrator for every volume that needs one.
func (e *Engine) startHydrators() {
	for _, v := range e.allVolumes() {
		v.mapMu.Lock()
		h := v.hydratingLocked()
		v.mapMu.Unlock()
		if h {
			e.startHydrator(v)
		}
	}
}

// DefaultHydrateFaultRetry is the first wait before the hydrator retries
// blocks whose snapshot data could not be read (Options.HydrateFaultRetry).
const DefaultHydrateFaultRetry = time.Minute

// Backoffs of the hydrator. A pass cut short by a store it cannot reach
// is retried soon; one that left blocks whose snapshot data cannot be read
// is retried rarely, since only a repair of the store helps, and then only
// over the segments of those blocks.
const (
	hydrateRetryMax      = 30 * time.Second
	hydrateFaultRetryMax = 10 * time.Minute
)

// errFaultsRemain: a hydration pass is over but left unreadable blocks.
var errFaultsRemain = errors.New("blocks of the snapshot cannot be read")

// startHydrator runs v's background hydration until every block of its
// base is local, the volume is deleted or the engine closes.
func (e *Engine) startHydrator(v *volume) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	v.mapMu.Lock()
	v.stopHydration = func() { cancel(); <-done }
	v.mapMu.Unlock()
	wake := v.hydratorWake()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(done)
		e.hydrateUntilDone(ctx, v, wake)
	}()
}

// hydrateUntilDone runs hydration passes over v until one completes or
// ctx ends, waiting between them as the backoffs say, or until wake (the
// last unreadable block is gone).
func (e *Engine) hydrateUntilDone(ctx context.Context, v *volume, wake <-chan struct{}) {
	// Hydration walks the whole map: it waits for the map to load.
	if err := v.waitMapped(ctx); err != nil {
		return
	}
	backoff, faultBackoff := time.Second, e.hydrateFaultRetry
	full := true // a pass over every segment, not only those with faults
	for {
		err := e.hydrate(ctx, v, full)
		var wait time.Duration
		switch {
		case err == nil || ctx.Err() != nil:
			return
		case errors.Is(err, errFaultsRemain):
			full, backoff = false, time.Second
			wait, faultBackoff = faultBackoff, min(2*faultBackoff, hydrateFaultRetryMax)
			v.log.Debug("hydration left blocks it cannot read; retrying them later", "in", wait)
		default:
			e.log.Warn("hydration failed; retrying", "volume", v.id, "backoff", backoff, "err", err)
			wait, backoff = backoff, min(2*backoff, hydrateRetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-wake:
		}
	}
}

// hydrate fetches the blocks of v's base that are not local yet (full:
// all of them; else those of the segments with unreadable blocks), then,
// if none is left unreadable, records that the volume no longer depends on
// the base for reads. A pass that leaves unreadable blocks returns
// errFaultsRemain.
func (e *Engine) hydrate(ctx context.Context, v *volume, full bool) error {
	v.mapMu.Lock()
	key, storeName := v.record.BaseManifest, v.record.BaseStore
	v.mapMu.Unlock()
	st, err := e.store(storeName)
	if err != nil {
		return err
	}
	var only map[uint64]bool
	if full {
		v.beginFullPass()
	} else if segs, all := v.faultScope(); !all {
		only = segs
	}
	start := time.Now()
	m, err := e.reader.loadManifest(ctx, st, key)
	switch {
	case err == nil:
		v.clearFault(key)
	case !unreadable(err):
		return err
	case v.rangeMapped(0, v.blockCount()):
		// Every block was written since: the base is not needed.
		v.clearFault(key)
		return e.hydrated(ctx, v, 0, start)
	default:
		v.recordSpan(objManifest, key, 0, v.blockCount(), err)
		return errFaultsRemain
	}
	k, err := e.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return err
	}
	n := 0
	v.hydration.start(m.Segments, only)
	for _, ref := range m.Segments {
		if only != nil && !only[ref.Index] {
			continue
		}
		got, err := e.hydrateSegment(ctx, v, st, ref, k)
		n += got
		if err != nil {
			return err
		}
		v.hydration.done.Add(1)
	}
	if v.hasFaults() {
		return errFaultsRemain
	}
	return e.hydrated(ctx, v, n, start)
}

// hydrateSegment fetches the blocks of segment ref that v does not have;
// it returns how many it fetched. Blocks that cannot be read are recorded
// and skipped; a failure to reach the store ends it.
func (e *Engine) hydrateSegment(ctx context.Context, v *volume, st snapstore.Store, ref snapfmt.SegmentRef, k *lineage.Keys) (int, error) {
	lo := ref.Index << snapfmt.SegmentShift
	hi := min(lo+1<<snapfmt.SegmentShift, v.blockCount())
	seg, err := e.reader.sharedSegment(ctx, st, ref.Key, k)
	switch {
	case err == nil:
		v.clearFault(ref.Key)
	case !unreadable(err):
		return 0, err
	case v.rangeMapped(lo, hi):
		v.clearFault(ref.Key)
		return 0, nil
	default:
		v.recordSpan(objSegment, ref.Key, lo, hi, err)
		return 0, nil
	}
	v.mapMu.RLock()
	fast := v.record.FastRestore // a fast restore goes at full speed
	v.mapMu.RUnlock()
	n := 0
	for _, se := range seg.Entries { // in block order
		blk := lo | uint64(se.Off)
		if blk >= v.blockCount() || v.rangeMapped(blk, blk+1) {
			continue
		}
		if !fast {
			if err := e.bg.pace(ctx, int(v.blockSize)); err != nil {
				return n, err
			}
		}
		switch err := v.hydrateBlock(ctx, blk, true); {
		case err == nil:
			n++
		case !errors.Is(err, ErrImpaired): // recorded: go on with the others
			return n, err
		}
	}
	return n, nil
}

// rangeMapped reports whether blocks lo to hi (exclusive) are all in v's
// live map.
func (v *volume) rangeMapped(lo, hi uint64) bool {
	v.mapMu.RLock()
	defer v.mapMu.RUnlock()
	return v.live.allMapped(lo, hi)
}

// hydrated ends v's hydration: the n blocks it fetched since start are
// made durable, and the volume stops reading its base.
func (e *Engine) hydrated(ctx context.Context, v *volume, n int, start time.Time) error {
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
	err := v.updateRecord(func(r *meta.VolumeRecord) {
		r.Hydrating = false
		if h := snapfmt.HoldKey(v.id, r.SnapshotID); r.SnapshotID != "" && r.BaseManifest != h {
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
