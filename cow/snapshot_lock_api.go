package cow

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// The engine's snapshot lock calls (the rules: snapshot_lock.go; the
// stored form: snapshot_lock_store.go). Each reads the lock from the
// snapshot's store, never from memory, so that a lock another daemon
// sharing the store made or removed counts at once.
//
// On one daemon, LockSnapshot and UnlockSnapshot hold e.gc shared and
// DeleteSnapshot holds it exclusively, so a lock is never stored for a
// snapshot being deleted here. Between daemons there is no such
// exclusion: a DeleteSnapshot on one host that read no lock just before
// another host stored one deletes the snapshot (the lock object is then
// left over, and removed by the next DeleteSnapshot check or ignored).

// snapshotLocks serves the lock calls: it finds a call's snapshot and its
// store, reads the lock there and says what it is now. Its fields are all
// it uses of the engine.
type snapshotLocks struct {
	units     lockUnits
	owner     string // the account ID: only its snapshots are locked
	stores    map[string]snapstore.Store
	store     func(name string) (snapstore.Store, error)
	snapshots *snapshotTable // the snapshots this daemon knows
	gc        *gcState       // held shared by a lock or an unlock
	log       *slog.Logger
	// lookup finds a snapshot by ID (Engine.lookupSnapshot).
	lookup func(ctx context.Context, id string) (*snapshot, error)
}

// newSnapshotLocks serves the lock calls of e.
func newSnapshotLocks(e *Engine, units lockUnits) *snapshotLocks {
	return &snapshotLocks{units: units, owner: e.accountID, stores: e.stores, store: e.store,
		snapshots: &e.snapshots, gc: &e.gc, log: e.log, lookup: e.lookupSnapshot}
}

