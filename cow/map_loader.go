package cow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// A volume's live map loads in the background, so that a successor taking
// over a crashed or upgraded daemon serves I/O at once instead of after
// reading every record of every volume (seconds for millions of blocks,
// every application on the volumes stalled meanwhile).
//
// The map is paged (extent_map.go); a page is either not loaded, or loaded
// and from then on the volume's to change. Every load reads the records
// through one view of the metadata store taken before the engine served
// (meta.ReadView): a page not loaded has no entry in memory, so whoever
// loads it first (the background loader, page after page in block order,
// or a read or write of one of its blocks, which loads it on demand with a
// range scan) installs exactly the records that were durable at the start,
// and a later reader of the same records finds the page loaded and leaves
// it alone. The one exception is the map journal's replay (recover.go),
// which sets the entries of the blocks it names without loading their
// pages: a page's load leaves those alone (mapLoad.overlay).
//
// Slots: every slot a durable record names is below the data file's length
// at open (meta/slots_end.go; checked before the engine serves), so until
// the load has found every slot in use, new slots come from past the file's
// end (slotAllocator.startLoad). Unused slots below it, which may hold data
// whose records never became durable, are punched only once every record
// of the live map and the change sets has been read, after the metadata
// store passed its checks (reclaim, recover.go): never on a guess. A record
// that names a slot past that length anyway is damage: the volume stops
// serving (damaged) rather than risk a new slot being another block's.
//
// What needs the whole map waits for it (waitMapped): a volume's
// AllocatedBytes, the release of frozen versions after a flush (and so the
// flusher's first snapshot) and the hydrator; a deletion waits for the
// punching too (waitLoaded). A fork
// needs nothing of it: a page loaded after it holds versions born before
// it, which a write then redirects, as it would have had the page been
// loaded at the fork.

// mapLoad is a volume's map while it loads.
type mapLoad struct {
	floor uint64 // the data file's length in slots at open
	// eager: the map loads before the engine serves, and records that
	// cannot be right are findings for the operator (recover) rather
	// than damage that stops the volume.
	eager bool

	// view is the metadata store as it was before the engine served:
	// every record the load reads through it was durable at open, so a
	// slot it names from floor up is damage, never one of this run's.
	view *meta.ReadView
	// used are the slots the load found records of (and, before it
	// started, the map journal) referring to; only the loader touches it.
	used slotSet
	// beyond counts (eager) records naming slots from floor up; first is
	// the lowest such slot.
	beyond       int
	firstBeyond  uint64
	times        phaseTimes
	blocks, vers int // live records and change-set records read
	// unused counts the slots below floor that nothing refers to (in
	// unusedRuns runs), which the load's end punches.
	unused     uint64
	unusedRuns int

	// Guarded by the volume's mapMu:
	frontier uint64          // every page below it is loaded
	demand   map[uint64]bool // pages at or past the frontier loaded on demand
	damage   error           // records that cannot be right: the volume serves no I/O
	// overlay lists, per page not loaded yet, the blocks the map journal
	// set: their entries in memory are newer than their records, which
	// the page's load leaves alone (but for the slot they replaced:
	// replacedLocked); replayGen is the generation at the replay.
	overlay   map[uint64][]uint64
	replayGen uint32

	mapped chan struct{} // closed once the map is all in memory
	done   chan struct{} // closed when the load ends
	result error         // why it ended: nil once loaded; set before done closes
}

func newMapLoad(floor uint64, view *meta.ReadView) *mapLoad {
	return &mapLoad{floor: floor, view: view, demand: map[uint64]bool{}, overlay: map[uint64][]uint64{},
		mapped: make(chan struct{}), done: make(chan struct{})}
}

func (l *mapLoad) loadedLocked(page uint64) bool { return page < l.frontier || l.demand[page] }

// errLoadStopped: the engine stopped before a volume's map was loaded.
var errLoadStopped = fmt.Errorf("%w: the engine stopped before the volume's map was loaded", ErrClosed)

// pageEntry is one live-map record of a page being loaded.
type pageEntry struct {
	blk uint64
	x   meta.Extent
}

