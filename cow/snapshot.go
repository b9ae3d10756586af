package cow

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// snapshot is the engine's state for one snapshot: its record, with
// progress kept in memory between the points where it is persisted.
type snapshot struct {
	owner string // ownerId of another daemon's snapshot; "" for ours (the control server fills in its account)
	// Set for a snapshot another daemon created (known from its
	// manifest, not in this daemon's records): its store and when the
	// manifest was read.
	store string
	seen  time.Time
	// gone: one of ours whose manifest is no longer in its store
	// (deleted by another daemon); hidden, record kept.
	gone atomic.Bool
	// manifestSent: a flush attempt of this run sent the manifest to
	// the store (so it may be stored, though the attempt failed).
	manifestSent atomic.Bool
	// tier: the snapshot's tier state (nil: never tiered), from its
	// store's tier object (snapshot_tier.go).
	tier atomic.Pointer[tierRecord]

	// attrMu serialises changes of the attributes (snapshot_attributes.go).
	attrMu sync.Mutex

	// mu guards rec, attrs and attrsSeen.
	mu  sync.Mutex
	rec meta.SnapshotRecord
	// attrs: the tags and permissions as changed since creation (nil:
	// none changed); attrsSeen: the store's time of the attributes
	// object they were last read from.
	attrs     *meta.SnapshotAttributes
	attrsSeen time.Time
}

func (s *snapshot) record() meta.SnapshotRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// complete marks s completed as its stored manifest m says, and returns
// its record as changed (the caller stores it).
func (s *snapshot) complete(m *snapfmt.Manifest) meta.SnapshotRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.State = string(SnapshotCompleted)
	s.rec.StatusMessage = ""
	s.rec.Progress = 100
	s.rec.CompletionTime = m.CompletionTime
	s.rec.DataBytes = m.DataBytes
	return s.rec
}

func (s *snapshot) info() SnapshotInfo {
	r := s.record()
	si := SnapshotInfo{
		ID:             r.ID,
		VolumeID:       r.VolumeID,
		State:          SnapshotState(r.State),
		Progress:       r.Progress,
		StartTime:      r.StartTime,
		CompletionTime: r.CompletionTime,
		Description:    r.Description,
		VolumeSize:     r.VolumeSize,
		BlockSize:      r.BlockSize,
		OutpostArn:     r.OutpostArn,
		StatusMessage:  r.StatusMessage,
		DataBytes:      r.DataBytes,
		OwnerID:        s.owner,
		CopyOf:         r.CopyOf,
	}
	if r.Encryption != nil {
		si.Encrypted, si.KMSKeyARN, si.DataKeyID = true, r.Encryption.KMSKeyARN, r.Encryption.DataKeyID
	}
	s.applyTier(&si)
	a := s.attributes()
	si.Tags = tagsFromMeta(a.Tags)
	si.CreateVolumeUsers, si.CreateVolumeAll = a.CreateVolumeUsers, a.CreateVolumeAll
	return si
}

// store returns the snapshot store named name.
func (e *Engine) store(name string) (snapstore.Store, error) {
	s, ok := e.stores[name]
	if !ok || s == nil {
		return nil, fmt.Errorf("no %s snapshot store configured", name)
	}
	return s, nil
}

// OutpostArn is the ARN of the Outpost this daemon is, or "".
func (e *Engine) OutpostArn() string { return e.outpostArn }

// CreateSnapshot forks the volume: one metadata transaction records the
// snapshot at the volume's current generation and moves the volume to the
// next, so the snapshot holds every write completed before the call and
// none issued after it returns. The background flusher then copies the
// frozen blocks into snapshot storage.
//
// The wait for the volume's dirty data is the volume's alone: it happens
// before the fork lock, with writers running, under the volume's snapshot
// turn only (volume_fork.go); no engine-wide lock is held across I/O, so
// no other volume's calls and no Describe* wait for it.
func (e *Engine) CreateSnapshot(ctx context.Context, p CreateSnapshotParams) (SnapshotInfo, error) {
	if err := validateSnapshotParams(p); err != nil {
		return SnapshotInfo{}, err
	}
	storeName, err := e.snapshotStoreFor(p.OutpostArn)
	if err != nil {
		return SnapshotInfo{}, err
	}
	v, err := e.lookup(p.VolumeID)
	if err != nil {
		return SnapshotInfo{}, err
	}

	// The volume's turn makes the pending count, the fork and the
	// snapshot's entry in e.snapshots.byID one step.
	v.snapTurn.Lock()
	defer v.snapTurn.Unlock()
	if n := e.pendingSnapshots(v.id); n >= MaxPendingSnapshots {
		return SnapshotInfo{}, fmt.Errorf("%w: %s has %d pending snapshots", ErrConcurrentSnapshotLimit, v.id, n)
	}
	if err := v.drainForFork(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("create snapshot of %s: %w", v.id, err)
	}
	sr := meta.SnapshotRecord{
		ID:          newID("snap"),
		VolumeID:    v.id,
		State:       string(SnapshotPending),
		Description: p.Description,
		BlockSize:   int(v.blockSize),
		Store:       storeName,
		Tags:        tagsToMeta(p.Tags),
	}
	if storeName == StoreLocal {
		sr.OutpostArn = e.outpostArn
	}
	sr.Tags = tagsToMeta(append(slices.Clone(p.Tags), p.SystemTags...))
	if err := e.forkOne(v, &sr); err != nil {
		return SnapshotInfo{}, fmt.Errorf("create snapshot of %s: %w", v.id, err)
	}
	s := &snapshot{rec: sr}
	e.snapshots.mu.Lock()
	e.snapshots.byID[sr.ID] = s
	e.snapshots.mu.Unlock()
	e.wakeFlusher()
	e.log.Info("snapshot created", "snapshot", sr.ID, "volume", v.id, "gen", sr.Gen)
	return s.info(), nil
}

