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

// ModifySnapshotTier starts archiving completed snapshot id; it returns
// when the archival started. The copy runs in the background (see
// DescribeSnapshotTierStatus); check only answers a dry run.
func (e *Engine) ModifySnapshotTier(ctx context.Context, id string, check bool) (time.Time, error) {
	return e.tiers.startArchival(ctx, id, check)
}

// RestoreSnapshotTier restores archived snapshot id for days (a temporary
// restore) or for good; for a snapshot temporarily restored already it
// changes the period, or makes the restore permanent. A copy back to the
// standard store runs in the background.
func (e *Engine) RestoreSnapshotTier(ctx context.Context, id string, days int, permanent, check bool) (RestoreTierResult, error) {
	return e.tiers.startRestore(ctx, id, days, permanent, check)
}

// DescribeSnapshotTierStatus returns the tier status of every completed
// snapshot of this account in the regional store.
func (e *Engine) DescribeSnapshotTierStatus(ctx context.Context) ([]TierStatus, error) {
	return e.tiers.describe(ctx)
}

// target returns snapshot id, which this account may archive or
// restore, its store, and its tier state as stored now.
func (t *tiering) target(ctx context.Context, id string) (*snapshot, snapstore.Store, *tierRecord, error) {
	s, err := t.env.lookup(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.owner != "" && s.owner != t.env.accountID {
		return nil, nil, nil, fmt.Errorf("snapshot %s: %w %s", id, ErrNotOwner, s.owner)
	}
	r := s.record()
	if r.State != string(SnapshotCompleted) {
		return nil, nil, nil, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, id, r.State)
	}
	if r.Store != StoreRegional {
		return nil, nil, nil, fmt.Errorf("%w: snapshot %s is on an Outpost; only snapshots in the region can be archived", ErrIncorrectState, id)
	}
	if t.archive == nil {
		return nil, nil, nil, fmt.Errorf("%w: no archive store is configured (start the daemon with --archive-store)", ErrInvalidParameter)
	}
	st, err := t.env.store(r.Store)
	if err != nil {
		return nil, nil, nil, err
	}
	tr, err := readTier(ctx, st, id)
	if err != nil {
		return nil, nil, nil, err
	}
	s.tier.Store(tr)
	return s, st, tr, nil
}

// stale reports whether tr shows an operation in progress that no daemon
// carries on: started longer than a lease's TTL ago (and not by this
// daemon, whose claim the caller holds).
func (t *tiering) stale(tr *tierRecord, now time.Time) bool {
	return tr != nil && tr.inProgress() && now.Sub(tr.StartTime) > t.env.leaseTTL
}

// claim claims snapshot id for a request, or returns the error for one
// under way; release (deferred) drops the claim unless a background job
// took it over (*handed set).
func (t *tiering) claim(ctx context.Context, id string) (release func(handed *bool), err error) {
	if !t.start(ctx, id) {
		return nil, fmt.Errorf("%w: snapshot %s: a tiering operation is under way", ErrIncorrectState, id)
	}
	return func(handed *bool) {
		if !*handed {
			t.finish(id)
		}
	}, nil
}

