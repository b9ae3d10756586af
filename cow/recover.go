package cow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// Recovery rebuilds every volume from the metadata store when the engine
// opens. It never destroys data on a guess: block data that no record
// explains (slots no mapping refers to, data files of no volume) is
// reclaimed only once the metadata store has passed its checks (meta.Open)
// and every volume's records agree with its data file. Otherwise the
// engine refuses to open, with a *meta.DamageError listing what it found
// and nothing changed, unless the operator accepts the loss
// (Options.AcceptMetadataLoss): then what cannot be placed is copied to
// <data-dir>/lost+found/<time>/ first.

// openedVolume is a volume as recovery opened it, before anything its
// records do not explain is reclaimed.
type openedVolume struct {
	v        *volume
	findings []string // where its records and its data file disagree
}

// recover opens every volume, finishes interrupted deletions and then
// reclaims unexplained space (see above) of the volumes whose maps it
// loaded (eager); the others load in the background once the engine
// serves (map_loader.go). accept: the operator accepts metadata loss;
// damaged: the metadata store failed its checks (and the operator accepted
// it).
func (e *Engine) recover(accept, damaged bool) error {
	t0 := time.Now()
	opened, known, findings, err := e.openVolumes(accept, damaged)
	if err != nil {
		return err
	}
	t0 = e.startTimes.add("open_volumes", t0)
	snaps, err := e.meta.Snapshots()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, r := range snaps {
		e.snapshots.byID[r.ID] = &snapshot{rec: r}
	}
	if err := e.loadSnapshotAttributes(); err != nil {
		return err
	}
	lost, err := e.settleFindings(known, findings, accept, damaged)
	if err != nil {
		return err
	}
	for _, ov := range opened {
		if err := e.reclaimEager(ov.v, lost); err != nil {
			return fmt.Errorf("recover volume %s: %w", ov.v.id, err)
		}
	}
	if len(known) > 0 {
		e.startTimes.add("reclaim_eager", t0)
		e.log.Info("recovered volumes", append([]any{"count", len(e.volumes.byID)}, e.startTimes.attrs()...)...)
	}
	return nil
}

// openVolumes opens every volume (openVolume) and finishes interrupted
// deletions; known are the volumes with records.
func (e *Engine) openVolumes(accept, damaged bool) (opened []*openedVolume, known map[string]bool, findings []string, err error) {
	recs, err := e.meta.Volumes()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("recover: %w", err)
	}
	known = make(map[string]bool)
	for _, r := range recs {
		if r.Deleting {
			e.log.Info("finishing interrupted deletion", "volume", r.ID)
			if err := e.purge(r); err != nil {
				return nil, nil, nil, fmt.Errorf("recover: %w", err)
			}
			continue
		}
		ov, err := e.openVolume(r, accept, damaged)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("recover volume %s: %w", r.ID, err)
		}
		findings = append(findings, ov.findings...)
		known[r.ID] = true
		if ov.v == nil {
			continue // its data file is missing: refused later
		}
		opened = append(opened, ov)
		e.volumes.byID[r.ID] = ov.v
	}
	return opened, known, findings, nil
}

// settleFindings refuses a start whose records do not explain what it
// found (or whose metadata store is damaged), unless the operator accepts
// the loss: then what no record explains goes to lost+found (returned).
// Empty data files of no volume are removed.
func (e *Engine) settleFindings(known map[string]bool, findings []string, accept, damaged bool) (*lostAndFound, error) {
	empty, unexplained, err := e.strayDataFiles(known)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	for _, name := range unexplained {
		findings = append(findings, fmt.Sprintf("data file %s holds data but no volume record explains it", name))
	}
	var lost *lostAndFound
	if len(findings) > 0 || damaged {
		if !accept {
			return nil, &meta.DamageError{Dir: e.dir, Findings: findings}
		}
		e.log.Warn("starting with metadata loss accepted: data no record explains is kept in lost+found", "findings", strings.Join(findings, "; "))
		lost = &lostAndFound{dir: e.lostDir}
		for _, name := range unexplained {
			if err := lost.keepFile(filepath.Join(e.dir, "volumes", name)); err != nil {
				return nil, fmt.Errorf("recover: %w", err)
			}
		}
	}
	for _, name := range empty {
		e.log.Info("removing the empty data file of no volume (an interrupted create)", "file", name)
		if err := os.Remove(filepath.Join(e.dir, "volumes", name)); err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
	}
	return lost, nil
}

// strayDataFiles lists the data files of no volume: empty ones (a create
// interrupted before its record was durable) and the others, which only
// lost metadata explains.
func (e *Engine) strayDataFiles(known map[string]bool) (empty, unexplained []string, err error) {
	entries, err := os.ReadDir(filepath.Join(e.dir, "volumes"))
	if err != nil {
		return nil, nil, err
	}
	for _, de := range entries {
		id, ok := strings.CutSuffix(de.Name(), ".data")
		if !ok || known[id] {
			continue
		}
		info, err := de.Info()
		if err != nil {
			return nil, nil, err
		}
		if info.Size() == 0 {
			empty = append(empty, de.Name())
		} else {
			unexplained = append(unexplained, de.Name())
		}
	}
	return empty, unexplained, nil
}