// loadedExtent is a record as the map holds it: captured, since durable
// metadata refers to its slot.
func loadedExtent(me meta.Extent) extent {
	x := extent{slot: me.Slot, gen: uint32(me.Gen), flags: flagCaptured}
	if me.Zero() {
		x.flags |= flagZero
	}
	return x
}

// checkSlot: a record naming a slot from floor up contradicts the slots
// end checked at open. Before the engine serves it is a finding for the
// operator; once it serves, the volume's new slots may be there already.
func (l *mapLoad) checkSlot(volID string, slot uint64) error {
	if slot < l.floor {
		return nil
	}
	if l.eager {
		if l.beyond == 0 || slot < l.firstBeyond {
			l.firstBeyond = slot
		}
		l.beyond++
		return nil
	}
	return fmt.Errorf("%w: volume %s: a record names slot %d, past the end of its data file (%d slots) when the engine opened",
		ErrMetadataDamaged, volID, slot, l.floor)
}

// checkEntry checks a live-map record of block blk.
func (v *volume) checkEntry(blk uint64, me meta.Extent) error {
	if blk >= v.blockCount() {
		return fmt.Errorf("%w: volume %s: live map entry for block %d beyond the volume's %d blocks", ErrMetadataDamaged, v.id, blk, v.blockCount())
	}
	if me.Zero() {
		return nil
	}
	return v.load.checkSlot(v.id, me.Slot)
}

// findings are what an eager load found wrong, for recover.
func (l *mapLoad) findings(volID, path string) []string {
	if l.beyond == 0 {
		return nil
	}
	return []string{fmt.Sprintf("volume %s: %d mappings name slots past the end of its data file %s (%d slots; first slot %d)",
		volID, l.beyond, path, l.floor, l.firstBeyond)}
}

// ensurePage makes sure the map page of block blk is in memory, loading it
// if the volume's map is still loading. The caller holds no lock of v.
func (v *volume) ensurePage(blk uint64) error {
	if v.mapReady.Load() {
		return nil
	}
	return v.demandPage(blk >> pageShift)
}

// demandPage loads page p unless it is loaded: a range scan of its
// records, installed unless someone else installed the page meanwhile.
func (v *volume) demandPage(p uint64) error {
	l := v.load
	v.mapMu.RLock()
	loaded, damage := l.loadedLocked(p), l.damage
	v.mapMu.RUnlock()
	if damage != nil {
		return damage
	}
	if loaded {
		return nil
	}
	first := p << pageShift
	last := min(first+pageLen, v.blockCount()) - 1
	var page []pageEntry
	err := l.view.LiveRange(v.id, first, last, func(blk uint64, me meta.Extent) error {
		if err := v.checkEntry(blk, me); err != nil {
			return err
		}
		page = append(page, pageEntry{blk, me})
		return nil
	})
	switch {
	case errors.Is(err, ErrMetadataDamaged) && !l.eager:
		return v.damaged(err)
	case errors.Is(err, meta.ErrViewClosed) && v.mapReady.Load():
		return nil // loaded meanwhile
	case err != nil:
		return fmt.Errorf("volume %s: load the map of blocks %d to %d: %w", v.id, first, last, err)
	}
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	if !l.loadedLocked(p) {
		v.installLocked(p, page)
		l.demand[p] = true
	}
	return nil
}

// installLocked puts page p's records into the map, but for the blocks
// the map journal set (overlay). v.mapMu is held.
func (v *volume) installLocked(p uint64, page []pageEntry) {
	l := v.load
	journaled := l.overlay[p]
	if len(journaled) == 0 {
		for _, pe := range page {
			v.live.set(pe.blk, loadedExtent(pe.x))
		}
		return
	}
	durable := make(map[uint64]extent, len(journaled))
	for _, blk := range journaled {
		durable[blk] = extent{}
	}
	for _, pe := range page {
		if _, ok := durable[pe.blk]; ok {
			durable[pe.blk] = loadedExtent(pe.x)
		} else {
			v.live.set(pe.blk, loadedExtent(pe.x))
		}
	}
	for blk, old := range durable {
		v.replacedLocked(blk, old)
	}
	delete(l.overlay, p)
}

