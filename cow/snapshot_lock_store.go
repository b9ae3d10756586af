package cow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// A snapshot's lock is the object snapshots/<id>/lock beside its
// manifest, in the store that holds the snapshot: every daemon sharing
// the store reads it from there, afresh, before it deletes the snapshot,
// so a lock made on one host binds them all. It is an object of its own,
// not part of snapshots/<id>/attributes: a daemon rewrites the attributes
// object whole from what it last read (tags, permissions), and one that
// had not yet read a new lock would drop it.
//
// The object is written by LockSnapshot, removed by UnlockSnapshot, and
// removed by DeleteSnapshot once expired (an expired lock is reported
// until then, as EC2 does). Two daemons changing one snapshot's lock at
// once: the last object stored wins.

// lockKey is where snapshot id's lock is stored.
func lockKey(id string) string { return "snapshots/" + id + "/lock" }

// lockFormat is the version of the stored lock object.
const lockFormat = 1

// storedLock is the stored form of a lock; times are RFC 3339 UTC.
type storedLock struct {
	Version          int        `json:"version"`
	SnapshotID       string     `json:"snapshotId"`
	OwnerID          string     `json:"ownerId"`
	Mode             LockMode   `json:"lockMode"`
	LockDuration     int        `json:"lockDurationDays,omitempty"`
	CoolOffPeriod    int        `json:"coolOffPeriodHours,omitempty"`
	CreatedOn        time.Time  `json:"lockCreatedOn"`
	DurationStart    time.Time  `json:"lockDurationStartTime,omitzero"` // zero: starts when the snapshot completes
	CoolOffExpiresOn *time.Time `json:"coolOffPeriodExpiresOn,omitempty"`
	ExpiresOn        time.Time  `json:"lockExpiresOn,omitzero"` // zero: a duration not started yet
}

func encodeLock(l SnapshotLock) ([]byte, error) {
	sl := storedLock{Version: lockFormat, SnapshotID: l.SnapshotID, OwnerID: l.OwnerID, Mode: l.Mode,
		LockDuration: l.LockDuration, CoolOffPeriod: l.CoolOffPeriod, CreatedOn: l.CreatedOn.UTC(),
		DurationStart: l.DurationStart.UTC(), ExpiresOn: l.ExpiresOn.UTC()}
	if !l.CoolOffExpiresOn.IsZero() {
		t := l.CoolOffExpiresOn.UTC()
		sl.CoolOffExpiresOn = &t
	}
	return json.Marshal(sl)
}

// decodeLock decodes snapshot id's lock object, refusing one that is not
// well formed (ErrCorrupt).
func decodeLock(b []byte, id string) (SnapshotLock, error) {
	var sl storedLock
	if err := json.Unmarshal(b, &sl); err != nil {
		return SnapshotLock{}, fmt.Errorf("%w: lock of %s: %v", ErrCorrupt, id, err)
	}
	if err := sl.check(id); err != nil {
		return SnapshotLock{}, fmt.Errorf("%w: lock of %s: %v", ErrCorrupt, id, err)
	}
	l := SnapshotLock{SnapshotID: sl.SnapshotID, OwnerID: sl.OwnerID, Mode: sl.Mode, LockDuration: sl.LockDuration,
		CoolOffPeriod: sl.CoolOffPeriod, CreatedOn: sl.CreatedOn, DurationStart: sl.DurationStart, ExpiresOn: sl.ExpiresOn}
	if sl.CoolOffExpiresOn != nil {
		l.CoolOffExpiresOn = *sl.CoolOffExpiresOn
	}
	return l, nil
}

// check says what is wrong with a decoded lock of snapshot id.
func (sl *storedLock) check(id string) error {
	switch {
	case sl.Version != lockFormat:
		return fmt.Errorf("format %d", sl.Version)
	case sl.SnapshotID != id:
		return fmt.Errorf("names snapshot %q", sl.SnapshotID)
	case !ValidAccountID(sl.OwnerID):
		return fmt.Errorf("owner %q", sl.OwnerID)
	case sl.Mode != LockGovernance && sl.Mode != LockCompliance:
		return fmt.Errorf("mode %q", sl.Mode)
	case sl.LockDuration != 0 && (sl.LockDuration < MinLockDuration || sl.LockDuration > MaxLockDuration):
		return fmt.Errorf("duration %d days", sl.LockDuration)
	case sl.CoolOffPeriod != 0 && (sl.CoolOffPeriod < MinCoolOffPeriod || sl.CoolOffPeriod > MaxCoolOffPeriod):
		return fmt.Errorf("cooling-off period %d hours", sl.CoolOffPeriod)
	case (sl.CoolOffPeriod != 0) != (sl.CoolOffExpiresOn != nil):
		return errors.New("cooling-off period without its end, or an end without a period")
	case sl.CoolOffExpiresOn != nil && sl.Mode != LockCompliance:
		return errors.New("cooling-off period in governance mode")
	case sl.CreatedOn.IsZero():
		return errors.New("no creation time")
	case sl.DurationStart.IsZero():
		return sl.checkAwaitingStart()
	case sl.DurationStart.Before(sl.CreatedOn) || !sl.ExpiresOn.After(sl.DurationStart):
		return errors.New("times out of order")
	}
	return nil
}

// checkAwaitingStart checks a lock made while its snapshot was pending:
// either a duration, not started, or an expiration date after its making.
func (sl *storedLock) checkAwaitingStart() error {
	switch {
	case sl.LockDuration != 0 && !sl.ExpiresOn.IsZero():
		return errors.New("an expiry for a duration not started")
	case sl.LockDuration == 0 && !sl.ExpiresOn.After(sl.CreatedOn):
		return errors.New("neither a duration nor an expiry after the lock's making")
	}
	return nil
}

// readLock reads snapshot id's lock from st, from the store itself (never
// a cache); nil if it has none.
func readLock(ctx context.Context, st snapstore.Store, id string) (*SnapshotLock, error) {
	b, err := st.Get(ctx, lockKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the lock of snapshot %s: %w", id, err)
	}
	l, err := decodeLock(b, id)
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// putLock stores l as its snapshot's lock in st.
func putLock(ctx context.Context, st snapstore.Store, l SnapshotLock) error {
	b, err := encodeLock(l)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, lockKey(l.SnapshotID), b); err != nil {
		return fmt.Errorf("store the lock of snapshot %s: %w", l.SnapshotID, err)
	}
	return nil
}

// deleteLock removes snapshot id's lock from st, if it has one.
func deleteLock(ctx context.Context, st snapstore.Store, id string) error {
	if err := st.Delete(ctx, lockKey(id)); err != nil && !errors.Is(err, snapstore.ErrNotFound) {
		return fmt.Errorf("delete the lock of snapshot %s: %w", id, err)
	}
	return nil
}