// openVolume opens a volume's data file, replays its map journal and
// decides how its map loads: in the background while the engine serves
// (the data file is at least as long as the slots end its records keep:
// meta/slots_end.go), or now, before the engine serves (eager: a store
// from before slots ends, a file shorter than its records say, damage
// found or accepted), where whatever is wrong becomes a finding. It
// changes nothing on disk but a missing data file of a volume without data.
func (e *Engine) openVolume(r meta.VolumeRecord, accept, damaged bool) (*openedVolume, error) {
	ov := &openedVolume{}
	path := e.dataPath(r.ID)
	f, err := e.openDataFile(path, false)
	if errors.Is(err, os.ErrNotExist) {
		// A create whose record outlived its data file; harmless only
		// if no block was ever recorded.
		empty, lerr := e.meta.HasNoExtents(r.ID)
		if lerr != nil {
			return nil, lerr
		}
		if !empty {
			ov.findings = append(ov.findings, fmt.Sprintf("data file %s is missing but the metadata records data in it", path))
			if !accept {
				return ov, nil
			}
		} else {
			e.log.Warn("recreating the missing data file of an empty volume", "volume", r.ID)
		}
		f, err = e.openDataFile(path, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	v := e.newVolume(r, f)
	ov.v = v
	if err := e.prepareLoad(ov, path, damaged); err != nil {
		if v.load != nil {
			v.load.view.Close()
		}
		f.Close()
		return nil, err
	}
	return ov, nil
}

// prepareLoad sets up the load of ov's map (see openVolume) and replays
// its journal; an eager load runs here, up to what reclaimEager does.
func (e *Engine) prepareLoad(ov *openedVolume, path string, damaged bool) error {
	v := ov.v
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	floor := uint64((fi.Size() + v.stride - 1) / v.stride)
	end, ok, err := e.meta.SlotsEnd(v.id)
	if err != nil {
		return err
	}
	if ok && end > floor {
		ov.findings = append(ov.findings, fmt.Sprintf("volume %s: its records name slots up to %d but its data file %s holds %d: it was cut short or replaced",
			v.id, end, path, floor))
	}
	if b, err := os.ReadFile(e.damagePath(v.id)); err == nil {
		ov.findings = append(ov.findings, fmt.Sprintf("volume %s: a start found its records damaged: %s", v.id, strings.TrimSpace(string(b))))
	}
	v.slotsEnd = end
	v.load = newMapLoad(floor, e.meta.NewReadView())
	v.mapReady.Store(false)
	v.load.eager = damaged || !ok || len(ov.findings) > 0
	v.slots.startLoad(floor)
	t0 := time.Now()
	if err := e.replayJournal(ov); err != nil {
		return err
	}
	t0 = e.startTimes.add("replay_journal", t0)
	if len(ov.findings) > 0 {
		v.load.eager = true // new slots from floor up might meet what is wrong
	}
	if !v.load.eager {
		return nil
	}
	if err := v.scanMap(context.Background()); err != nil {
		return err
	}
	e.startTimes.add("load_map_eager", t0)
	ov.findings = append(ov.findings, v.load.findings(v.id, path)...)
	return nil
}

// damagePath is where a load that found a volume's records damaged once
// the engine served says so, for the next start.
func (e *Engine) damagePath(id string) string {
	return filepath.Join(e.dir, "volumes", id+".damage")
}

// replayJournal applies the volume's map journal over its durable map:
// the changes a process acknowledged before it died, not yet durable.
// Each change is dirty again (the next round makes it durable) and captured
// (it may be durable already: a crash between a round's commit and its
// dropping the records), so its slot is never punched while a record may
// refer to it. The pages of the blocks it names need not be loaded: the
// entries go into memory now and the page's load leaves them alone
// (mapLoad.overlay). The volume keeps the records in its new journal.
func (e *Engine) replayJournal(ov *openedVolume) error {
	if e.journalDir == "" {
		return nil
	}
	v, l := ov.v, ov.v.load
	recs, err := readJournal(e.journalPath(v.id), e.journalHeader(v.id))
	if err != nil {
		return err
	}
	l.replayGen = v.gen
	seen := map[uint64]bool{}
	for _, r := range recs {
		if r.blk >= v.blockCount() {
			return fmt.Errorf("map journal: block %d beyond the volume's %d blocks", r.blk, v.blockCount())
		}
		if !seen[r.blk] {
			seen[r.blk] = true
			l.overlay[r.blk>>pageShift] = append(l.overlay[r.blk>>pageShift], r.blk)
		}
		if r.present {
			r.x.flags |= flagCaptured
			v.live.set(r.blk, r.x)
		} else {
			v.live.clear(r.blk)
		}
		v.dirty[r.blk] = struct{}{}
	}
	if f := v.journaledSlots(seen); f != "" {
		ov.findings = append(ov.findings, f)
	}
	if len(recs) > 0 {
		e.log.Info("replayed the map journal: writes acknowledged before the last stop", "volume", v.id, "changes", len(recs), "blocks", len(seen))
	}
	return e.openJournal(v, recs)
}

// journaledSlots counts the slots of the blocks the journal set as in use;
// it describes those past the data file's end, if any (a finding).
func (v *volume) journaledSlots(blks map[uint64]bool) string {
	l := v.load
	beyond, first := 0, uint64(0)
	for blk := range blks {
		cur := v.live.get(blk)
		if !cur.hasData() {
			continue
		}
		l.used.add(cur.slot)
		if cur.slot >= l.floor {
			if beyond == 0 || cur.slot < first {
				first = cur.slot
			}
			beyond++
		}
	}
	if beyond == 0 {
		return ""
	}
	return fmt.Sprintf("volume %s: its map journal names %d slots past the end of its data file (%d slots; first slot %d)",
		v.id, beyond, l.floor, first)
}

// reclaimEager reclaims the space of a volume whose map loaded before the
// engine serves, and marks its load done.
func (e *Engine) reclaimEager(v *volume, lost *lostAndFound) error {
	if !v.load.eager {
		return nil
	}
	if err := e.reclaim(context.Background(), v, lost); err != nil {
		return err
	}
	if err := os.Remove(e.damagePath(v.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	v.mapComplete()
	v.endLoad(nil)
	return nil
}

// reclaim makes the slots below the data file's length at open that
// nothing refers to reusable, once the volume's map and change sets are
// all read: punched (they may hold data whose metadata never became
// durable). With lost set, what they hold is kept there first. An eager
// load (nothing served yet) also trims the file past the last slot in use.
//
// Nothing refers to them: the load read the records as they were before
// the engine served (a slot none of them names was not referred to then),
// and since, new slots came from past that length or from slots freed,
// which those records or this run's new slots had named. The entries in
// memory and the allocator's lists are counted too: the punch rests on
// what is in hand, not only on that argument.
func (e *Engine) reclaim(ctx context.Context, v *volume, lost *lostAndFound) error {
	l := v.load
	t0 := time.Now()
	v.mapMu.Lock()
	holes, end := v.unusedLocked()
	v.mapMu.Unlock()
	t0 = l.times.add("find_unused", t0)
	if lost != nil {
		if err := lost.keepSlots(v, e.dataPath(v.id), holes); err != nil {
			return err
		}
	}
	if err := e.punchHoles(ctx, v, holes); err != nil {
		return err
	}
	t0 = l.times.add("punch", t0)
	if l.eager {
		if err := e.trim(v, end); err != nil {
			return err
		}
	}
	if err := v.file.Sync(); err != nil {
		return err
	}
	l.times.add("fsync", t0)
	v.mapMu.Lock()
	v.slots.endLoad(holes)
	v.mapMu.Unlock()
	return nil
}

// unusedLocked returns the runs of slots below the data file's length at
// open that nothing refers to (see reclaim). An eager load (nothing
// served yet) takes the slot past the last one in use as the volume's
// end, returned, and looks below it. v.mapMu is held.
func (v *volume) unusedLocked() (holes [][2]uint64, end uint64) {
	l := v.load
	used := &l.used
	for _, p := range v.live.pages {
		for _, x := range p.e {
			if x.hasData() {
				used.add(x.slot)
			}
		}
	}
	v.slots.listed(used.add)
	end = l.floor
	if l.eager {
		end = used.end()
		v.slots.next = end
	}
	holes = used.holes(end)
	l.unusedRuns = len(holes)
	for _, h := range holes {
		l.unused += h[1] - h[0]
	}
	return holes, end
}

// punchHoles punches runs of unused slots.
func (e *Engine) punchHoles(ctx context.Context, v *volume, holes [][2]uint64) error {
	for _, h := range holes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := v.file.Punch(v.slotOffset(h[0]), v.slotOffset(h[1]-h[0])); err != nil {
			return err
		}
	}
	return nil
}

// trim cuts an eagerly loaded volume's data file to end slots, the first
// past the last in use, after recording end as its slots end (first: a
// start after a crash between the two finds the file longer than its
// slots end, as it may be).
func (e *Engine) trim(v *volume, end uint64) error {
	var b meta.Batch
	b.PutSlotsEnd(v.id, end)
	if err := e.meta.Apply(&b); err != nil {
		return err
	}
	if err := e.metaSync.sync(); err != nil {
		return err
	}
	v.mapMu.Lock()
	v.slotsEnd = end
	v.mapMu.Unlock()
	if err := v.file.Truncate(v.slotOffset(end)); err != nil {
		return fmt.Errorf("trim data file: %w", err)
	}
	return nil
}