// replacedLocked: block blk's entry, set by the map journal, replaced old,
// its durable record. A version of the replay's generation (or a hydrated
// copy) that it replaced is the volume's alone (replaceLocked): its slot,
// which the record names until a round makes the new entry durable, is
// retired. (No write has changed the entry since: a write loads the page
// first.) v.mapMu is held.
func (v *volume) replacedLocked(blk uint64, old extent) {
	cur := v.live.get(blk)
	replaced := !cur.hasData() || cur.slot != old.slot
	if old.hasData() && replaced && (old.gen == v.load.replayGen || old.gen == hydratedGen) {
		v.slots.retire(old.slot, v.hot == nil)
	}
}

// damaged stops a volume whose load found records that cannot be right:
// it serves no more I/O, nothing of it is reclaimed, and the finding is
// kept beside its data file, so that the next start refuses it as the
// start before the engine served would have (ErrMetadataDamaged) until
// the operator accepts the loss. It returns err.
func (v *volume) damaged(err error) error {
	v.mapMu.Lock()
	first := v.load.damage == nil
	if first {
		v.load.damage = err
	}
	v.mapMu.Unlock()
	if !first {
		return err
	}
	v.log.Error("the volume's records are damaged: it serves no more I/O; the next start refuses it unless the loss is accepted", "err", err)
	path := v.env.damagePath(v.id)
	if werr := os.WriteFile(path, []byte(err.Error()+"\n"), 0o600); werr != nil {
		v.log.Error("cannot record the damage for the next start", "path", path, "err", werr)
	} else if serr := syncDir(filepath.Dir(path)); serr != nil {
		v.log.Error("cannot record the damage for the next start", "path", path, "err", serr)
	}
	return err
}

// scanMap reads every live-map record of the volume, installing the pages
// nobody loaded yet, in block order, and every change-set record, noting
// the slots they refer to.
func (v *volume) scanMap(ctx context.Context) error {
	l := v.load
	t0 := time.Now()
	if err := v.scanLive(ctx); err != nil {
		return err
	}
	t0 = l.times.add("live_map", t0)
	l.vers = 0
	err := l.view.ChangeExtents(v.id, func(gen, blk uint64, me meta.Extent) error {
		l.vers++
		if l.vers%pageLen == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if me.Zero() {
			return nil
		}
		l.used.add(me.Slot)
		return l.checkSlot(v.id, me.Slot)
	})
	l.times.add("change_sets", t0)
	return err
}

// scanLive is scanMap's pass over the live map: a page is installed once
// its last record is read (scanned).
func (v *volume) scanLive(ctx context.Context) error {
	l := v.load
	var page []pageEntry
	cur, have := uint64(0), false
	l.blocks = 0
	err := l.view.LiveExtents(v.id, func(blk uint64, me meta.Extent) error {
		if err := v.checkEntry(blk, me); err != nil {
			return err
		}
		if p := blk >> pageShift; !have || p != cur {
			if have {
				if err := v.scanned(ctx, cur, page, p); err != nil {
					return err
				}
			}
			cur, have, page = p, true, page[:0]
		}
		if !me.Zero() {
			l.used.add(me.Slot)
		}
		page = append(page, pageEntry{blk, me})
		l.blocks++
		return nil
	})
	if err != nil {
		return err
	}
	pages := (v.blockCount() + pageLen - 1) >> pageShift
	if !have {
		return v.scanned(ctx, pages, nil, pages)
	}
	return v.scanned(ctx, cur, page, pages)
}

// scanned installs page p's records, read by the loader, unless the page
// was loaded on demand meanwhile, and moves the frontier to next, past p
// and the empty pages after it.
func (v *volume) scanned(ctx context.Context, p uint64, page []pageEntry, next uint64) error {
	l := v.load
	v.mapMu.Lock()
	if len(page) > 0 && !l.loadedLocked(p) {
		v.installLocked(p, page)
	}
	// Never back: a retried scan passes pages loaded (and maybe changed)
	// since the first.
	l.frontier = max(l.frontier, next)
	for d := range l.demand {
		if d < next {
			delete(l.demand, d)
		}
	}
	v.mapMu.Unlock()
	if h := v.env.afterLoadPage; h != nil && len(page) > 0 && !l.eager {
		h(ctx, v.id, p)
	}
	return ctx.Err()
}

