package cow

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// A restored volume's health. Hydration tells two failures apart: a store
// it cannot reach (retried soon, as it always was), and snapshot data that
// cannot be read however often it is asked for: a chunk or segment that
// fails verification even after the pack cache fetched it again, or an
// object that is missing. A block of the second kind is recorded here as
// unreadable: reads and partial writes of it fail at once with ErrImpaired
// (no request to the store), the hydrator goes on with the other blocks and
// retries the bad ones rarely (the store may be repaired), and the volume's
// status is impaired, naming the object, until every such block has been
// hydrated or written whole. The record is in memory only: at the next
// start hydration begins again from the first block and finds what is
// still bad.

// objectKind is what an object of snapshot storage holds, and so which
// blocks its loss makes unreadable.
type objectKind uint8

const (
	objChunk    objectKind = iota // a pack (or chunk object): the blocks whose chunk it holds
	objSegment                    // a segment: every block of its range not written since
	objManifest                   // the base's manifest (the volume's hold): every block not written since
)

// objectError is a failure to read one object of snapshot storage. Its
// message is err's; it only adds which object failed.
type objectError struct {
	kind objectKind
	key  string
	err  error
}

func (e *objectError) Error() string { return e.err.Error() }
func (e *objectError) Unwrap() error { return e.err }

// unreadable reports whether err means the snapshot data itself is bad (it
// fails verification, or is missing), as opposed to a store that could not
// be reached or a key that is disabled.
func unreadable(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, snapstore.ErrCorrupt) || errors.Is(err, snapstore.ErrNotFound)
}

// maxTrackedFaults bounds the blocks a volume's health remembers one by one
// (about 3 MiB): a corrupt chunk that thousands of deduplicated blocks
// share must not cost a map entry each. Beyond it a fault only knows that
// more blocks need it; those blocks are found again by the next full pass
// of the hydrator, and reads of them ask the store.
const maxTrackedFaults = 1 << 16

// maxReportedFaults bounds the faults VolumeInfo lists (VolumeInfo.FaultCount
// has them all).
const maxReportedFaults = 16

// baseFault is an object of the volume's base snapshot that cannot be read.
type baseFault struct {
	key   string
	kind  objectKind
	err   error
	since time.Time
	// lo, hi are the blocks a segment or manifest fault covers.
	lo, hi uint64
	// blocks counts the tracked blocks of a chunk fault; more says that
	// further ones were found past maxTrackedFaults.
	blocks int
	more   bool
}

// covers reports whether a segment or manifest fault makes blk unreadable.
func (f *baseFault) covers(blk uint64) bool { return f.kind != objChunk && f.lo <= blk && blk < f.hi }

// volumeHealth is what a volume's hydration could not fetch. Its zero
// value is ready: a volume not restored from a snapshot never uses it.
type volumeHealth struct {
	// faulty is len(byKey) > 0, for the write paths' check without mu.
	faulty atomic.Bool

	// mu guards the fields that follow. A leaf lock: taken under the
	// volume's mapMu, never the reverse.
	mu sync.Mutex
	// byKey holds every fault; spans those of segments and the manifest;
	// blocks the unreadable blocks of chunk faults, by block.
	byKey  map[string]*baseFault
	spans  map[string]*baseFault
	blocks map[uint64]*baseFault
	// wake tells the hydrator that the last fault is gone, so that it
	// finishes without waiting for its next retry.
	wake chan struct{}
}

// hydratorWake returns the channel that wakes v's hydrator.
func (v *volume) hydratorWake() <-chan struct{} {
	h := &v.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.wake == nil {
		h.wake = make(chan struct{}, 1)
	}
	return h.wake
}

// unreadableErr returns the error of an access to block blk if blk is
// known to be unreadable, else nil.
func (v *volume) unreadableErr(blk uint64) error {
	h := &v.health
	if !h.faulty.Load() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.blocks[blk]
	for _, sf := range h.spans {
		if f == nil && sf.covers(blk) {
			f = sf
		}
	}
	if f == nil {
		return nil
	}
	return fmt.Errorf("%w: block %d of %s needs %s of snapshot %s, which cannot be read: %w",
		ErrImpaired, blk, v.id, f.key, v.snapshot, f.err)
}

// recordFault records that block blk cannot be fetched because of err, if
// err says the snapshot data is bad; it reports whether it did.
func (v *volume) recordFault(blk uint64, err error) bool {
	if !unreadable(err) {
		return false
	}
	var oe *objectError
	if !errors.As(err, &oe) {
		oe = &objectError{kind: objChunk, key: "(unknown object)", err: err}
	}
	switch oe.kind {
	case objSegment:
		lo := blk >> snapfmt.SegmentShift << snapfmt.SegmentShift
		v.recordSpan(objSegment, oe.key, lo, lo+1<<snapfmt.SegmentShift, err)
	case objManifest:
		v.recordSpan(objManifest, oe.key, 0, v.blockCount(), err)
	default:
		h := &v.health
		h.mu.Lock()
		defer h.mu.Unlock()
		f := v.faultLocked(objChunk, oe.key, err)
		if old := h.blocks[blk]; old != f {
			if old != nil {
				v.untrackLocked(blk, old)
			}
			if len(h.blocks) < maxTrackedFaults {
				h.blocks[blk] = f
				f.blocks++
			} else {
				f.more = true
			}
		}
	}
	return true
}

