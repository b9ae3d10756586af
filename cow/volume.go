package cow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/meta"
)

// volume is the engine's state for one volume: its record, its live map in
// memory, its data file and what has changed since the last sync.
type volume struct {
	id string
	// size is the volume's size in bytes, a multiple of blockSize: it
	// grows (ModifyVolume, volume_modify.go) and never shrinks; see
	// sizeNow and blockCount.
	size      atomic.Int64
	blockSize int64
	shift     uint // log2(blockSize)
	// stride is a slot's length in the data file: the block, and for an
	// encrypted volume its sectors' seals.
	stride int64
	// hot is an encrypted volume's cipher state; nil for a plaintext one.
	hot      *volumeSealer
	created  time.Time
	snapshot string // parent snapshot ID, if created from one

	env  *volumeEnv
	file blockFile
	log  *slog.Logger

	locks blockLocks
	// snapTurn serialises the volume's forks (CreateSnapshot,
	// CreateSnapshots) and DeleteVolume's check for pending snapshots: it
	// makes a fork's pending count, the fork and the snapshot's entry in
	// the engine one step, and is held across the wait for the volume's
	// dirty data (volume_fork.go). Taken before fork and e.snapshots.mu.
	snapTurn sync.Mutex
	// fork is held shared by every mutation and exclusively while the
	// generation changes, so a snapshot sees each write whole or not at all.
	fork sync.RWMutex

	// recMu serialises changes to the persistent record (see
	// updateRecord), so that a fork, a flush and the end of hydration
	// never overwrite each other's changes. Taken before mapMu.
	recMu sync.Mutex

	// load is the volume's map while it loads (map_loader.go), nil for a
	// volume created by this engine; mapReady is set once the map is all
	// in memory, and from then on no access needs to load a page.
	load     *mapLoad
	mapReady atomic.Bool

	// mapMu guards the fields that follow.
	mapMu sync.RWMutex
	gen   uint32 // current generation G: versions born in G are written in place
	live  *extentMap
	slots slotAllocator
	// dirty holds the blocks whose live entry changed since the last sync.
	dirty map[uint64]struct{}
	// slotsEnd is the volume's slots end as durably recorded
	// (meta/slots_end.go): every slot durable records name is below it.
	slotsEnd uint64
	// record is the persistent record (tags, client token...).
	record meta.VolumeRecord
	opens  int  // open handles (FUSE opens)
	doomed bool // deletion has begun: no new opens
	// stopHydration cancels and waits for the background hydrator, if any.
	stopHydration func()

	syncer *groupSync
	// health records the blocks whose snapshot data cannot be read
	// (volume_health.go).
	health volumeHealth
	// journal keeps the map changes no round has made durable where a
	// successor finds them after a crash (map_journal.go); nil without a
	// journal directory. Guarded by mapMu.
	journal *mapJournal
	// journalMisses counts changes the journal had no room for: a writer
	// that sees it move syncs before it acknowledges.
	journalMisses atomic.Int64
	// writes counts writes and discards since the last sync round began,
	// so a round with nothing to do costs nothing.
	writes atomic.Int64
	// redirects counts the writes that went to a fresh slot (a block's
	// first write in a generation) since the server started.
	redirects atomic.Uint64
	// hydration is the progress of the running hydration pass.
	hydration hydrationProgress
}

// blockOf splits a byte offset into block number and offset within the block.
func (v *volume) blockOf(off int64) (uint64, int64) {
	return uint64(off) >> v.shift, off & (v.blockSize - 1)
}

func (v *volume) slotOffset(slot uint64) int64 { return int64(slot) * v.stride }

// hasBase reports whether a discarded block must be recorded as a zero
// version rather than dropped: when an older version of it may exist in an
// earlier generation or in the parent snapshot.
func (v *volume) hasBaseLocked() bool { return v.gen > firstGeneration || v.snapshot != "" }

const firstGeneration = 1

// readAt reads len(p) bytes at off. The caller has checked the range.
func (v *volume) readAt(p []byte, off int64) error {
	return v.splitSealed(off, int64(len(p)), func(lo, hi int64) error {
		return v.readRange(p[lo:hi], off+lo)
	})
}