// waitMapped waits until the volume's map is all in memory. It returns
// the damage the load found, errLoadStopped, or ctx's error.
func (v *volume) waitMapped(ctx context.Context) error {
	if v.mapReady.Load() {
		return nil
	}
	select {
	case <-v.load.mapped:
		return nil
	case <-v.load.done:
		return v.load.result
	case <-ctx.Done():
		return fmt.Errorf("volume %s: waiting for its map to load: %w", v.id, ctx.Err())
	}
}

// waitLoaded waits until the volume's load is over: its map in memory and
// its unused slots reclaimed. It returns as waitMapped does.
func (v *volume) waitLoaded(ctx context.Context) error {
	if v.load == nil {
		return nil
	}
	select {
	case <-v.load.done:
		return v.load.result
	case <-ctx.Done():
		return fmt.Errorf("volume %s: waiting for its map to load: %w", v.id, ctx.Err())
	}
}

// mapComplete records that the volume's map is all in memory: no access
// loads a page from now on, and those waiting for the map go on.
func (v *volume) mapComplete() {
	l := v.load
	v.mapReady.Store(true)
	// A load stopped (the engine stops) or damaged keeps its view: pages
	// may still be loaded on demand (closeVolumes closes it).
	l.view.Close()
	v.mapMu.Lock()
	l.demand, l.overlay = nil, nil // no longer needed
	v.mapMu.Unlock()
	close(l.mapped)
}

// endLoad records how the volume's load ended (err nil: its map is in
// memory and its unused slots are reclaimed) and wakes those waiting.
func (v *volume) endLoad(err error) {
	l := v.load
	if err == nil {
		l.used = slotSet{}
		v.log.Info("volume map loaded", append([]any{"blocks", l.blocks, "change_records", l.vers,
			"unused_slots", l.unused, "unused_runs", l.unusedRuns}, l.times.attrs()...)...)
	}
	l.result = err
	close(l.done)
}

// startMapLoads loads, in the background, the map of every volume whose
// map is not loaded yet.
func (e *Engine) startMapLoads() {
	for _, v := range e.allVolumes() {
		if v.mapReady.Load() {
			continue
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			v.endLoad(e.loadMap(e.ctx, v))
		}()
	}
}

// mapLoadRetryMax bounds the wait between attempts at a load that failed
// for another reason than damage (the metadata store failing a read).
const mapLoadRetryMax = 30 * time.Second

// loadMap reads v's map, then reclaims the slots nothing refers to (the
// map is complete, and serves those waiting for it, before the punching,
// which may take seconds after a run that freed much).
func (e *Engine) loadMap(ctx context.Context, v *volume) error {
	if err := e.retryLoad(ctx, v, true, v.scanMap); err != nil {
		return err
	}
	v.mapComplete()
	return e.retryLoad(ctx, v, false, func(ctx context.Context) error { return e.reclaim(ctx, v, nil) })
}

// retryLoad runs step until it succeeds, retrying what fails for a reason
// other than damage. turn: the step reads the metadata store, one
// volume's at a time, so that the loads leave a core to the volumes' I/O.
func (e *Engine) retryLoad(ctx context.Context, v *volume, turn bool, step func(context.Context) error) error {
	for backoff := time.Second; ; backoff = min(2*backoff, mapLoadRetryMax) {
		if turn {
			select {
			case e.loadTurn <- struct{}{}:
			case <-ctx.Done():
				return errLoadStopped
			}
		}
		err := step(ctx)
		if turn {
			<-e.loadTurn
		}
		switch {
		case ctx.Err() != nil:
			return errLoadStopped
		case errors.Is(err, ErrMetadataDamaged):
			return v.damaged(err)
		case err == nil:
			return nil
		}
		v.log.Warn("loading the volume's map failed; retrying", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return errLoadStopped
		case <-time.After(backoff):
		}
	}
}
