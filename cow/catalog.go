package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// catalog keeps the snapshot table's catalogue (other daemons'
// snapshots) in step with the stores' manifests. It needs the table, the
// stores and a way to refresh the snapshots' attributes
// (snapshot_attributes.go), not the engine.
type catalog struct {
	snapshots *snapshotTable
	stores    map[string]snapstore.Store
	log       *slog.Logger
	// refreshAttributes is Engine.refreshAttributes.
	refreshAttributes func(ctx context.Context, name string, st snapstore.Store, mods map[string]time.Time)
}

// newCatalog is the catalogue of e's snapshot table and stores.
func newCatalog(e *Engine) *catalog {
	return &catalog{snapshots: &e.snapshots, stores: e.stores, log: e.log, refreshAttributes: e.refreshAttributes}
}

// catalogLoop refreshes the catalogue until the engine stops.
func (e *Engine) catalogLoop() {
	defer e.wg.Done()
	e.catalog.loop(e.ctx)
}

// loop refreshes the catalogue until ctx (the engine's) is cancelled.
func (c *catalog) loop(ctx context.Context) {
	interval := c.snapshots.catalogInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for name, st := range c.stores {
			rctx, cancel := context.WithTimeout(ctx, max(interval, 30*time.Second))
			err := c.refresh(rctx, name, st)
			cancel()
			if err != nil && ctx.Err() == nil {
				c.log.Warn("refreshing the snapshot catalogue", "store", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh lists the manifests in store name: it adds snapshots other
// daemons created, drops those whose manifests are gone, and hides this
// daemon's own completed snapshots whose manifests are gone.
func (c *catalog) refresh(ctx context.Context, name string, st snapstore.Store) error {
	start := time.Now()
	// Own snapshots completed before the listing: their manifests were
	// stored before it began, so the listing shows them unless deleted.
	ownCompleted := map[string]bool{}
	c.snapshots.mu.Lock()
	for id, s := range c.snapshots.byID {
		if r := s.record(); r.State == string(SnapshotCompleted) && r.Store == name {
			ownCompleted[id] = true
		}
	}
	c.snapshots.mu.Unlock()

	found, attrMods, err := listManifests(ctx, st)
	if err != nil {
		return err
	}
	add := c.reconcile(name, start, found, ownCompleted)
	for _, id := range add {
		if _, err := c.fetch(ctx, name, st, id); err != nil && !errors.Is(err, ErrSnapshotNotFound) {
			c.log.Warn("cannot read a snapshot's manifest", "snapshot", id, "store", name, "err", err)
		}
	}
	c.refreshAttributes(ctx, name, st, attrMods)
	return nil
}

// listManifests lists st's snapshots: those with a manifest (found), and
// the store times of their attributes objects (snapshot_attributes.go).
func listManifests(ctx context.Context, st snapstore.Store) (found map[string]bool, attrMods map[string]time.Time, err error) {
	found, attrMods = map[string]bool{}, map[string]time.Time{}
	err = st.List(ctx, "snapshots/", func(o snapstore.ObjectInfo) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), "/manifest"); ok && !strings.Contains(id, "/") {
			found[id] = true
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), "/attributes"); ok && !strings.Contains(id, "/") {
			attrMods[id] = o.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list manifests: %w", err)
	}
	return found, attrMods, nil
}

// reconcile brings the table in step with a listing of store name begun
// at start (found: the snapshots with a manifest): it drops catalogue
// entries seen before the listing whose manifests are gone, hides or shows
// again ownCompleted snapshots, and returns the snapshots to add.
func (c *catalog) reconcile(name string, start time.Time, found, ownCompleted map[string]bool) []string {
	var add []string
	c.snapshots.mu.Lock()
	defer c.snapshots.mu.Unlock()
	for id := range found {
		if _, own := c.snapshots.byID[id]; !own {
			if _, known := c.snapshots.catalog[id]; !known {
				add = append(add, id)
			}
		}
	}
	for id, s := range c.snapshots.catalog {
		if s.store == name && !found[id] && s.seen.Before(start) {
			delete(c.snapshots.catalog, id)
		}
	}
	// Own snapshots whose manifests are gone were deleted by another
	// daemon, or the daemon now points at another bucket: hide them, but
	// keep their records, so that pointing it back shows them again.
	for id := range ownCompleted {
		s, ok := c.snapshots.byID[id]
		if !ok {
			continue
		}
		if gone := !found[id]; gone != s.gone.Load() {
			s.gone.Store(gone)
			c.log.Info("own snapshot's manifest", "snapshot", id, "store", name, "missing", gone)
		}
	}
	return add
}

// fetch reads snapshot id's manifest from store name and adds
// the snapshot to the catalogue.
func (c *catalog) fetch(ctx context.Context, name string, st snapstore.Store, id string) (*snapshot, error) {
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
	c.snapshots.mu.Lock()
	defer c.snapshots.mu.Unlock()
	if own, ok := c.snapshots.byID[id]; ok {
		return own, nil
	}
	if known, ok := c.snapshots.catalog[id]; ok {
		return known, nil
	}
	c.snapshots.catalog[id] = s
	return s, nil
}

// lookup finds snapshot id in the stores (a snapshot another daemon
// completed since the last refresh).
func (c *catalog) lookup(ctx context.Context, id string) (*snapshot, error) {
	if !ValidSnapshotID(id) {
		return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for name, st := range c.stores {
		s, err := c.fetch(ctx, name, st, id)
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