// recordSpan records that a segment or the manifest (kind), under key,
// cannot be read: blocks lo to hi need it.
func (v *volume) recordSpan(kind objectKind, key string, lo, hi uint64, err error) {
	h := &v.health
	h.mu.Lock()
	defer h.mu.Unlock()
	f := v.faultLocked(kind, key, err)
	f.lo, f.hi = lo, hi
	h.spans[key] = f
}

// faultLocked returns the fault of object key, now failing with err,
// adding it (and saying so in the log, once) if it is new. h.mu is held.
func (v *volume) faultLocked(kind objectKind, key string, err error) *baseFault {
	h := &v.health
	if f := h.byKey[key]; f != nil {
		f.err = err
		return f
	}
	if h.byKey == nil {
		h.byKey, h.spans, h.blocks = map[string]*baseFault{}, map[string]*baseFault{}, map[uint64]*baseFault{}
	}
	f := &baseFault{key: key, kind: kind, err: err, since: time.Now().UTC()}
	h.byKey[key] = f
	if h.faulty.Swap(true) {
		v.log.Warn("another object of the volume's snapshot cannot be read", "snapshot", v.snapshot, "key", key, "err", err)
	} else {
		v.log.Warn("volume impaired: blocks of its snapshot cannot be read; reads of them fail, the other blocks work",
			"snapshot", v.snapshot, "key", key, "err", err)
	}
	return f
}

// untrackLocked forgets that block blk needs chunk fault f. h.mu is held.
func (v *volume) untrackLocked(blk uint64, f *baseFault) {
	h := &v.health
	delete(h.blocks, blk)
	if f.blocks--; f.blocks == 0 && !f.more {
		v.dropFaultLocked(f)
	}
}

// dropFaultLocked forgets fault f; the last one gone, the volume has
// recovered. h.mu is held.
func (v *volume) dropFaultLocked(f *baseFault) {
	h := &v.health
	delete(h.byKey, f.key)
	delete(h.spans, f.key)
	if len(h.byKey) > 0 || !h.faulty.Swap(false) {
		return
	}
	v.log.Warn("volume recovered: every block of its snapshot can be read or was written", "snapshot", v.snapshot)
	if h.wake != nil {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// faultMappedLocked: block blk no longer needs the base (it was hydrated,
// written whole or discarded). v.mapMu is held.
func (v *volume) faultMappedLocked(blk uint64) {
	h := &v.health
	if !h.faulty.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.blocks[blk]; f != nil {
		v.untrackLocked(blk, f)
	}
}

// clearFault: the segment or manifest under key could be read after all.
func (v *volume) clearFault(key string) {
	h := &v.health
	if !h.faulty.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.spans[key]; f != nil {
		v.dropFaultLocked(f)
	}
}

// beginFullPass: a full pass of the hydrator finds every unreadable block
// again, so what only a pass can clear is forgotten (a fault's blocks past
// maxTrackedFaults); tracked blocks and spans are cleared one by one as
// the pass reads them.
func (v *volume) beginFullPass() {
	h := &v.health
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.byKey {
		if f.more {
			f.more = false
			if f.kind == objChunk && f.blocks == 0 {
				v.dropFaultLocked(f)
			}
		}
	}
}

// faultScope is what a retry of the hydrator needs to read again: the
// segments with unreadable blocks, or all (every segment) when the
// manifest failed or blocks were found past maxTrackedFaults.
func (v *volume) faultScope() (segs map[uint64]bool, all bool) {
	h := &v.health
	h.mu.Lock()
	defer h.mu.Unlock()
	segs = map[uint64]bool{}
	for _, f := range h.byKey {
		if f.kind == objManifest || f.more {
			return nil, true
		}
		if f.kind == objSegment {
			segs[f.lo>>snapfmt.SegmentShift] = true
		}
	}
	for blk := range h.blocks {
		segs[blk>>snapfmt.SegmentShift] = true
	}
	return segs, false
}

// hasFaults reports whether any block is known to be unreadable.
func (v *volume) hasFaults() bool { return v.health.faulty.Load() }

// statusInfo fills vi's status and faults.
func (v *volume) statusInfo(vi *VolumeInfo) {
	h := &v.health
	vi.Status = VolumeStatusOK
	if !h.faulty.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.byKey) == 0 {
		return
	}
	vi.Status = VolumeStatusImpaired
	vi.FaultCount = len(h.byKey)
	for _, f := range h.byKey {
		vf := VolumeFault{SnapshotID: v.snapshot, Key: f.key, Err: f.err, Since: f.since, Blocks: f.blocks, MoreBlocks: f.more}
		switch f.kind {
		case objSegment:
			vf.FirstBlock, vf.EndBlock = f.lo, min(f.hi, v.blockCount())
		case objManifest:
			vf.FirstBlock, vf.EndBlock = 0, v.blockCount()
		}
		vi.Faults = append(vi.Faults, vf)
	}
	slices.SortFunc(vi.Faults, func(a, b VolumeFault) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Key, b.Key))
	})
	if len(vi.Faults) > maxReportedFaults {
		vi.Faults = vi.Faults[:maxReportedFaults]
	}
}