// startArchival starts archiving completed snapshot id
// (ModifySnapshotTier); check only answers a dry run.
func (t *tiering) startArchival(ctx context.Context, id string, check bool) (time.Time, error) {
	release, err := t.claim(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	handed := false
	defer release(&handed)
	s, st, tr, err := t.target(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if tr != nil {
		if err := tr.checkArchive(now, t.stale(tr, now)); err != nil {
			return time.Time{}, err
		}
	}
	if check {
		return now, nil
	}
	nt := tierRecord{SnapshotID: id, Status: TieringArchivalInProgress, StartTime: now}
	if tr != nil {
		nt.ArchivalCompleteTime = tr.ArchivalCompleteTime
	}
	if err := t.put(ctx, st, s, nt); err != nil {
		return time.Time{}, err
	}
	handed = true
	t.runJob(func(ctx context.Context) { t.archiveJob(ctx, s, st, nt) })
	t.env.log.Info("snapshot archival started", "snapshot", id)
	return now, nil
}

// startRestore restores archived snapshot id (RestoreSnapshotTier): for
// days or for good; for a snapshot temporarily restored already it changes
// the period, or makes the restore permanent.
func (t *tiering) startRestore(ctx context.Context, id string, days int, permanent, check bool) (RestoreTierResult, error) {
	if permanent == (days != 0) {
		return RestoreTierResult{}, fmt.Errorf("%w: give TemporaryRestoreDays or PermanentRestore, not both", ErrInvalidParameter)
	}
	if !permanent && (days < 1 || days > MaxTemporaryRestoreDays) {
		return RestoreTierResult{}, fmt.Errorf("%w: TemporaryRestoreDays must be between 1 and %d", ErrInvalidParameter, MaxTemporaryRestoreDays)
	}
	release, err := t.claim(ctx, id)
	if err != nil {
		return RestoreTierResult{}, err
	}
	handed := false
	defer release(&handed)
	s, st, tr, err := t.target(ctx, id)
	if err != nil {
		return RestoreTierResult{}, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	plan, err := tr.planRestore(now, t.stale(tr, now))
	if err != nil {
		return RestoreTierResult{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	res := RestoreTierResult{StartTime: now, Days: days, IsPermanent: permanent}
	if check {
		return res, nil
	}
	nt := *tr
	nt.Detail, nt.StartTime, nt.RestoreDays = "", now, days
	switch {
	case plan == restoreExtend && permanent:
		nt.Status, nt.RestoreExpiryTime = TieringPermCompleted, time.Time{}
		err = t.put(ctx, st, s, nt)
		if err == nil {
			t.dropArchiveCopy(ctx, id)
		}
	case plan == restoreExtend:
		nt.RestoreExpiryTime = now.Add(time.Duration(days) * t.day)
		err = t.put(ctx, st, s, nt)
	default:
		nt.Status = TieringTempInProgress
		if permanent {
			nt.Status = TieringPermInProgress
		}
		if err = t.put(ctx, st, s, nt); err != nil {
			break
		}
		handed = true
		t.runJob(func(ctx context.Context) { t.restoreJob(ctx, s, st, nt) })
	}
	if err != nil {
		return RestoreTierResult{}, err
	}
	t.env.log.Info("snapshot restore started", "snapshot", id, "days", days, "permanent", permanent)
	return res, nil
}

// describe returns the tier status of every completed snapshot of this
// account in the regional store (DescribeSnapshotTierStatus).
func (t *tiering) describe(ctx context.Context) ([]TierStatus, error) {
	infos, err := t.env.describe(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []TierStatus
	for _, si := range infos {
		if si.State != SnapshotCompleted || (si.OwnerID != "" && si.OwnerID != t.env.accountID) || si.OutpostArn != "" {
			continue
		}
		s, err := t.env.lookup(ctx, si.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, t.status(s, si, now))
	}
	return out, nil
}

// status is snapshot s's tier status at now; si describes it.
func (t *tiering) status(s *snapshot, si SnapshotInfo, now time.Time) TierStatus {
	ts := TierStatus{Snapshot: si, StorageTier: TierStandard}
	tr := s.tier.Load()
	if tr == nil {
		return ts
	}
	ts.StorageTier = tr.storageTier(now)
	ts.LastStatus, ts.LastStatusDetail, ts.LastStartTime = tr.Status, tr.Detail, tr.StartTime
	ts.ArchivalCompleteTime, ts.RestoreExpiryTime = tr.ArchivalCompleteTime, tr.restoreExpiry(now)
	ts.LastProgress = 100
	if tr.inProgress() {
		ts.LastProgress = t.progress(s.record().ID)
	}
	return ts
}

// archiveJob copies snapshot s to the archive store and then records it
// archived, which frees its data in the standard store st at the next
// collection.
func (t *tiering) archiveJob(ctx context.Context, s *snapshot, st snapstore.Store, tr tierRecord) {
	from := copySource{name: StoreRegional, st: st}
	cp := t.job(tr.SnapshotID, s.record(), StoreArchive)
	err := t.env.copier.copyTier(ctx, s, cp, from, t.archive, true, nil)
	tr.StartTime = tr.StartTime.UTC()
	if err != nil {
		tr.Status, tr.Detail = TieringArchivalFailed, err.Error()
	} else {
		tr.Status, tr.ArchivalCompleteTime = TieringArchivalCompleted, time.Now().UTC().Truncate(time.Millisecond)
	}
	t.finishJob(s, st, tr, err)
	if err == nil {
		t.env.requestGC(StoreRegional)
	}
}

// restoreJob copies archived snapshot s back to the standard store st, and
// records it restored (temporarily or for good) while the copy's lease
// still protects what it stored. A permanent restore then drops the
// archive's copy.
func (t *tiering) restoreJob(ctx context.Context, s *snapshot, st snapstore.Store, tr tierRecord) {
	id := tr.SnapshotID
	done := tr
	if tr.Status == TieringPermInProgress {
		done.Status = TieringPermCompleted
	} else {
		done.Status = TieringTempCompleted
	}
	from := copySource{name: StoreArchive, st: t.archive}
	cp := t.job(id, s.record(), StoreRegional)
	err := t.env.copier.copyTier(ctx, s, cp, from, st, false, func(ctx context.Context) error {
		t.finishing(id)
		if done.Status == TieringTempCompleted {
			done.RestoreExpiryTime = time.Now().UTC().Truncate(time.Millisecond).Add(time.Duration(tr.RestoreDays) * t.day)
		}
		return t.put(ctx, st, s, done)
	})
	if err != nil {
		if tr.Status == TieringPermInProgress {
			tr.Status = TieringPermFailed
		} else {
			tr.Status = TieringTempFailed
		}
		tr.Detail = err.Error()
		t.finishJob(s, st, tr, err)
		return
	}
	// The archive's copy goes before the claim does: an archival claimed
	// next must not adopt the manifest being deleted.
	if done.Status == TieringPermCompleted {
		t.dropArchiveCopy(ctx, id)
	}
	t.finish(id)
	t.env.log.Info("snapshot restored", "snapshot", id, "status", done.Status)
}

// finishJob stores the outcome tr of a background tiering operation.
func (t *tiering) finishJob(s *snapshot, st snapstore.Store, tr tierRecord, jobErr error) {
	t.finishing(tr.SnapshotID)
	defer t.finish(tr.SnapshotID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.env.ctx()), time.Minute)
	defer cancel()
	log := t.env.log
	if err := t.put(ctx, st, s, tr); err != nil {
		log.Error("recording the outcome of a tiering operation", "snapshot", tr.SnapshotID, "status", tr.Status, "err", err)
		return
	}
	if jobErr != nil {
		log.Warn("tiering operation failed", "snapshot", tr.SnapshotID, "status", tr.Status, "err", jobErr)
		return
	}
	log.Info("tiering operation completed", "snapshot", tr.SnapshotID, "status", tr.Status)
}

// put stores tr as snapshot s's tier state in st.
func (t *tiering) put(ctx context.Context, st snapstore.Store, s *snapshot, tr tierRecord) error {
	b, err := encodeTier(tr)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, tierKey(tr.SnapshotID), b); err != nil {
		return fmt.Errorf("store tier of %s: %w", tr.SnapshotID, err)
	}
	tr.Version = tierFormat
	s.tier.Store(&tr)
	t.remember(tr)
	return nil
}

// readTier reads snapshot id's tier state from st (nil: never tiered).
func readTier(ctx context.Context, st snapstore.Store, id string) (*tierRecord, error) {
	b, err := st.Get(ctx, tierKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tier of %s: %w", id, err)
	}
	tr, err := decodeTier(b, id)
	if err != nil {
		return nil, err
	}
	return &tr, nil
}

// dropArchiveCopy deletes snapshot id's manifest from the archive store;
// the archive's next collection frees its data.
func (t *tiering) dropArchiveCopy(ctx context.Context, id string) {
	if err := t.archive.Delete(ctx, snapfmt.ManifestKey(id)); err != nil {
		t.env.log.Warn("dropping a permanently restored snapshot's archive copy (it stays until the next try)", "snapshot", id, "err", err)
		return
	}
	t.collectSoon()
}

// runJob runs job in the background, owned by the engine: it stops
// (and is waited for) with the engine's background work.
func (t *tiering) runJob(job func(ctx context.Context)) {
	t.env.wg.Add(1)
	go func() {
		defer t.env.wg.Done()
		job(t.env.ctx())
	}()
}
