package cow

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// hydrator fetches the base of every volume created from a snapshot in the
// background, one goroutine per hydrating volume, until every block is
// local (hydrate.go is the volume's side: a block read on first access).
// All it reaches of the engine is its environment.
type hydrator struct {
	log      *slog.Logger
	reader   *snapshotReader
	lineages *lineage.Cache
	bg       *ioGovernor // paces hydration against foreground I/O
	// stores are the snapshot stores by name, where holds are dropped.
	stores map[string]snapstore.Store
	// ctx is the engine's background context (set once it starts);
	// wg counts the engine's background goroutines.
	ctx    func() context.Context
	wg     *sync.WaitGroup
	engine hydrateEngine
	// faultRetry is the first wait before unreadable blocks are tried
	// again (Options.HydrateFaultRetry).
	faultRetry time.Duration
}

// hydrateEngine is what the hydrator asks of the engine: its volumes, and
// its stores by name.
type hydrateEngine interface {
	allVolumes() []*volume
	store(name string) (snapstore.Store, error)
}

// newHydrator is engine e's hydrator, with the settings of opts.
func newHydrator(e *Engine, opts Options) *hydrator {
	return &hydrator{
		log: e.log, reader: e.reader, lineages: e.lineages, bg: e.bg, stores: e.stores,
		ctx: func() context.Context { return e.ctx }, wg: &e.wg, engine: e,
		faultRetry: cmp.Or(opts.HydrateFaultRetry, DefaultHydrateFaultRetry),
	}
}

// startHydrators starts a hydrator for every volume that needs one.
func (h *hydrator) startHydrators() {
	for _, v := range h.engine.allVolumes() {
		v.mapMu.Lock()
		hydrating := v.hydratingLocked()
		v.mapMu.Unlock()
		if hydrating {
			h.startHydrator(v)
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
func (h *hydrator) startHydrator(v *volume) {
	ctx, cancel := context.WithCancel(h.ctx())
	done := make(chan struct{})
	v.mapMu.Lock()
	v.stopHydration = func() { cancel(); <-done }
	v.mapMu.Unlock()
	wake := v.hydratorWake()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(done)
		h.hydrateUntilDone(ctx, v, wake)
	}()
}

// hydrateUntilDone runs hydration passes over v until one completes or
// ctx ends, waiting between them as the backoffs say, or until wake (the
// last unreadable block is gone).
func (h *hydrator) hydrateUntilDone(ctx context.Context, v *volume, wake <-chan struct{}) {
	// Hydration walks the whole map: it waits for the map to load.
	if err := v.waitMapped(ctx); err != nil {
		return
	}
	backoff, faultBackoff := time.Second, h.faultRetry
	full := true // a pass over every segment, not only those with faults
	for {
		err := h.hydrate(ctx, v, full)
		var wait time.Duration
		switch {
		case err == nil || ctx.Err() != nil:
			return
		case errors.Is(err, errFaultsRemain):
			full, backoff = false, time.Second
			wait, faultBackoff = faultBackoff, min(2*faultBackoff, hydrateFaultRetryMax)
			v.log.Debug("hydration left blocks it cannot read; retrying them later", "in", wait)
		default:
			h.log.Warn("hydration failed; retrying", "volume", v.id, "backoff", backoff, "err", err)
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
func (h *hydrator) hydrate(ctx context.Context, v *volume, full bool) error {
	v.mapMu.Lock()
	key, storeName := v.record.BaseManifest, v.record.BaseStore
	v.mapMu.Unlock()
	st, err := h.engine.store(storeName)
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
	m, err := h.reader.loadManifest(ctx, st, key)
	switch {
	case err == nil:
		v.clearFault(key)
	case !unreadable(err):
		return err
	case v.rangeMapped(0, v.blockCount()):
		// Every block was written since: the base is not needed.
		v.clearFault(key)
		return h.hydrated(ctx, v, 0, start)
	default:
		v.recordSpan(objManifest, key, 0, v.blockCount(), err)
		return errFaultsRemain
	}
	k, err := h.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return err
	}
	n := 0
	v.hydration.start(m.Segments, only)
	for _, ref := range m.Segments {
		if only != nil && !only[ref.Index] {
			continue
		}
		got, err := h.hydrateSegment(ctx, v, st, ref, k)
		n += got
		if err != nil {
			return err
		}
		v.hydration.done.Add(1)
	}
	if v.hasFaults() {
		return errFaultsRemain
	}
	return h.hydrated(ctx, v, n, start)
}

// hydrateSegment fetches the blocks of segment ref that v does not have;
// it returns how many it fetched. Blocks that cannot be read are recorded
// and skipped; a failure to reach the store ends it.
func (h *hydrator) hydrateSegment(ctx context.Context, v *volume, st snapstore.Store, ref snapfmt.SegmentRef, k *lineage.Keys) (int, error) {
	lo := ref.Index << snapfmt.SegmentShift
	hi := min(lo+1<<snapfmt.SegmentShift, v.blockCount())
	seg, err := h.reader.sharedSegment(ctx, st, ref.Key, k)
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
			if err := h.bg.pace(ctx, int(v.blockSize)); err != nil {
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

// hydrated ends v's hydration: the n blocks it fetched since start are
// made durable, and the volume stops reading its base.
func (h *hydrator) hydrated(ctx context.Context, v *volume, n int, start time.Time) error {
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
		if hold := snapfmt.HoldKey(v.id, r.SnapshotID); r.SnapshotID != "" && r.BaseManifest != hold {
			drop = hold
		}
	}, nil)
	if err != nil {
		return err
	}
	if drop != "" {
		h.dropHold(ctx, drop)
	}
	h.log.Info("volume hydrated", "volume", v.id, "blocks", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// dropHold deletes the hold under key in every store (it is in one).
func (h *hydrator) dropHold(ctx context.Context, key string) {
	for name, st := range h.stores {
		if err := st.Delete(ctx, key); err != nil {
			h.log.Warn("dropping a hold (garbage until the volume is deleted)", "key", key, "store", name, "err", err)
		}
	}
}

// dropHolds deletes volume volID's holds except keep, in every store; only
// for a volume being deleted (nothing else may store its holds).
func (h *hydrator) dropHolds(ctx context.Context, volID, keep string) {
	for name, st := range h.stores {
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
			h.log.Warn("dropping holds", "volume", volID, "store", name, "err", err)
		}
	}
}