// snapshotStoreFor names the store a snapshot goes to: this host's
// Outpost's (local) when outpostArn names it, else the regional one.
func (e *Engine) snapshotStoreFor(outpostArn string) (string, error) {
	storeName := StoreRegional
	if outpostArn != "" {
		if outpostArn != e.outpostArn {
			return "", fmt.Errorf("%w: %s is not this host's Outpost", ErrOutpostMismatch, outpostArn)
		}
		storeName = StoreLocal
	}
	if _, err := e.store(storeName); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidParameter, err)
	}
	return storeName, nil
}

// pendingSnapshots counts volID's pending snapshots.
func (e *Engine) pendingSnapshots(volID string) int {
	e.snapshots.mu.Lock()
	defer e.snapshots.mu.Unlock()
	return e.pendingSnapshotsLocked(volID)
}

// pendingSnapshotsLocked counts volID's pending snapshots. e.snapshots.mu is held.
func (e *Engine) pendingSnapshotsLocked(volID string) int {
	n := 0
	for _, s := range e.snapshots.byID {
		r := s.record()
		if r.VolumeID == volID && r.State == string(SnapshotPending) && !r.Deleted {
			n++
		}
	}
	return n
}

// DescribeSnapshots returns every snapshot, sorted by ID: this daemon's and
// those in its stores' catalogue (see catalog.go).
func (e *Engine) DescribeSnapshots(ctx context.Context) ([]SnapshotInfo, error) {
	e.snapshots.mu.Lock()
	out := make([]SnapshotInfo, 0, len(e.snapshots.byID)+len(e.snapshots.catalog))
	for _, s := range e.snapshots.byID {
		if !s.record().Deleted && !s.gone.Load() {
			out = append(out, s.info())
		}
	}
	for _, s := range e.snapshots.catalog {
		out = append(out, s.info())
	}
	e.snapshots.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// SnapshotInfo describes one snapshot.
func (e *Engine) SnapshotInfo(id string) (SnapshotInfo, error) {
	s, err := e.lookupSnapshot(context.Background(), id)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return s.info(), nil
}

// lookupSnapshot finds snapshot id: this daemon's, in the catalogue, or
// else in the stores.
func (e *Engine) lookupSnapshot(ctx context.Context, id string) (*snapshot, error) {
	e.snapshots.mu.Lock()
	s, ok := e.snapshots.byID[id]
	if !ok {
		s, ok = e.snapshots.catalog[id]
	}
	e.snapshots.mu.Unlock()
	if !ok {
		return e.catalog.lookup(ctx, id)
	}
	if s.record().Deleted || s.gone.Load() {
		return nil, fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
	}
	return s, nil
}

// DeleteSnapshot deletes a snapshot. A pending one stops flushing (its
// changes fold into the volume's next snapshot); a completed one's manifest
// goes, and with it every chunk no other snapshot or hydrating volume needs.
func (e *Engine) DeleteSnapshot(ctx context.Context, id string) error {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return err
	}
	// Before e.gc: e.volumes.mu comes after e.gc in the lock order, and a
	// volume created from now on has a hold as its base, never the
	// manifest itself (see releaseManifest).
	vols := e.allVolumes()
	if h := e.hooks.deleteWaitsForGC; h != nil {
		h()
	}
	// gc excludes flushes, so the snapshot cannot complete under us; and
	// other deleters: one that found s too sees it Deleted once we are done.
	e.gc.Lock()
	defer e.gc.Unlock()
	r := s.record()
	if r.Deleted {
		return fmt.Errorf("%w: %s", ErrSnapshotNotFound, id)
	}
	if s.owner != "" && s.owner != e.accountID {
		return fmt.Errorf("snapshot %s: %w %s", id, ErrNotOwner, s.owner)
	}
	if err := e.refuseLockedDelete(ctx, s); err != nil {
		return err
	}
	if r.State == string(SnapshotPending) {
		return e.deletePending(ctx, s, r)
	}
	if r.State == string(SnapshotCompleted) {
		if recycled, err := e.recycleIfRetained(ctx, s, r, vols); err != nil || recycled {
			return err
		}
		if err := e.releaseManifest(ctx, r, vols); err != nil {
			return err
		}
	}
	if r.State == string(SnapshotError) {
		// A failed snapshot may have left a manifest, if it failed
		// with the store down after an earlier run stored it.
		if err := e.flusher.unpublish(r); err != nil {
			return err
		}
	}
	if err := e.meta.DeleteSnapshot(id); err != nil {
		return err
	}
	if err := e.dropSnapshotAttributes(ctx, r); err != nil {
		return err
	}
	if err := e.metaSync.sync(); err != nil {
		return err
	}
	r.Deleted = true
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
	e.snapshots.mu.Lock()
	delete(e.snapshots.byID, id)
	delete(e.snapshots.catalog, id)
	e.snapshots.mu.Unlock()
	if r.State == string(SnapshotCompleted) {
		// In the background: a collection marks and sweeps the whole
		// store, too long to hold the caller (and e.gc) for.
		e.requestGC(r.Store)
	}
	e.log.Info("snapshot deleted", "snapshot", id)
	return nil
}

