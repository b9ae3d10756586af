package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// StoreArchive names the archive store (--archive-store) in logs and in
// the reader's caches; it is not one of the stores snapshots are created
// in, listed or collected with (e.stores).
const StoreArchive = "archive"

// TierStatus is a snapshot's storage tier and last tiering operation (EC2's
// SnapshotTierStatus), with the snapshot's description.
type TierStatus struct {
	Snapshot             SnapshotInfo
	StorageTier          string
	LastStatus           TieringStatus // "" when never tiered
	LastStatusDetail     string
	LastStartTime        time.Time
	LastProgress         int // percent
	ArchivalCompleteTime time.Time
	RestoreExpiryTime    time.Time
}

// RestoreTierResult answers RestoreSnapshotTier.
type RestoreTierResult struct {
	StartTime   time.Time
	Days        int // temporary restores only
	IsPermanent bool
}

// tierTarget returns snapshot id, which this account may archive or
// restore, its store, and its tier state as stored now.
func (e *Engine) tierTarget(ctx context.Context, id string) (*snapshot, snapstore.Store, *tierRecord, error) {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.owner != "" && s.owner != e.accountID {
		return nil, nil, nil, fmt.Errorf("snapshot %s: %w %s", id, ErrNotOwner, s.owner)
	}
	r := s.record()
	if r.State != string(SnapshotCompleted) {
		return nil, nil, nil, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, id, r.State)
	}
	if r.Store != StoreRegional {
		return nil, nil, nil, fmt.Errorf("%w: snapshot %s is on an Outpost; only snapshots in the region can be archived", ErrIncorrectState, id)
	}
	if e.tiers.archive == nil {
		return nil, nil, nil, fmt.Errorf("%w: no archive store is configured (start the daemon with --archive-store)", ErrInvalidParameter)
	}
	st, err := e.store(r.Store)
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := e.readTier(ctx, st, id)
	if err != nil {
		return nil, nil, nil, err
	}
	s.tier.Store(t)
	return s, st, t, nil
}

// stale reports whether t shows an operation in progress that no daemon
// carries on: started longer than a lease's TTL ago (and not by this
// daemon, whose claim the caller holds).
func (e *Engine) stale(t *tierRecord, now time.Time) bool {
	return t != nil && t.inProgress() && now.Sub(t.StartTime) > e.leaseTTL
}

// claim claims snapshot id for a request, or returns the error for one
// under way; release (deferred) drops the claim unless a background job
// took it over (*handed set).
func (e *Engine) claim(ctx context.Context, id string) (release func(handed *bool), err error) {
	if !e.tiers.start(ctx, id) {
		return nil, fmt.Errorf("%w: snapshot %s: a tiering operation is under way", ErrIncorrectState, id)
	}
	return func(handed *bool) {
		if !*handed {
			e.tiers.finish(id)
		}
	}, nil
}

