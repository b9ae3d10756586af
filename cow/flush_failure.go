package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// The ends of a flush that failed: a failed attempt's packs, a failed
// snapshot's manifest, its failure recorded.

// packDiscardTimeout bounds the deletion of a failed attempt's packs.
const packDiscardTimeout = 30 * time.Second

// closePacks ends a flush attempt's pack writer: it waits for the uploads
// in flight and, after an attempt that failed before it sent its manifest
// (failed), deletes the packs it stored, best effort, before the retry: left
// for the collector, they would take the store's space for its whole grace
// period, attempt after attempt (a full disk filled fuller by every retry).
func (f *flusher) closePacks(pw *packWriter, failed bool, snapID string) {
	pw.abort()
	if !failed {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.env.ctx()), packDiscardTimeout)
	defer cancel()
	n, err := pw.discard(ctx)
	switch {
	case err != nil:
		f.env.log.Warn("deleting a failed flush attempt's packs (the rest is garbage the collector takes)", "snapshot", snapID, "deleted", n, "err", err)
	case n > 0:
		f.env.log.Info("deleted a failed flush attempt's packs", "snapshot", snapID, "packs", n)
	}
}

// unpublish deletes snapshot r's manifest, stored by an attempt that then
// failed, if there is one. A valid manifest under its key that names
// another snapshot or volume (errForeignManifest) is not r's to delete: it
// stays, for whoever stored it.
func (f *flusher) unpublish(r meta.SnapshotRecord) error {
	st, err := f.env.engine.store(r.Store)
	if err != nil {
		return nil // no store, no manifest
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.env.ctx()), time.Minute)
	defer cancel()
	foreign, err := foreignManifest(ctx, st, r)
	if err != nil || foreign {
		return err
	}
	if err := st.Delete(ctx, snapfmt.ManifestKey(r.ID)); err != nil {
		return fmt.Errorf("delete manifest of %s: %w", r.ID, err)
	}
	f.env.reader.objects.remove(cacheKey("m", st, snapfmt.ManifestKey(r.ID)))
	return nil
}

// failSnapshot ends snapshot s in state error, for cause: it records the
// failure durably, then deletes what the snapshot's attempts stored that
// names it (its manifest, unless foreign; its hold, unless it is the
// volume's base; a copy's hold on its source).
func (f *flusher) failSnapshot(s *snapshot, cause error) {
	s.mu.Lock()
	s.rec.State = string(SnapshotError)
	s.rec.StatusMessage = cause.Error()
	r := s.rec
	s.mu.Unlock()
	err := f.env.meta.PutSnapshot(r)
	if err == nil {
		err = f.env.metaSync.sync()
	}
	if err != nil {
		// It stays pending on disk: the next start tries it again.
		f.env.log.Error("cannot record the snapshot's failure", "snapshot", r.ID, "err", err)
		return
	}
	// An attempt may have stored the manifest (the snapshot's visible
	// root, for other daemons too) and then failed on the hold: a failed
	// snapshot must not be seen anywhere as completed. But a manifest
	// that names another snapshot (errForeignManifest) was never ours to
	// delete: it stays, for whoever stored it.
	st, err := f.env.engine.store(r.Store)
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(f.env.ctx()), 30*time.Second)
	defer cancel()
	var keys []string
	if foreign, err := foreignManifest(dctx, st, r); err != nil || !foreign {
		keys = append(keys, snapfmt.ManifestKey(r.ID))
	}
	if r.CopyOf != "" {
		f.env.engine.dropCopyHold(r)
	}
	if v, err := f.env.engine.lookup(r.VolumeID); err == nil {
		v.mapMu.Lock()
		if v.record.BaseManifest != snapfmt.HoldKey(r.VolumeID, r.ID) {
			keys = append(keys, snapfmt.HoldKey(r.VolumeID, r.ID))
		}
		v.mapMu.Unlock()
	}
	for _, key := range keys {
		if err := st.Delete(dctx, key); err != nil {
			f.env.log.Warn("cannot remove what a failed snapshot stored; garbage collection ignores it but another daemon may list it",
				"snapshot", r.ID, "key", key, "err", err)
		}
	}
}

// foreignManifest reports whether the object under snapshot r's manifest
// key is a valid manifest of another snapshot or volume. Nothing there, or
// an object that does not decode (a torn put of our own), is not foreign.
func foreignManifest(ctx context.Context, st snapstore.Store, r meta.SnapshotRecord) (bool, error) {
	b, err := st.Get(ctx, snapfmt.ManifestKey(r.ID))
	switch {
	case errors.Is(err, snapstore.ErrNotFound), errors.Is(err, snapstore.ErrCorrupt):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read the manifest of %s: %w", r.ID, err)
	}
	m, err := snapfmt.DecodeManifest(b)
	if err != nil {
		return false, nil
	}
	return m.SnapshotID != r.ID || m.VolumeID != r.VolumeID, nil
}