// deletePending marks a pending snapshot deleted (under e.gc, as
// DeleteSnapshot holds it): its flush sees the mark and ends it, and
// nothing of it is stored but what that flush drops.
func (e *Engine) deletePending(ctx context.Context, s *snapshot, r meta.SnapshotRecord) error {
	r.Deleted = true
	if err := e.meta.PutSnapshot(r); err != nil {
		return err
	}
	if err := e.metaSync.sync(); err != nil {
		return err
	}
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
	if err := e.dropSnapshotAttributes(ctx, r); err != nil {
		e.log.Warn("dropping a deleted pending snapshot's attributes", "snapshot", r.ID, "err", err)
	}
	e.log.Info("pending snapshot deleted", "snapshot", r.ID)
	return nil
}

// releaseManifest removes a completed snapshot's manifest. Volumes that
// depend on the snapshot (its own, building the next snapshot on it; those
// created from it, hydrating) hold their own copies of the manifest, here
// or on other daemons, so the data they need stays. (A volume whose base is
// the manifest itself, recorded before bases were held, gets a hold first;
// vols are the engine's volumes, listed by the caller before it took e.gc.)
func (e *Engine) releaseManifest(ctx context.Context, r meta.SnapshotRecord, vols []*volume) error {
	st, err := e.store(r.Store)
	if err != nil {
		return err
	}
	key := snapfmt.ManifestKey(r.ID)
	for _, v := range vols {
		v.mapMu.Lock()
		vr := v.record
		v.mapMu.Unlock()
		if vr.BaseManifest != key || vr.BaseStore != r.Store {
			continue
		}
		b, err := st.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("hold base of %s: %w", v.id, err)
		}
		hold := snapfmt.HoldKey(v.id, r.ID)
		if err := st.Put(ctx, hold, b); err != nil {
			return fmt.Errorf("hold base of %s: %w", v.id, err)
		}
		if err := e.setBase(v, hold, r.Store, vr.BaseGen); err != nil {
			return err
		}
	}
	if err := st.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete manifest of %s: %w", r.ID, err)
	}
	e.reader.objects.remove(cacheKey("m", st, key))
	return nil
}

// setBase records that volume v's content as of generation gen is the
// manifest under key in store, and drops holds the volume no longer needs.
func (e *Engine) setBase(v *volume, key, store string, gen uint64) error {
	var old, oldStore string
	var keep bool
	err := v.updateRecord(func(r *meta.VolumeRecord) {
		old, oldStore = r.BaseManifest, r.BaseStore
		// A hydrating volume still reads the hold of the snapshot it
		// was created from; hydrate drops that one when it is done.
		keep = r.Hydrating && old == snapfmt.HoldKey(v.id, r.SnapshotID)
		r.BaseManifest, r.BaseStore, r.BaseGen = key, store, gen
	}, nil)
	if err != nil {
		return err
	}
	if old != "" && old != key && snapfmt.IsHoldKey(old) && !keep {
		if st, err := e.store(oldStore); err == nil {
			if err := st.Delete(context.Background(), old); err != nil {
				e.log.Warn("cannot drop hold", "key", old, "err", err)
			}
		}
	}
	return nil
}