// ModifySnapshotTier starts archiving completed snapshot id; it returns
// when the archival started. The copy runs in the background (see
// DescribeSnapshotTierStatus); check only answers a dry run.
func (e *Engine) ModifySnapshotTier(ctx context.Context, id string, check bool) (time.Time, error) {
	release, err := e.claim(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	handed := false
	defer release(&handed)
	s, st, t, err := e.tierTarget(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if t != nil {
		if err := t.checkArchive(now, e.stale(t, now)); err != nil {
			return time.Time{}, err
		}
	}
	if check {
		return now, nil
	}
	nt := tierRecord{SnapshotID: id, Status: TieringArchivalInProgress, StartTime: now}
	if t != nil {
		nt.ArchivalCompleteTime = t.ArchivalCompleteTime
	}
	if err := e.putTier(ctx, st, s, nt); err != nil {
		return time.Time{}, err
	}
	handed = true
	e.runTierJob(func(ctx context.Context) { e.archive(ctx, s, st, nt) })
	e.log.Info("snapshot archival started", "snapshot", id)
	return now, nil
}

// RestoreSnapshotTier restores archived snapshot id for days (a temporary
// restore) or for good; for a snapshot temporarily restored already it
// changes the period, or makes the restore permanent. A copy back to the
// standard store runs in the background.
func (e *Engine) RestoreSnapshotTier(ctx context.Context, id string, days int, permanent, check bool) (RestoreTierResult, error) {
	if permanent == (days != 0) {
		return RestoreTierResult{}, fmt.Errorf("%w: give TemporaryRestoreDays or PermanentRestore, not both", ErrInvalidParameter)
	}
	if !permanent && (days < 1 || days > MaxTemporaryRestoreDays) {
		return RestoreTierResult{}, fmt.Errorf("%w: TemporaryRestoreDays must be between 1 and %d", ErrInvalidParameter, MaxTemporaryRestoreDays)
	}
	release, err := e.claim(ctx, id)
	if err != nil {
		return RestoreTierResult{}, err
	}
	handed := false
	defer release(&handed)
	s, st, t, err := e.tierTarget(ctx, id)
	if err != nil {
		return RestoreTierResult{}, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	plan, err := t.planRestore(now, e.stale(t, now))
	if err != nil {
		return RestoreTierResult{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	res := RestoreTierResult{StartTime: now, Days: days, IsPermanent: permanent}
	if check {
		return res, nil
	}
	nt := *t
	nt.Detail, nt.StartTime, nt.RestoreDays = "", now, days
	switch {
	case plan == restoreExtend && permanent:
		nt.Status, nt.RestoreExpiryTime = TieringPermCompleted, time.Time{}
		err = e.putTier(ctx, st, s, nt)
		if err == nil {
			e.dropArchiveCopy(ctx, id)
		}
	case plan == restoreExtend:
		nt.RestoreExpiryTime = now.Add(time.Duration(days) * e.tiers.day)
		err = e.putTier(ctx, st, s, nt)
	default:
		nt.Status = TieringTempInProgress
		if permanent {
			nt.Status = TieringPermInProgress
		}
		if err = e.putTier(ctx, st, s, nt); err != nil {
			break
		}
		handed = true
		e.runTierJob(func(ctx context.Context) { e.restore(ctx, s, st, nt) })
	}
	if err != nil {
		return RestoreTierResult{}, err
	}
	e.log.Info("snapshot restore started", "snapshot", id, "days", days, "permanent", permanent)
	return res, nil
}

// DescribeSnapshotTierStatus returns the tier status of every completed
// snapshot of this account in the regional store.
func (e *Engine) DescribeSnapshotTierStatus(ctx context.Context) ([]TierStatus, error) {
	infos, err := e.DescribeSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []TierStatus
	for _, si := range infos {
		if si.State != SnapshotCompleted || (si.OwnerID != "" && si.OwnerID != e.accountID) || si.OutpostArn != "" {
			continue
		}
		s, err := e.lookupSnapshot(ctx, si.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, e.tierStatus(s, si, now))
	}
	return out, nil
}

func (e *Engine) tierStatus(s *snapshot, si SnapshotInfo, now time.Time) TierStatus {
	ts := TierStatus{Snapshot: si, StorageTier: TierStandard}
	t := s.tier.Load()
	if t == nil {
		return ts
	}
	ts.StorageTier = t.storageTier(now)
	ts.LastStatus, ts.LastStatusDetail, ts.LastStartTime = t.Status, t.Detail, t.StartTime
	ts.ArchivalCompleteTime, ts.RestoreExpiryTime = t.ArchivalCompleteTime, t.restoreExpiry(now)
	ts.LastProgress = 100
	if t.inProgress() {
		ts.LastProgress = e.tiers.progress(s.record().ID)
	}
	return ts
}

// archive copies snapshot s to the archive store and then records it
// archived, which frees its data in the standard store st at the next
// collection.
func (e *Engine) archive(ctx context.Context, s *snapshot, st snapstore.Store, t tierRecord) {
	from := copySource{name: StoreRegional, st: st}
	err := e.copyTier(ctx, s, from, StoreArchive, e.tiers.archive, true, nil)
	t.StartTime = t.StartTime.UTC()
	if err != nil {
		t.Status, t.Detail = TieringArchivalFailed, err.Error()
	} else {
		t.Status, t.ArchivalCompleteTime = TieringArchivalCompleted, time.Now().UTC().Truncate(time.Millisecond)
	}
	e.finishTierJob(s, st, t, err)
	if err == nil {
		e.requestGC(StoreRegional)
	}
}

// restore copies archived snapshot s back to the standard store st, and
// records it restored (temporarily or for good) while the copy's lease
// still protects what it stored. A permanent restore then drops the
// archive's copy.
func (e *Engine) restore(ctx context.Context, s *snapshot, st snapstore.Store, t tierRecord) {
	id := t.SnapshotID
	done := t
	if t.Status == TieringPermInProgress {
		done.Status = TieringPermCompleted
	} else {
		done.Status = TieringTempCompleted
	}
	from := copySource{name: StoreArchive, st: e.tiers.archive}
	err := e.copyTier(ctx, s, from, StoreRegional, st, false, func(ctx context.Context) error {
		e.tiers.finishing(id)
		if done.Status == TieringTempCompleted {
			done.RestoreExpiryTime = time.Now().UTC().Truncate(time.Millisecond).Add(time.Duration(t.RestoreDays) * e.tiers.day)
		}
		return e.putTier(ctx, st, s, done)
	})
	if err != nil {
		if t.Status == TieringPermInProgress {
			t.Status = TieringPermFailed
		} else {
			t.Status = TieringTempFailed
		}
		t.Detail = err.Error()
		e.finishTierJob(s, st, t, err)
		return
	}
	// The archive's copy goes before the claim does: an archival claimed
	// next must not adopt the manifest being deleted.
	if done.Status == TieringPermCompleted {
		e.dropArchiveCopy(ctx, id)
	}
	e.tiers.finish(id)
	e.log.Info("snapshot restored", "snapshot", id, "status", done.Status)
}

// finishTierJob stores the outcome t of a background tiering operation.
func (e *Engine) finishTierJob(s *snapshot, st snapstore.Store, t tierRecord, jobErr error) {
	e.tiers.finishing(t.SnapshotID)
	defer e.tiers.finish(t.SnapshotID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
	defer cancel()
	if err := e.putTier(ctx, st, s, t); err != nil {
		e.log.Error("recording the outcome of a tiering operation", "snapshot", t.SnapshotID, "status", t.Status, "err", err)
		return
	}
	if jobErr != nil {
		e.log.Warn("tiering operation failed", "snapshot", t.SnapshotID, "status", t.Status, "err", jobErr)
		return
	}
	e.log.Info("tiering operation completed", "snapshot", t.SnapshotID, "status", t.Status)
}

// putTier stores t as snapshot s's tier state in st.
func (e *Engine) putTier(ctx context.Context, st snapstore.Store, s *snapshot, t tierRecord) error {
	b, err := encodeTier(t)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, tierKey(t.SnapshotID), b); err != nil {
		return fmt.Errorf("store tier of %s: %w", t.SnapshotID, err)
	}
	t.Version = tierFormat
	s.tier.Store(&t)
	e.tiers.remember(t)
	return nil
}

// readTier reads snapshot id's tier state from st (nil: never tiered).
func (e *Engine) readTier(ctx context.Context, st snapstore.Store, id string) (*tierRecord, error) {
	b, err := st.Get(ctx, tierKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tier of %s: %w", id, err)
	}
	t, err := decodeTier(b, id)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// dropArchiveCopy deletes snapshot id's manifest from the archive store;
// the archive's next collection frees its data.
func (e *Engine) dropArchiveCopy(ctx context.Context, id string) {
	if err := e.tiers.archive.Delete(ctx, snapfmt.ManifestKey(id)); err != nil {
		e.log.Warn("dropping a permanently restored snapshot's archive copy (it stays until the next try)", "snapshot", id, "err", err)
		return
	}
	e.tiers.collectSoon()
}

// runTierJob runs job in the background, owned by the engine: it stops
// (and is waited for) with the engine's background work.
func (e *Engine) runTierJob(job func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		job(e.ctx)
	}()
}
