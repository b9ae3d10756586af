package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// The recycle bin (EC2's ListSnapshotsInRecycleBin and
// RestoreSnapshotFromRecycleBin): DeleteSnapshot of a completed snapshot
// that a rule of this daemon matches (recycle_rules.go) moves it into the
// bin instead of destroying it (recycle_bin_format.go says how it is
// stored). Any daemon of the owning account that shares the store lists
// and restores it; garbage collection on every daemon keeps its data
// (the bin's hold is a root) until its retention ends, when whichever
// daemon collects first deletes it for good.

// RecycledSnapshot describes a snapshot in the recycle bin.
type RecycledSnapshot struct {
	ID          string
	VolumeID    string
	Description string
	RuleID      string
	OwnerID     string
	EnterTime   time.Time
	ExitTime    time.Time
}

// recycleBin moves deleted snapshots into the bin, lists, restores and
// expires them. Its fields are all it uses of the engine.
type recycleBin struct {
	stores map[string]snapstore.Store
	store  func(name string) (snapstore.Store, error)
	owner  string        // the account ID: a bin lists its own
	day    time.Duration // a retention DAY (Options.RecycleBinDay)
	meta   binMeta
	sync   func() error // makes meta's changes durable
	// snapshots is the engine's table, which a recycled snapshot leaves;
	// gc is held shared by a restore.
	snapshots *snapshotTable
	gc        *gcState
	log       *slog.Logger
	// releaseManifest drops a deleted snapshot's manifest (snapshot.go);
	// fetchCatalogEntry reads a restored one back into the catalogue
	// (catalog.go).
	releaseManifest   func(ctx context.Context, r meta.SnapshotRecord, vols []*volume) error
	fetchCatalogEntry func(ctx context.Context, name string, st snapstore.Store, id string) (*snapshot, error)
}

// binMeta is what the recycle bin uses of the metadata store: the rules,
// and the records a recycled snapshot takes with it.
type binMeta interface {
	RecycleRules() ([]RecycleRule, error)
	DeleteSnapshot(id string) error
	DeleteSnapshotAttributes(id string) error
}

// newRecycleBin is the recycle bin of e's stores.
func newRecycleBin(e *Engine) *recycleBin {
	return &recycleBin{
		stores: e.stores, store: e.store, owner: e.accountID, day: e.rules.day,
		meta: e.meta, sync: e.metaSync.sync, snapshots: &e.snapshots, gc: &e.gc, log: e.log,
		releaseManifest: e.releaseManifest, fetchCatalogEntry: e.catalog.fetch,
	}
}

// recycleIfRetained moves completed snapshot s (record r) to the recycle
// bin if a rule retains it (see recycleBin.recycleIfRetained); DeleteSnapshot
// calls it holding e.gc exclusively.
func (e *Engine) recycleIfRetained(ctx context.Context, s *snapshot, r meta.SnapshotRecord, vols []*volume) (bool, error) {
	return e.bin.recycleIfRetained(ctx, s, r, vols)
}