// readRange reads len(p) bytes at off, one block after another.
func (v *volume) readRange(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := v.blockOf(off)
		n := min(int64(len(p)), v.blockSize-in)
		if err := v.ensurePage(blk); err != nil {
			return fmt.Errorf("read %s block %d: %w", v.id, blk, err)
		}
		lk := v.locks.of(blk)
		lk.RLock()
		v.mapMu.RLock()
		e, hydrating := v.live.get(blk), v.hydratingLocked()
		v.mapMu.RUnlock()
		if !e.mapped() && hydrating {
			// First read of a block still in the snapshot: fetch it.
			lk.RUnlock()
			if err := v.hydrateBlock(context.Background(), blk, false); err != nil {
				return err
			}
			continue
		}
		var err error
		switch {
		case e.hasData() && v.hot != nil:
			err = v.readSealed(blk, e.slot, in, p[:n])
		case e.hasData():
			_, err = v.file.ReadAt(p[:n], v.slotOffset(e.slot)+in)
		default:
			clear(p[:n])
		}
		lk.RUnlock()
		if err != nil {
			return fmt.Errorf("read %s block %d: %w", v.id, blk, err)
		}
		p, off = p[n:], off+n
	}
	return nil
}

// readSlot reads the whole of block blk's version in slot into dst.
func (v *volume) readSlot(blk, slot uint64, dst []byte) error {
	if v.hot != nil {
		return v.readSlotPlain(blk, slot, dst)
	}
	_, err := v.file.ReadAt(dst[:v.blockSize], v.slotOffset(slot))
	return err
}

// writeSlot writes the whole of block blk (src) into a fresh slot.
func (v *volume) writeSlot(blk, slot uint64, src []byte) error {
	if v.hot != nil {
		return v.writeSealedSlot(blk, slot, src)
	}
	_, err := v.file.WriteAt(src[:v.blockSize], v.slotOffset(slot))
	return err
}

// writeAt writes p at off. The caller has checked the range.
func (v *volume) writeAt(p []byte, off int64) error {
	misses := v.journalMisses.Load()
	if err := v.writeRange(p, off); err != nil {
		return err
	}
	return v.syncIfUnjournaled(misses)
}

func (v *volume) writeRange(p []byte, off int64) error {
	v.fork.RLock()
	defer v.fork.RUnlock()
	// The parts run under the fork lock the caller holds.
	err := v.splitSealed(off, int64(len(p)), func(lo, hi int64) error {
		return v.writeBlocks(p[lo:hi], off+lo)
	})
	if err != nil {
		return err
	}
	v.writes.Add(1)
	return nil
}

