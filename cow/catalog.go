package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// The catalogue of snapshots is the stores' manifests: a daemon sees every
// completed snapshot in the stores it uses, whoever created it, alongside
// its own records (Badger), which add what only it knows: its pending and
// failed snapshots. A snapshot is visible to other daemons from the moment
// its manifest is stored, which is also the moment it is complete.
//
// The catalogue is refreshed in the background (one listing per store
// every catalogInterval) so that DescribeSnapshots never waits for the
// store, and a snapshot asked for by ID that the catalogue lacks is looked
// up in the stores at once (one GET), so that a snapshot completed on
// another host can be used as soon as it is complete.

// DefaultCatalogInterval is how often the catalogue is refreshed.
const DefaultCatalogInterval = 5 * time.Second

// catalogLoop refreshes the catalogue until the engine stops.
func (e *Engine) catalogLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.snapshots.catalogInterval)
	defer t.Stop()
	for {
		for name, st := range e.stores {
			ctx, cancel := context.WithTimeout(e.ctx, max(e.snapshots.catalogInterval, 30*time.Second))
			err := e.refreshCatalog(ctx, name, st)
			cancel()
			if err != nil && e.ctx.Err() == nil {
				e.log.Warn("refreshing the snapshot catalogue", "store", name, "err", err)
			}
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshCatalog lists the manifests in store name: it adds snapshots other
// daemons created, drops those whose manifests are gone, and hides this
// daemon's own completed snapshots whose manifests are gone.
func (e *Engine) refreshCatalog(ctx context.Context, name string, st snapstore.Store) error {
	start := time.Now()
	// Own snapshots completed before the listing: their manifests were
	// stored before it began, so the listing shows them unless deleted.
	ownCompleted := map[string]bool{}
	e.snapshots.mu.Lock()
	for id, s := range e.snapshots.byID {
		if r := s.record(); r.State == string(SnapshotCompleted) && r.Store == name {
			ownCompleted[id] = true
		}
	}
	e.snapshots.mu.Unlock()

	found := map[string]bool{}
	attrMods := map[string]time.Time{} // snapshot_attributes.go
	err := st.List(ctx, "snapshots/", func(o snapstore.ObjectInfo) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), "/manifest"); ok && !strings.Contains(id, "/") {
			found[id] = true
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), "/attributes"); ok && !strings.Contains(id, "/") {
			attrMods[id] = o.ModTime
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list manifests: %w", err)
	}
	var add []string
	e.snapshots.mu.Lock()
	for id := range found {
		if _, own := e.snapshots.byID[id]; !own {
			if _, known := e.snapshots.catalog[id]; !known {
				add = append(add, id)
			}
		}
	}
	for id, s := range e.snapshots.catalog {
		if s.store == name && !found[id] && s.seen.Before(start) {
			delete(e.snapshots.catalog, id)
		}
	}
	// Own snapshots whose manifests are gone were deleted by another
	// daemon, or the daemon now points at another bucket: hide them, but
	// keep their records, so that pointing it back shows them again.
	for id := range ownCompleted {
		s, ok := e.snapshots.byID[id]
		if !ok {
			continue
		}
		if gone := !found[id]; gone != s.gone.Load() {
			s.gone.Store(gone)
			e.log.Info("own snapshot's manifest", "snapshot", id, "store", name, "missing", gone)
		}
	}
	e.snapshots.mu.Unlock()
	for _, id := range add {
		if _, err := e.fetchCatalogEntry(ctx, name, st, id); err != nil && !errors.Is(err, ErrSnapshotNotFound) {
			e.log.Warn("cannot read a snapshot's manifest", "snapshot", id, "store", name, "err", err)
		}
	}
	e.refreshAttributes(ctx, name, st, attrMods)
	return nil
}

// fetchCatalogEntry reads snapshot id's manifest from store name and adds
// the snapshot to the catalogue.
func (e *Engine) fetchCatalogEntry(ctx context.Context, name string, st snapstore.Store, id string) (*snapshot, error) {
	seen := time.Now()
	// Not through the object cache: the manifest may be gone since.
	m, _, err := getManifest(ctx, st, snapfmt.ManifestKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	s := &snapshot{
		rec: meta.SnapshotRecord{
			ID:          id,
			VolumeID:    m.VolumeID,
			State:       string(SnapshotCompleted),
			Progress:    100,
			StartTime:   m.StartTime,
			Description: m.Description,
			Tags:        tagsToMeta(tagsFromFormat(m.Tags)),
			VolumeSize:  m.VolumeSize,
			BlockSize:   m.BlockSize,
			Store:       name,
			OutpostArn:  m.OutpostArn,
			DataBytes:   m.DataBytes,
			Encryption:  lineage.FromFormat(m.Encryption),
		},
		owner: cmp.Or(m.OwnerID, DefaultAccountID),
		store: name,
		seen:  seen,
	}
	s.rec.CompletionTime = m.CompletionTime
	if s.attrs, err = readStoreAttributes(ctx, st, id); err != nil {
		return nil, err
	}
	e.snapshots.mu.Lock()
	defer e.snapshots.mu.Unlock()
	if own, ok := e.snapshots.byID[id]; ok {
		return own, nil
	}
	if known, ok := e.snapshots.catalog[id]; ok {
		return known, nil
	}
	e.snapshots.catalog[id] = s
	return s, nil
}

// lookupRemote finds snapshot id in the stores (a snapshot another daemon
// completed since the last refresh).
func (e *Engine) lookupRemote(ctx context.Context, id string) (*snapshot, error) {
	if !ValidSnapshotID(id) {
		return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for name, st := range e.stores {
		s, err := e.fetchCatalogEntry(ctx, name, st, id)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrSnapshotNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("look up snapshot %s: %w", id, errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
}