// recycleIfRetained moves completed snapshot s (record r) to the recycle
// bin if a rule retains it; it reports whether it did. DeleteSnapshot
// calls it holding e.gc exclusively; vols are the engine's volumes.
func (bin *recycleBin) recycleIfRetained(ctx context.Context, s *snapshot, r meta.SnapshotRecord, vols []*volume) (bool, error) {
	rules, err := bin.meta.RecycleRules()
	if err != nil {
		return false, err
	}
	rule, ok := retainingRule(rules, s.info().Tags)
	if !ok {
		return false, nil
	}
	st, err := bin.store(r.Store)
	if err != nil {
		return false, err
	}
	_, manifest, err := getManifest(ctx, st, snapfmt.ManifestKey(r.ID))
	if err != nil {
		return false, fmt.Errorf("recycle snapshot %s: %w", r.ID, err)
	}
	now := time.Now().UTC()
	rec := recycledRecord{SnapshotID: r.ID, OwnerID: cmp.Or(s.owner, bin.owner), VolumeID: r.VolumeID,
		Description: r.Description, RuleID: rule.ID, EnterTime: now,
		ExitTime: now.Add(time.Duration(rule.RetentionValue) * bin.day)}
	b, err := encodeRecycled(rec)
	if err != nil {
		return false, err
	}
	// Record, hold, then the manifest goes: until then the snapshot is
	// live and not listed in the bin (a record beside a manifest is an
	// unfinished move, which expiry clears).
	if err := st.Put(ctx, recycleRecordKey(r.ID), b); err != nil {
		return false, fmt.Errorf("recycle snapshot %s: %w", r.ID, err)
	}
	if err := st.Put(ctx, recycleHoldKey(r.ID), manifest); err != nil {
		return false, fmt.Errorf("recycle snapshot %s: %w", r.ID, err)
	}
	if err := bin.releaseManifest(ctx, r, vols); err != nil {
		return false, err
	}
	// Its attributes object stays in the store with it; the local copy
	// goes with the record.
	if err := bin.meta.DeleteSnapshot(r.ID); err != nil {
		return true, err
	}
	if err := bin.meta.DeleteSnapshotAttributes(r.ID); err != nil {
		return true, err
	}
	if err := bin.sync(); err != nil {
		return true, err
	}
	r.Deleted = true
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
	bin.snapshots.mu.Lock()
	delete(bin.snapshots.byID, r.ID)
	delete(bin.snapshots.catalog, r.ID)
	bin.snapshots.mu.Unlock()
	bin.log.Info("snapshot moved to the recycle bin", "snapshot", r.ID, "rule", rule.ID, "until", rec.ExitTime)
	return true, nil
}

// readRecycled reads snapshot id's recycle-bin record from st
// (snapstore.ErrNotFound if there is none).
func readRecycled(ctx context.Context, st snapstore.Store, id string) (recycledRecord, error) {
	b, err := st.Get(ctx, recycleRecordKey(id))
	if err != nil {
		return recycledRecord{}, err
	}
	return decodeRecycled(b, id)
}