// target finds snapshot id for a lock call: this account's own, and
// its store.
func (sl *snapshotLocks) target(ctx context.Context, id string) (*snapshot, snapstore.Store, error) {
	s, err := sl.lookup(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if s.owner != "" && s.owner != sl.owner {
		return nil, nil, fmt.Errorf("snapshot %s: %w %s", id, ErrNotOwner, s.owner)
	}
	st, err := sl.store(s.storeName())
	if err != nil {
		return nil, nil, err
	}
	return s, st, nil
}

// LockSnapshot locks snapshot id, or changes its lock, as r asks (EC2's
// LockSnapshot), and returns the lock now in force.
func (e *Engine) LockSnapshot(ctx context.Context, id string, r LockRequest) (SnapshotLock, error) {
	return e.locks.lock(ctx, id, r)
}

// lock locks snapshot id, or changes its lock, as r asks, and returns the
// lock now in force.
func (sl *snapshotLocks) lock(ctx context.Context, id string, r LockRequest) (SnapshotLock, error) {
	sl.gc.RLock()
	defer sl.gc.RUnlock()
	s, st, err := sl.target(ctx, id)
	if err != nil {
		return SnapshotLock{}, err
	}
	if r := s.record(); r.State == string(SnapshotError) {
		// As EC2: a pending or completed snapshot may be locked.
		return SnapshotLock{}, fmt.Errorf("%w: snapshot %s is %s, not pending or completed", ErrIncorrectState, id, r.State)
	}
	s.attrMu.Lock()
	defer s.attrMu.Unlock()
	cur, err := sl.lockOf(ctx, s, st)
	if err != nil {
		return SnapshotLock{}, err
	}
	now, start := time.Now(), time.Now()
	if s.record().State != string(SnapshotCompleted) {
		start = time.Time{} // as EC2: the duration starts at the completion
	}
	n, err := sl.units.nextLockFrom(cur, id, sl.owner, r, now, start)
	if err != nil {
		return SnapshotLock{}, err
	}
	if err := putLock(ctx, st, n); err != nil {
		return SnapshotLock{}, err
	}
	sl.log.Info("snapshot locked", "snapshot", id, "mode", n.Mode, "expires", n.ExpiresOn, "cool_off_expires", n.CoolOffExpiresOn)
	return n, nil
}

// UnlockSnapshot removes snapshot id's lock (EC2's UnlockSnapshot): one in
// governance mode, or in compliance mode during its cooling-off period.
func (e *Engine) UnlockSnapshot(ctx context.Context, id string) error {
	return e.locks.unlock(ctx, id)
}

// unlock removes snapshot id's lock: one in governance mode, or in
// compliance mode during its cooling-off period.
func (sl *snapshotLocks) unlock(ctx context.Context, id string) error {
	sl.gc.RLock()
	defer sl.gc.RUnlock()
	s, st, err := sl.target(ctx, id)
	if err != nil {
		return err
	}
	s.attrMu.Lock()
	defer s.attrMu.Unlock()
	cur, err := sl.lockOf(ctx, s, st)
	if err != nil {
		return err
	}
	if err := checkUnlock(cur, id, time.Now()); err != nil {
		return err
	}
	if err := deleteLock(ctx, st, id); err != nil {
		return err
	}
	sl.log.Info("snapshot unlocked", "snapshot", id)
	return nil
}

// DescribeLockedSnapshots returns the locks (expired ones too) of this
// account's snapshots, sorted by snapshot ID: of those named in ids (each
// must exist), or of every one this daemon knows. Without ids, each store
// is listed once and only the snapshots with a lock object are read.
func (e *Engine) DescribeLockedSnapshots(ctx context.Context, ids []string) ([]SnapshotLock, error) {
	return e.locks.describe(ctx, ids)
}

// describe returns the locks (expired ones too) of this account's
// snapshots, sorted by snapshot ID: of those named in ids (each must
// exist), or of every one this daemon knows (see DescribeLockedSnapshots).
func (sl *snapshotLocks) describe(ctx context.Context, ids []string) ([]SnapshotLock, error) {
	var targets []*snapshot
	if len(ids) > 0 {
		for _, id := range ids {
			s, _, err := sl.target(ctx, id)
			if err != nil {
				return nil, err
			}
			targets = append(targets, s)
		}
	} else {
		locked, err := sl.lockObjects(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range sl.ownedSnapshots() {
			if locked[s.storeName()][s.record().ID] {
				targets = append(targets, s)
			}
		}
	}
	var out []SnapshotLock
	for _, s := range targets {
		st, err := sl.store(s.storeName())
		if err != nil {
			return nil, err
		}
		l, err := sl.lockOf(ctx, s, st)
		if err != nil {
			return nil, err
		}
		if l != nil {
			out = append(out, *l)
		}
	}
	slices.SortFunc(out, func(a, b SnapshotLock) int { return strings.Compare(a.SnapshotID, b.SnapshotID) })
	return slices.CompactFunc(out, func(a, b SnapshotLock) bool { return a.SnapshotID == b.SnapshotID }), nil
}

// lockObjects lists the snapshots with a lock object, by store name.
func (sl *snapshotLocks) lockObjects(ctx context.Context) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for name, st := range sl.stores {
		if st == nil {
			continue
		}
		ids := map[string]bool{}
		err := st.List(ctx, "snapshots/", func(o snapstore.ObjectInfo) error {
			if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), "/lock"); ok && !strings.Contains(id, "/") {
				ids[id] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list the snapshot locks of store %s: %w", name, err)
		}
		out[name] = ids
	}
	return out, nil
}

// ownedSnapshots are the snapshots of this account the daemon knows: its
// own and those in its catalogue, not deleted.
func (sl *snapshotLocks) ownedSnapshots() []*snapshot {
	sl.snapshots.mu.Lock()
	defer sl.snapshots.mu.Unlock()
	var out []*snapshot
	for _, m := range []map[string]*snapshot{sl.snapshots.byID, sl.snapshots.catalog} {
		for _, s := range m {
			if (s.owner == "" || s.owner == sl.owner) && !s.record().Deleted && !s.gone.Load() {
				out = append(out, s)
			}
		}
	}
	return out
}

// refuseLockedDelete is DeleteSnapshot's check, with e.gc held: snapshot
// s's lock, read from its store now, must have expired (or there is none).
// An expired lock is removed here, before the snapshot goes.
func (e *Engine) refuseLockedDelete(ctx context.Context, s *snapshot) error {
	return e.locks.refuseDelete(ctx, s)
}

// refuseDelete refuses the deletion of snapshot s while its lock, read
// from its store now, is in force; an expired lock is removed here, before
// the snapshot goes. The caller holds e.gc.
func (sl *snapshotLocks) refuseDelete(ctx context.Context, s *snapshot) error {
	id := s.record().ID
	st, err := sl.store(s.storeName())
	if err != nil {
		return err
	}
	stored, err := readLock(ctx, st, id)
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if stored == nil {
		return nil
	}
	if err := checkDelete(sl.lockNow(s, stored), id, time.Now()); err != nil {
		return err
	}
	return deleteLock(ctx, st, id)
}

// lockOf reads snapshot s's lock from st and says what it is now: a lock
// made while s was pending starts its duration at s's completion; the lock
// of a snapshot that failed is cancelled (nil), as EC2's.
func (sl *snapshotLocks) lockOf(ctx context.Context, s *snapshot, st snapstore.Store) (*SnapshotLock, error) {
	l, err := readLock(ctx, st, s.record().ID)
	if err != nil {
		return nil, err
	}
	return sl.lockNow(s, l), nil
}

// lockNow is lockOf for the stored lock l (nil: none).
func (sl *snapshotLocks) lockNow(s *snapshot, l *SnapshotLock) *SnapshotLock {
	r := s.record()
	switch {
	case l == nil:
		return nil
	case r.State == string(SnapshotError):
		return nil
	case r.State != string(SnapshotCompleted):
		return l
	}
	done := r.CompletionTime
	if done.IsZero() {
		done = l.CreatedOn // a snapshot completed before its record kept the time
	}
	started := sl.units.started(*l, done)
	return &started
}
