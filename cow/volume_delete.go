package cow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cowvol/cowvol/meta"
)

// DeleteVolume deletes a volume that no one has open: its data and
// metadata are gone when it returns.
func (e *Engine) DeleteVolume(ctx context.Context, id string) error {
	v, err := e.lookup(id)
	if err != nil {
		return err
	}
	// Deleting a volume removes every record of it: not while its map
	// still loads them (a damaged one may go).
	if err := v.waitLoaded(ctx); err != nil && !errors.Is(err, ErrMetadataDamaged) {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	v.mapMu.Lock()
	if v.opens > 0 {
		v.mapMu.Unlock()
		return fmt.Errorf("%w: %s is open %d time(s)", ErrVolumeInUse, id, v.opens)
	}
	if v.doomed {
		v.mapMu.Unlock()
		return fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	v.mapMu.Unlock()
	// The flusher reads a pending snapshot's blocks from the volume,
	// and finishes a completed one's flush on it.
	// The volume's snapshot turn: no fork of it is under way (one
	// that has synced but not yet entered its snapshot would be missed).
	if h := e.hooks.deleteWaitsForTurn; h != nil {
		h()
	}
	v.snapTurn.Lock()
	e.snapshots.mu.Lock()
	pending := e.pendingSnapshotsLocked(id)
	if f := e.snapshots.inFlight; pending == 0 && f != nil && f.volID == id {
		e.snapshots.mu.Unlock()
		v.snapTurn.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("delete volume %s: waiting for its snapshot's flush to finish: %w", id, ctx.Err())
		}
		return e.DeleteVolume(ctx, id)
	}
	v.mapMu.Lock()
	if pending == 0 && v.opens == 0 {
		v.doomed = true
	}
	doomed, opens := v.doomed, v.opens
	r := v.record
	stop := v.stopHydration
	v.mapMu.Unlock()
	e.snapshots.mu.Unlock()
	v.snapTurn.Unlock()
	switch {
	case opens > 0:
		return fmt.Errorf("%w: %s is open %d time(s)", ErrVolumeInUse, id, opens)
	case !doomed:
		return fmt.Errorf("%w: volume %s has %d pending snapshot(s); wait for them to complete", ErrIncorrectState, id, pending)
	}
	if stop != nil {
		stop()
	}
	// Wait out a sync round in flight (the background loop's); rounds
	// that start from now on see doomed and do nothing.
	_ = v.syncer.sync()

	err = v.updateRecord(func(rec *meta.VolumeRecord) { rec.Deleting = true }, func(rec meta.VolumeRecord) { r = rec })
	if err != nil {
		v.mapMu.Lock()
		v.doomed = false
		v.mapMu.Unlock()
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	e.removeVolume(ctx, v, r)
	e.log.Info("volume deleted", "volume", id)
	return nil
}

// removeVolume forgets doomed volume v, whose record r says Deleting:
// closes its files, purges its data and records, and drops its holds on
// snapshots.
func (e *Engine) removeVolume(ctx context.Context, v *volume, r meta.VolumeRecord) {
	id := v.id
	e.volumes.mu.Lock()
	delete(e.volumes.byID, id)
	fn := e.volumes.onRemoved
	e.volumes.mu.Unlock()
	v.file.Close()
	if v.load != nil {
		v.load.view.Close() // a damaged volume's view was still open
	}
	v.mapMu.Lock()
	if v.journal != nil {
		v.journal.close()
		v.journal = nil
	}
	v.mapMu.Unlock()
	if err := e.purge(r); err != nil {
		// The record says Deleting: the next start finishes the job.
		e.log.Error("volume deletion incomplete; it completes at the next start", "volume", id, "err", err)
	}
	if r.BaseManifest != "" || r.SnapshotID != "" {
		e.hydrator.dropHolds(ctx, id, "")
		// In the background: a collection marks and sweeps the whole
		// store, too long to hold the caller (and e.gc) for.
		for name := range e.stores {
			e.requestGC(name)
		}
	}
	if fn != nil {
		fn(id)
	}
}

// purge removes a volume's data file and metadata.
func (e *Engine) purge(r meta.VolumeRecord) error {
	if err := os.Remove(e.dataPath(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove data file: %w", err)
	}
	if e.journalDir != "" {
		if err := os.Remove(e.journalPath(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove map journal: %w", err)
		}
	}
	if err := syncDir(filepath.Join(e.dir, "volumes")); err != nil {
		return err
	}
	if err := e.meta.DeleteVolume(r); err != nil {
		return err
	}
	return e.metaSync.sync()
}
