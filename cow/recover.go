package cow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// loadedVolume is a volume read from its records, before anything its
// records do not explain is reclaimed.
type loadedVolume struct {
	v        *volume
	used     []uint64 // slots the records (and the map journal) refer to
	findings []string // where its records and its data file disagree
	// retire are slots durable records refer to that the map journal
	// replaced: kept until the next round makes the replacement durable.
	retire []uint64
}

// recover loads every volume, finishes interrupted deletions and then
// reclaims unexplained space (see above). accept: the operator accepts
// metadata loss; damaged: the metadata store failed its checks (and the
// operator accepted it).
func (e *Engine) recover(accept, damaged bool) error {
	recs, err := e.meta.Volumes()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	known := make(map[string]bool)
	var loaded []*loadedVolume
	var findings []string
	for _, r := range recs {
		if r.Deleting {
			e.log.Info("finishing interrupted deletion", "volume", r.ID)
			if err := e.purge(r); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
			continue
		}
		lv, err := e.loadVolume(r, accept)
		if err != nil {
			return fmt.Errorf("recover volume %s: %w", r.ID, err)
		}
		findings = append(findings, lv.findings...)
		known[r.ID] = true
		if lv.v == nil {
			continue // its data file is missing: refused below
		}
		loaded = append(loaded, lv)
		e.vols[r.ID] = lv.v
	}
	snaps, err := e.meta.Snapshots()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, r := range snaps {
		e.snaps[r.ID] = &snapshot{rec: r}
	}
	empty, unexplained, err := e.strayDataFiles(known)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, name := range unexplained {
		findings = append(findings, fmt.Sprintf("data file %s holds data but no volume record explains it", name))
	}
	var lost *lostAndFound
	if len(findings) > 0 || damaged {
		if !accept {
			return &meta.DamageError{Dir: e.dir, Findings: findings}
		}
		e.log.Warn("starting with metadata loss accepted: data no record explains is kept in lost+found", "findings", strings.Join(findings, "; "))
		lost = &lostAndFound{dir: e.lostDir}
		for _, name := range unexplained {
			if err := lost.keepFile(filepath.Join(e.dir, "volumes", name)); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
		}
	}
	for _, name := range empty {
		e.log.Info("removing the empty data file of no volume (an interrupted create)", "file", name)
		if err := os.Remove(filepath.Join(e.dir, "volumes", name)); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	for _, lv := range loaded {
		if err := e.reclaim(lv, lost); err != nil {
			return fmt.Errorf("recover volume %s: %w", lv.v.id, err)
		}
	}
	if len(recs) > 0 {
		e.log.Info("recovered volumes", "count", len(e.vols))
	}
	return nil
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

// loadVolume rebuilds a volume's in-memory state from its records and
// checks them against its data file; it changes nothing on disk but a
// missing data file of a volume without data.
func (e *Engine) loadVolume(r meta.VolumeRecord, accept bool) (*loadedVolume, error) {
	lv := &loadedVolume{}
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
			lv.findings = append(lv.findings, fmt.Sprintf("data file %s is missing but the metadata records data in it", path))
			if !accept {
				return lv, nil
			}
		} else {
			e.log.Warn("recreating the missing data file of an empty volume", "volume", r.ID)
		}
		f, err = e.openDataFile(path, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	lv.v = e.newVolume(r, f)
	if err := e.loadMap(lv); err != nil {
		f.Close()
		return nil, err
	}
	if err := e.replayJournal(lv); err != nil {
		f.Close()
		return nil, err
	}
	if err := lv.checkFileSize(path); err != nil {
		f.Close()
		return nil, err
	}
	return lv, nil
}

// loadMap reads the volume's live map and the slots its change sets hold.
func (e *Engine) loadMap(lv *loadedVolume) error {
	v := lv.v
	err := e.meta.LiveExtents(v.id, func(blk uint64, me meta.Extent) error {
		if blk >= v.blocks {
			return fmt.Errorf("live map entry for block %d beyond the volume's %d blocks", blk, v.blocks)
		}
		// Loaded from durable metadata: sealed.
		x := extent{slot: me.Slot, gen: uint32(me.Gen), flags: flagSealed}
		if me.Zero() {
			x.flags |= flagZero
		} else {
			lv.used = append(lv.used, me.Slot)
		}
		v.live.set(blk, x)
		return nil
	})
	if err != nil {
		return err
	}
	// Versions in change sets of earlier generations still hold their
	// slots (a snapshot may need them).
	return e.meta.ChangeExtents(v.id, func(gen, blk uint64, me meta.Extent) error {
		if !me.Zero() {
			lv.used = append(lv.used, me.Slot)
		}
		return nil
	})
}

// replayJournal applies the volume's map journal over its durable map:
// the changes a process acknowledged before it died, not yet durable.
// Each change is dirty again (the next round makes it durable) and sealed
// (it may be durable already: a crash between a round's commit and its
// dropping the records), so its slot is never punched while a record may
// refer to it. The volume keeps the records in its new journal.
func (e *Engine) replayJournal(lv *loadedVolume) error {
	if e.journalDir == "" {
		return nil
	}
	v := lv.v
	recs, err := readJournal(e.journalPath(v.id), e.journalHeader(v.id))
	if err != nil {
		return err
	}
	durable := map[uint64]extent{} // each journaled block's durable entry
	for _, r := range recs {
		if _, ok := durable[r.blk]; !ok {
			durable[r.blk] = v.live.get(r.blk)
		}
		if r.present {
			r.x.flags |= flagSealed
			v.live.set(r.blk, r.x)
		} else {
			v.live.clear(r.blk)
		}
		v.dirty[r.blk] = struct{}{}
	}
	for blk, old := range durable {
		cur := v.live.get(blk)
		if cur.hasData() {
			lv.used = append(lv.used, cur.slot)
		}
		// A version of this generation (or a hydrated copy) that the
		// journal replaced is the volume's alone (replaceLocked).
		replaced := !cur.hasData() || cur.slot != old.slot
		if old.hasData() && replaced && (old.gen == v.gen || old.gen == hydratedGen) {
			lv.retire = append(lv.retire, old.slot)
		}
	}
	if len(recs) > 0 {
		e.log.Info("replayed the map journal: writes acknowledged before the last stop", "volume", v.id, "changes", len(recs), "blocks", len(durable))
	}
	return e.openJournal(v, recs)
}

// checkFileSize: a slot is written (and the data file's size made
// durable by fdatasync) before any record refers to it, so every slot the
// records name starts within the file.
func (lv *loadedVolume) checkFileSize(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	beyond, first := 0, uint64(0)
	for _, s := range lv.used {
		if lv.v.slotOffset(s) >= fi.Size() {
			if beyond == 0 || s < first {
				first = s
			}
			beyond++
		}
	}
	if beyond > 0 {
		lv.findings = append(lv.findings, fmt.Sprintf("volume %s: %d mappings name slots past the end of its data file (%d bytes; first slot %d)",
			lv.v.id, beyond, fi.Size(), first))
	}
	return nil
}

// reclaim makes the slots no record refers to reusable: punched (they may
// hold data whose metadata never became durable), the file trimmed past
// the last slot in use. With lost set, what they hold is kept there first.
func (e *Engine) reclaim(lv *loadedVolume, lost *lostAndFound) error {
	v, f := lv.v, lv.v.file
	holes := v.slots.rebuild(lv.used)
	for _, s := range lv.retire {
		v.slots.retire(s, v.hot == nil)
	}
	if lost != nil {
		if err := lost.keepSlots(v, e.dataPath(v.id), holes); err != nil {
			return err
		}
	}
	for _, h := range holes {
		if err := f.Punch(v.slotOffset(h[0]), v.slotOffset(h[1]-h[0])); err != nil {
			return err
		}
	}
	if err := f.Truncate(v.slotOffset(v.slots.next)); err != nil {
		return fmt.Errorf("trim data file: %w", err)
	}
	return f.Sync()
}