// binListing lists st's recycle-bin records and manifests: the
// snapshots in the bin are those with a record and no manifest.
func binListing(ctx context.Context, st snapstore.Store) (records []string, manifests map[string]bool, err error) {
	manifests = map[string]bool{}
	err = st.List(ctx, snapfmt.SnapshotPrefix, func(o snapstore.ObjectInfo) error {
		if id, ok := parseRecycleRecordKey(o.Key); ok {
			records = append(records, id)
		}
		if id, ok := snapfmt.ParseManifestKey(o.Key); ok {
			manifests[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list the recycle bin of %s: %w", st, err)
	}
	return records, manifests, nil
}

// RecycledSnapshots returns this account's snapshots in the recycle bin
// of every store, sorted by ID.
func (e *Engine) RecycledSnapshots(ctx context.Context) ([]RecycledSnapshot, error) {
	return e.bin.list(ctx)
}

// list returns this account's snapshots in the recycle bin of every
// store, sorted by ID.
func (bin *recycleBin) list(ctx context.Context) ([]RecycledSnapshot, error) {
	now := time.Now()
	var out []RecycledSnapshot
	for name, st := range bin.stores {
		records, manifests, err := binListing(ctx, st)
		if err != nil {
			return nil, err
		}
		for _, id := range records {
			if manifests[id] {
				continue
			}
			rec, err := readRecycled(ctx, st, id)
			switch {
			case errors.Is(err, snapstore.ErrNotFound):
				continue // expired or restored since the listing
			case errors.Is(err, ErrCorrupt):
				bin.log.Warn("a recycle-bin record is damaged; skipped", "snapshot", id, "store", name, "err", err)
				continue
			case err != nil:
				return nil, err
			}
			if rec.expired(now) || rec.OwnerID != bin.owner {
				continue
			}
			out = append(out, RecycledSnapshot{ID: id, VolumeID: rec.VolumeID, Description: rec.Description,
				RuleID: rec.RuleID, OwnerID: rec.OwnerID, EnterTime: rec.EnterTime, ExitTime: rec.ExitTime})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RestoreRecycledSnapshot brings snapshot id back from the recycle bin: a
// completed snapshot with the same ID, content, tags and permissions.
// ErrSnapshotNotFound if it is not in this account's bin.
func (e *Engine) RestoreRecycledSnapshot(ctx context.Context, id string) (SnapshotInfo, error) {
	return e.bin.restore(ctx, id)
}

// restore brings snapshot id back from the recycle bin: a completed
// snapshot with the same ID, content, tags and permissions.
// ErrSnapshotNotFound if it is not in this account's bin.
func (bin *recycleBin) restore(ctx context.Context, id string) (SnapshotInfo, error) {
	notFound := fmt.Errorf("%w: %s is not in the recycle bin", ErrSnapshotNotFound, id)
	if !ValidSnapshotID(id) {
		return SnapshotInfo{}, notFound
	}
	// Shared: no collection of this daemon runs meanwhile (another
	// daemon's may; see restoreFrom).
	bin.gc.RLock()
	defer bin.gc.RUnlock()
	for name, st := range bin.stores {
		rec, err := readRecycled(ctx, st, id)
		if errors.Is(err, snapstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
		}
		if rec.OwnerID != bin.owner || rec.expired(time.Now()) {
			return SnapshotInfo{}, notFound
		}
		return bin.restoreFrom(ctx, name, st, id, notFound)
	}
	return SnapshotInfo{}, notFound
}

// restoreFrom puts snapshot id's manifest back from the bin's hold in
// store name, then drops the hold and the record. A daemon expiring the
// snapshot at the same moment deletes the hold before it lists the roots
// to mark: so either its mark sees the restored manifest, or the check
// here that the hold is still there after the manifest is put fails, and
// the restore is undone (the snapshot was expired).
func (bin *recycleBin) restoreFrom(ctx context.Context, name string, st snapstore.Store, id string, notFound error) (SnapshotInfo, error) {
	mkey := snapfmt.ManifestKey(id)
	if ok, err := st.Exists(ctx, mkey); err != nil || ok {
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
		}
		return SnapshotInfo{}, notFound // an unfinished move: the snapshot is live
	}
	_, manifest, err := getManifest(ctx, st, recycleHoldKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return SnapshotInfo{}, notFound
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	if err := st.Put(ctx, mkey, manifest); err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	held, err := st.Exists(ctx, recycleHoldKey(id))
	if err != nil || !held {
		if derr := st.Delete(ctx, mkey); derr != nil {
			bin.log.Warn("cannot undo a restore that raced the snapshot's expiry", "snapshot", id, "err", derr)
		}
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
		}
		return SnapshotInfo{}, notFound
	}
	// Hold first: a record left beside the manifest is cleared by expiry.
	for _, k := range []string{recycleHoldKey(id), recycleRecordKey(id)} {
		if err := st.Delete(ctx, k); err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
		}
	}
	s, err := bin.fetchCatalogEntry(ctx, name, st, id)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	s.gone.Store(false) // one of ours whose record outlived the move
	bin.log.Info("snapshot restored from the recycle bin", "snapshot", id, "store", name)
	return s.info(), nil
}

// expire deletes for good the snapshots in st's recycle bin whose
// retention has ended: the hold, then (unless a manifest is back) the
// attributes, then the record. Garbage collection calls it before its mark,
// holding e.gc exclusively, so their data is collected in the same round
// (once past the grace period).
func (bin *recycleBin) expire(ctx context.Context, st snapstore.Store) error {
	records, manifests, err := binListing(ctx, st)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	now := time.Now()
	for _, id := range records {
		rec, err := readRecycled(ctx, st, id)
		switch {
		case errors.Is(err, snapstore.ErrNotFound):
			continue
		case errors.Is(err, ErrCorrupt):
			// Kept, with its data: deleting on a record we cannot
			// read could destroy what a user still counts on.
			bin.log.Warn("a recycle-bin record is damaged; its snapshot is kept", "snapshot", id, "store", st.String(), "err", err)
			continue
		case err != nil:
			return fmt.Errorf("gc: %w", err)
		}
		if !rec.expired(now) {
			continue
		}
		keys := []string{recycleHoldKey(id), recycleRecordKey(id)}
		if !manifests[id] {
			keys = []string{recycleHoldKey(id), attributesKey(id), recycleRecordKey(id)}
		}
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil {
				return fmt.Errorf("gc: expire recycled snapshot %s: %w", id, err)
			}
		}
		if !manifests[id] {
			bin.log.Info("recycled snapshot's retention ended; deleted", "snapshot", id, "store", st.String(), "rule", rec.RuleID)
		}
	}
	return nil
}
