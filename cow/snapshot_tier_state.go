package cow

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// DefaultTierDay is the length of a day of TemporaryRestoreDays. Tests
// shorten it (Options.TierDay).
const DefaultTierDay = 24 * time.Hour

// tiering is the engine's archive-tier state: the archive store, the
// operations this daemon runs, and the tier states read from the regional
// store.
type tiering struct {
	archive snapstore.Store // nil: no archive tier
	day     time.Duration

	mu sync.Mutex
	// jobs: the operations this daemon runs, by snapshot, with the copy's
	// snapshot state (its progress).
	jobs map[string]*tierJob
	// states: the tier states last read or stored, by snapshot; seen: the
	// store's time of the object each was read from.
	states map[string]*tierRecord
	seen   map[string]time.Time
	// collect: the archive store has garbage to collect; lastCollect:
	// when it was last collected.
	collect     bool
	lastCollect time.Time

	env *tierEnv // what the tier uses of the engine
}

func newTiering(archive snapstore.Store, day time.Duration) *tiering {
	if day <= 0 {
		day = DefaultTierDay
	}
	return &tiering{archive: archive, day: day, jobs: map[string]*tierJob{},
		states: map[string]*tierRecord{}, seen: map[string]time.Time{}}
}

// tierJob is an operation of this daemon on one snapshot.
type tierJob struct {
	// copy: the copy's snapshot state (its progress).
	copy *snapshot
	// finishing: the operation is storing its outcome; done is closed
	// once it has and the claim is released.
	finishing bool
	done      chan struct{}
}

// start claims snapshot id for an operation of this daemon; false if one
// runs already. A claim whose operation is storing its outcome is waited
// for: the outcome is then what the caller reads.
func (t *tiering) start(ctx context.Context, id string) bool {
	for {
		t.mu.Lock()
		j, ok := t.jobs[id]
		if !ok {
			t.jobs[id] = &tierJob{copy: &snapshot{}, done: make(chan struct{})}
			t.mu.Unlock()
			return true
		}
		finishing, done := j.finishing, j.done
		t.mu.Unlock()
		if !finishing {
			return false
		}
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
	}
}

// job returns the snapshot state of id's running operation, set to r in
// store to (the copy's target).
func (t *tiering) job(id string, r meta.SnapshotRecord, to string) *snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &snapshot{}
	if j, ok := t.jobs[id]; ok {
		s = j.copy
	}
	s.mu.Lock()
	s.rec = r
	s.rec.Progress = 0
	s.rec.Store = to
	s.mu.Unlock()
	return s
}

// finishing marks id's operation as storing its outcome.
func (t *tiering) finishing(id string) {
	t.mu.Lock()
	if j, ok := t.jobs[id]; ok {
		j.finishing = true
	}
	t.mu.Unlock()
}

// finish releases the claim on id.
func (t *tiering) finish(id string) {
	t.mu.Lock()
	if j, ok := t.jobs[id]; ok {
		close(j.done)
		delete(t.jobs, id)
	}
	t.mu.Unlock()
}

// running reports whether this daemon runs an operation on id.
func (t *tiering) running(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.jobs[id]
	return ok
}

// progress is the percent done of id's running operation (0: none).
func (t *tiering) progress(id string) int {
	t.mu.Lock()
	j, ok := t.jobs[id]
	t.mu.Unlock()
	if !ok {
		return 0
	}
	return j.copy.record().Progress
}

// remember keeps r as the tier state last stored.
func (t *tiering) remember(r tierRecord) {
	t.mu.Lock()
	t.states[r.SnapshotID] = &r
	t.mu.Unlock()
}

// collectSoon asks for a collection of the archive store.
func (t *tiering) collectSoon() {
	t.mu.Lock()
	t.collect = true
	t.mu.Unlock()
}

// applyTier sets the storage tier fields of si from s's tier state.
func (s *snapshot) applyTier(si *SnapshotInfo) {
	si.StorageTier = TierStandard
	if t := s.tier.Load(); t != nil {
		now := time.Now()
		si.StorageTier, si.RestoreExpiryTime = t.storageTier(now), t.restoreExpiry(now)
	}
}

// checkReadable refuses reads of snapshot s's data while it is archived
// (ErrIncorrectState); see tiering.checkReadable.
func (e *Engine) checkReadable(ctx context.Context, s *snapshot, fresh bool) error {
	return e.tiers.checkReadable(ctx, s, fresh)
}

// gcDropArchivedRoots returns roots without the manifests of archived
// snapshots; see tiering.dropArchivedRoots.
func (e *Engine) gcDropArchivedRoots(ctx context.Context, st snapstore.Store, roots []string) ([]string, error) {
	return e.tiers.dropArchivedRoots(ctx, st, roots)
}

// checkReadable refuses reads of snapshot s's data while it is archived
// (ErrIncorrectState). fresh reads its tier state from the store (for
// CreateVolume and CopySnapshot); otherwise the state known (refreshed
// every catalogue interval) is used.
func (t *tiering) checkReadable(ctx context.Context, s *snapshot, fresh bool) error {
	r := s.record()
	if r.State != string(SnapshotCompleted) || r.Store != StoreRegional {
		return nil
	}
	tr := s.tier.Load()
	if fresh {
		st, err := t.env.store(r.Store)
		if err != nil {
			return err
		}
		if tr, err = readTier(ctx, st, r.ID); err != nil {
			return err
		}
		s.tier.Store(tr)
	}
	if tr.storageTier(time.Now()) == TierArchive {
		return fmt.Errorf("%w: snapshot %s is in the archive tier; restore it first (RestoreSnapshotTier)", ErrIncorrectState, r.ID)
	}
	return nil
}

// dropArchivedRoots returns roots without the manifests of archived
// snapshots (and their recycle-bin holds), by the tier objects in st read
// now: what only they reference is garbage. A tier object that fails its checks stops the round.
func (t *tiering) dropArchivedRoots(ctx context.Context, st snapstore.Store, roots []string) ([]string, error) {
	var keys []string
	err := st.List(ctx, tierPrefix, func(o snapstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list tiers: %w", err)
	}
	now := time.Now()
	drop := map[string]bool{}
	for _, k := range keys {
		id := strings.TrimPrefix(k, tierPrefix)
		tr, err := readTier(ctx, st, id)
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		if tr != nil && !tr.keepsStandardData(now, t.env.gcGrace) {
			// The manifest, and the recycle bin's copy of it if the
			// archived snapshot was deleted into the bin: its data is
			// the archive's copy (which dropOrphanCopies keeps while
			// the bin does).
			drop[snapfmt.ManifestKey(id)] = true
			drop[recycleHoldKey(id)] = true
		}
	}
	if len(drop) == 0 {
		return roots, nil
	}
	out := roots[:0:0]
	for _, r := range roots {
		if !drop[r] {
			out = append(out, r)
		}
	}
	return out, nil
}

// runningLocked is running with t.mu held.
func (t *tiering) runningLocked(id string) bool {
	_, ok := t.jobs[id]
	return ok
}