// writeBlocks writes p at off, one block after another.
func (v *volume) writeBlocks(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := v.blockOf(off)
		n := min(int64(len(p)), v.blockSize-in)
		if err := v.writeBlock(blk, in, p[:n]); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// syncIfUnjournaled syncs when a map change since the journal showed
// misses was not journaled: it may have been the caller's, which then is
// durable before it is acknowledged. The caller holds no lock.
func (v *volume) syncIfUnjournaled(misses int64) error {
	if v.journalMisses.Load() == misses {
		return nil
	}
	return v.sync()
}

// setLiveLocked makes x (mapped) block blk's live entry: dirty until a
// sync round makes it durable, journaled meanwhile. v.mapMu is held.
func (v *volume) setLiveLocked(blk uint64, x extent) {
	v.live.set(blk, x)
	v.changedLocked(journalRecord{blk: blk, x: x, present: true})
}

// clearLiveLocked removes block blk's live entry (see setLiveLocked).
func (v *volume) clearLiveLocked(blk uint64) {
	v.live.clear(blk)
	v.changedLocked(journalRecord{blk: blk})
}

func (v *volume) changedLocked(r journalRecord) {
	v.dirty[r.blk] = struct{}{}
	v.faultMappedLocked(r.blk)
	if v.journal != nil && !v.journal.append(r) {
		v.journalMisses.Add(1)
	}
}

// writeBlock writes src at offset in of block blk.
func (v *volume) writeBlock(blk uint64, in int64, src []byte) error {
	if err := v.ensurePage(blk); err != nil {
		return v.ioErr("write", blk, err)
	}
	if v.hot != nil {
		return v.writeBlockSealed(blk, in, src)
	}
	lk := v.locks.of(blk)
	// Fast path: the block's version was born in this generation, so
	// it is written in place; its mapping does not change.
	lk.RLock()
	v.mapMu.RLock()
	e, gen := v.live.get(blk), v.gen
	v.mapMu.RUnlock()
	if e.hasData() && e.gen == gen {
		_, err := v.file.WriteAt(src, v.slotOffset(e.slot)+in)
		lk.RUnlock()
		return v.ioErr("write", blk, err)
	}
	lk.RUnlock()

	lk.Lock()
	defer lk.Unlock()
	v.mapMu.Lock()
	e, gen = v.live.get(blk), v.gen
	if e.hasData() && e.gen == gen { // another writer moved it meanwhile
		v.mapMu.Unlock()
		_, err := v.file.WriteAt(src, v.slotOffset(e.slot)+in)
		return v.ioErr("write", blk, err)
	}
	fromBase := !e.mapped() && v.hydratingLocked() && int64(len(src)) < v.blockSize
	v.mapMu.Unlock()
	if err := v.env.space.allocate(v.blockSize); err != nil {
		return v.ioErr("write", blk, err)
	}
	v.mapMu.Lock()
	slot := v.slots.alloc()
	v.mapMu.Unlock()

	// Redirect-on-write: the new version goes to a fresh slot, which reads
	// as zeros. A partial write over an older version copies that
	// version's data first; over an unwritten or zero block it needs no copy.
	var err error
	switch {
	case int64(len(src)) < v.blockSize && e.hasData():
		buf := v.env.buffers.get(int(v.blockSize))
		if _, err = v.file.ReadAt(buf, v.slotOffset(e.slot)); err == nil {
			copy(buf[in:], src)
			_, err = v.file.WriteAt(buf, v.slotOffset(slot))
		}
		v.env.buffers.put(buf)
	case fromBase:
		// A partial write to a block still in the snapshot: the rest
		// of the block comes from there.
		buf := v.env.buffers.get(int(v.blockSize))
		if err = v.fetchBase(context.Background(), blk, buf); err == nil {
			copy(buf[in:], src)
			_, err = v.file.WriteAt(buf, v.slotOffset(slot))
		}
		v.env.buffers.put(buf)
	default:
		_, err = v.file.WriteAt(src, v.slotOffset(slot)+in)
	}
	return v.installRedirect(blk, slot, gen, err)
}

// installRedirect ends a redirect: slot, just written (werr its error),
// becomes block blk's newest version, born in gen; if the write failed,
// slot is freed (it may hold part of the write) and the mapping is kept.
func (v *volume) installRedirect(blk, slot uint64, gen uint32, werr error) error {
	if werr != nil {
		v.freeSlot(slot)
		return v.ioErr("write", blk, werr)
	}
	v.mapMu.Lock()
	free, ok := v.replaceLocked(blk, extent{slot: slot, gen: gen})
	v.mapMu.Unlock()
	if ok {
		v.freeSlot(free)
	}
	v.redirects.Add(1)
	return nil
}

// replaceLocked makes x, in a new slot, block blk's newest version. The
// version it replaces is the volume's alone when it was born in this
// generation or is a hydrated copy of the base: if durable metadata refers
// to its slot (captured), the slot is retired until the next sync round makes
// the new mapping durable; if not, replaceLocked returns it for the caller
// to free at once, without v.mapMu. An older version belongs to a snapshot
// now; it is freed once the snapshot is flushed (releaseFrozen). v.mapMu is
// held, and blk's lock exclusively.
func (v *volume) replaceLocked(blk uint64, x extent) (free uint64, ok bool) {
	old := v.live.get(blk)
	v.setLiveLocked(blk, x)
	if !old.hasData() || (old.gen != x.gen && old.gen != hydratedGen) {
		return 0, false
	}
	if old.captured() {
		// An encrypted volume writes every slot whole: no hole needed.
		v.slots.retire(old.slot, v.hot == nil)
		return 0, false
	}
	return old.slot, true
}

// updateRecord applies fn to a copy of the volume's record, persists it
// durably, and only then makes it the volume's record. Updates are
// serialised; apply runs under mapMu with the new record, to change
// in-memory state in the same step.
func (v *volume) updateRecord(fn func(r *meta.VolumeRecord), apply func(r meta.VolumeRecord)) error {
	v.recMu.Lock()
	defer v.recMu.Unlock()
	v.mapMu.Lock()
	r := v.record
	v.mapMu.Unlock()
	fn(&r)
	if err := v.env.meta.PutVolume(r); err != nil {
		return err
	}
	if err := v.env.metaSync.sync(); err != nil {
		return fmt.Errorf("update record of %s: %w", v.id, err)
	}
	v.mapMu.Lock()
	v.record = r
	if apply != nil {
		apply(r)
	}
	v.mapMu.Unlock()
	return nil
}

// hydratedGen is the generation of versions copied from the base
// snapshot: older than any generation, and in no change set.
const hydratedGen = 0

// freeSlot frees one slot; see freeSlots.
func (v *volume) freeSlot(slot uint64) { v.freeSlots(context.Background(), []uint64{slot}) }

// freeSlots frees slots that no live entry refers to and no durable record
// will once the current changes are synced: it punches them, in runs of
// contiguous slots (one fallocate per run: a slot at a time is very slow
// over a data file with much dirty page cache), and queues them for reuse
// after the next sync. A slot whose punch fails or that ctx cuts off is
// not reused before a restart, which punches every unreferenced slot.
func (v *volume) freeSlots(ctx context.Context, slots []uint64) error {
	if len(slots) == 0 {
		return nil
	}
	slices.Sort(slots)
	for i := 0; i < len(slots); {
		j := i + 1
		for j < len(slots) && slots[j] == slots[j-1]+1 {
			j++
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := v.file.Punch(v.slotOffset(slots[i]), v.slotOffset(slots[j-1]-slots[i]+1)); err != nil {
			v.log.Warn("cannot punch freed slots; leaving them unused until restart", "first", slots[i], "count", j-i, "err", err)
		} else {
			v.mapMu.Lock()
			for _, s := range slots[i:j] {
				v.slots.release(s)
			}
			v.mapMu.Unlock()
		}
		i = j
	}
	return nil
}

func (v *volume) ioErr(op string, blk uint64, err error) error {
	if err == nil {
		return nil
	}
	if isNoSpace(err) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("%s %s block %d: %w: %w", op, v.id, blk, ErrNoSpace, err)
	}
	return fmt.Errorf("%s %s block %d: %w", op, v.id, blk, err)
}

// punch makes [off, off+n) read as zeros and frees the space of every whole
// block in it. Partial blocks at the edges are zeroed in place.
func (v *volume) punch(off, n int64) error {
	misses := v.journalMisses.Load()
	if err := v.punchRange(off, n); err != nil {
		return err
	}
	return v.syncIfUnjournaled(misses)
}

func (v *volume) punchRange(off, n int64) error {
	v.fork.RLock()
	defer v.fork.RUnlock()
	end := off + n
	var freed []uint64
	for off < end {
		blk, in := v.blockOf(off)
		m := min(end-off, v.blockSize-in)
		var err error
		if m == v.blockSize {
			var slot uint64
			var ok bool
			if slot, ok, err = v.discardBlock(blk); ok {
				freed = append(freed, slot)
			}
		} else {
			err = v.zeroPartial(blk, in, m)
		}
		if err != nil {
			v.freeSlots(context.Background(), freed)
			return err
		}
		off += m
	}
	v.freeSlots(context.Background(), freed)
	v.writes.Add(1)
	return nil
}

// discardBlock drops block blk's newest version. When that version's slot
// is the volume's alone, it returns the slot for the caller to free (after
// the mapping is gone, no reader can reach it).
func (v *volume) discardBlock(blk uint64) (slot uint64, free bool, err error) {
	if err := v.ensurePage(blk); err != nil {
		return 0, false, v.ioErr("discard", blk, err)
	}
	lk := v.locks.of(blk)
	lk.Lock()
	defer lk.Unlock()
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	e, gen := v.live.get(blk), v.gen
	if e.zero() || (!e.mapped() && v.snapshot == "") {
		return 0, false, nil // already reads as zeros
	}
	if v.hasBaseLocked() {
		// A zero version, born now, so that snapshots taken later know
		// the block was discarded.
		v.setLiveLocked(blk, extent{gen: gen, flags: flagZero})
	} else {
		// No snapshot can see the block: forget it. (Only possible in
		// the first generation, see hasBaseLocked.)
		v.clearLiveLocked(blk)
	}
	// A version born now, or a hydrated copy of the base, is ours alone;
	// an older one belongs to a snapshot until it is flushed.
	ours := e.hasData() && (e.gen == gen || e.gen == hydratedGen)
	if ours && e.captured() && v.hot != nil {
		// A plaintext volume may punch it at once: a crash before the
		// discard is durable finds the block reading zeros, which is
		// what the discard asked. A sealed sector turned into a hole
		// would fail authentication instead: it waits for the round.
		v.slots.retire(e.slot, true)
		return 0, false, nil
	}
	return e.slot, ours, nil
}

// zeroPartial zeroes n bytes at offset in of block blk.
func (v *volume) zeroPartial(blk uint64, in, n int64) error {
	if err := v.ensurePage(blk); err != nil {
		return v.ioErr("discard", blk, err)
	}
	v.mapMu.Lock()
	e := v.live.get(blk)
	v.mapMu.Unlock()
	if !e.hasData() && v.snapshot == "" {
		return nil // reads as zeros already
	}
	buf := v.env.buffers.get(int(n))
	clear(buf)
	err := v.writeBlock(blk, in, buf)
	v.env.buffers.put(buf)
	return err
}

// loadedInfo describes the volume without waiting for its map to load:
// until it is, AllocatedBytes is the space the data file takes (what the
// map counts, plus slots not yet reclaimed). A volume whose load found
// damage is in state error.
func (v *volume) loadedInfo(ctx context.Context) (VolumeInfo, error) {
	vi := v.info()
	if v.mapReady.Load() {
		return vi, nil
	}
	select {
	case <-v.load.mapped:
		return v.info(), nil
	case <-v.load.done:
		if errors.Is(v.load.result, ErrMetadataDamaged) {
			vi.State = VolumeError
		}
	default:
	}
	var st unix.Stat_t
	if err := unix.Stat(v.env.dataPath(v.id), &st); err == nil {
		vi.AllocatedBytes = st.Blocks * 512
	}
	return vi, nil
}

// info describes the volume.
func (v *volume) info() VolumeInfo {
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	vi := VolumeInfo{
		ID:             v.id,
		Size:           v.sizeNow(),
		BlockSize:      int(v.blockSize),
		State:          VolumeAvailable,
		CreateTime:     v.created,
		SnapshotID:     v.snapshot,
		OpenCount:      v.opens,
		AllocatedBytes: v.live.dataBlocks * v.blockSize,
		Hydrating:      v.record.Hydrating,
		Redirects:      v.redirects.Load(),
		DirtyBlocks:    len(v.dirty) + v.slots.waiting() + int(v.writes.Load()),
	}
	if enc := v.record.Encryption; enc != nil {
		vi.Encrypted, vi.KMSKeyARN, vi.DataKeyID = true, enc.KMSKeyARN, enc.DataKeyID
	}
	vi.Tags = tagsFromMeta(v.record.Tags)
	if vi.Hydrating {
		vi.HydratedSegments, vi.HydrationSegments = v.hydration.get()
	}
	v.statusInfo(&vi)
	switch {
	case v.doomed:
		vi.State = VolumeDeleting
	case v.record.FastRestore && v.record.Hydrating:
		vi.State = VolumeCreating
	case v.opens > 0:
		vi.State = VolumeInUse
	}
	return vi
}
