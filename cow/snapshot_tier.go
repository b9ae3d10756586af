package cow

import (
	"encoding/json"
	"fmt"
	"time"
)

// A snapshot's storage tier (EC2's archive tier) is kept in the object
// tiers/<snap-id> of the snapshot's store, so that every daemon sharing
// the store agrees on it; a snapshot without one was never archived and is
// in the standard tier. The object records the last tiering operation
// (EC2's lastTieringOperationStatus) and its times; the tier the snapshot
// is in follows from it and the clock (a temporary restore ends by itself
// at its expiry time: nothing is stored then).
//
// While archived, the snapshot's manifest stays in the standard store (it
// is what makes the snapshot known to every daemon) but garbage collection
// does not count it as a root (gcDropArchivedRoots), so the data only it
// references is freed. A full copy (a manifest of its own, segments and
// packs, needing nothing of the standard store) is in the archive store
// under the same keys as in the standard one. A restore copies it back and
// stores a new manifest over the old one.

// TieringStatus is the status of a snapshot's last tiering operation
// (EC2's TieringOperationStatus).
type TieringStatus string

// The tiering statuses, as EC2 names them.
const (
	TieringArchivalInProgress TieringStatus = "archival-in-progress"
	TieringArchivalCompleted  TieringStatus = "archival-completed"
	TieringArchivalFailed     TieringStatus = "archival-failed"
	TieringTempInProgress     TieringStatus = "temporary-restore-in-progress"
	TieringTempCompleted      TieringStatus = "temporary-restore-completed"
	TieringTempFailed         TieringStatus = "temporary-restore-failed"
	TieringPermInProgress     TieringStatus = "permanent-restore-in-progress"
	TieringPermCompleted      TieringStatus = "permanent-restore-completed"
	TieringPermFailed         TieringStatus = "permanent-restore-failed"
)

// Storage tiers (EC2's StorageTier).
const (
	TierStandard = "standard"
	TierArchive  = "archive"
)

// MaxTemporaryRestoreDays is the longest temporary restore EC2 allows.
const MaxTemporaryRestoreDays = 180

// tierFormat is the version of the stored tier object.
const tierFormat = 1

// tierPrefix is where the tier objects of a store are.
const tierPrefix = "tiers/"

// tierKey is where snapshot id's tier object is.
func tierKey(id string) string { return tierPrefix + id }

// tierRecord is the stored tier state of one snapshot.
type tierRecord struct {
	Version    int           `json:"version"`
	SnapshotID string        `json:"snapshotId"`
	Status     TieringStatus `json:"lastTieringOperationStatus"`
	Detail     string        `json:"lastTieringOperationStatusDetail,omitempty"`
	StartTime  time.Time     `json:"lastTieringStartTime"`
	// ArchivalCompleteTime: when the last archival completed.
	ArchivalCompleteTime time.Time `json:"archivalCompleteTime,omitzero"`
	// RestoreExpiryTime: when a temporary restore ends.
	RestoreExpiryTime time.Time `json:"restoreExpiryTime,omitzero"`
	// RestoreDays: the days of the last temporary restore.
	RestoreDays int `json:"restoreDays,omitempty"`
}

func encodeTier(t tierRecord) ([]byte, error) {
	t.Version = tierFormat
	return json.Marshal(t)
}

// decodeTier decodes snapshot id's tier object, refusing one that is not
// well formed (ErrCorrupt).
func decodeTier(b []byte, id string) (tierRecord, error) {
	var t tierRecord
	if err := json.Unmarshal(b, &t); err != nil {
		return tierRecord{}, fmt.Errorf("%w: tier of %s: %v", ErrCorrupt, id, err)
	}
	bad := ""
	switch {
	case t.Version != tierFormat:
		bad = fmt.Sprintf("format %d", t.Version)
	case t.SnapshotID != id:
		bad = fmt.Sprintf("names snapshot %q", t.SnapshotID)
	case !validTieringStatus(t.Status):
		bad = fmt.Sprintf("status %q", t.Status)
	case t.StartTime.IsZero():
		bad = "no start time"
	case t.Status == TieringTempCompleted && t.RestoreExpiryTime.IsZero():
		bad = "a temporary restore without an expiry time"
	case t.RestoreDays < 0 || t.RestoreDays > MaxTemporaryRestoreDays:
		bad = fmt.Sprintf("restore days %d", t.RestoreDays)
	}
	if bad != "" {
		return tierRecord{}, fmt.Errorf("%w: tier of %s: %s", ErrCorrupt, id, bad)
	}
	return t, nil
}

func validTieringStatus(s TieringStatus) bool {
	switch s {
	case TieringArchivalInProgress, TieringArchivalCompleted, TieringArchivalFailed,
		TieringTempInProgress, TieringTempCompleted, TieringTempFailed,
		TieringPermInProgress, TieringPermCompleted, TieringPermFailed:
		return true
	}
	return false
}

// storageTier is the tier the snapshot is in at now: standard until an
// archival completes, and again once a restore completes (a temporary one
// until it expires).
func (t *tierRecord) storageTier(now time.Time) string {
	if t == nil {
		return TierStandard
	}
	switch t.Status {
	case TieringArchivalInProgress, TieringArchivalFailed, TieringPermCompleted:
		return TierStandard
	case TieringTempCompleted:
		if now.Before(t.RestoreExpiryTime) {
			return TierStandard
		}
	}
	return TierArchive
}

// keepsStandardData reports whether the standard store must keep the
// snapshot's data at now: garbage collection counts its manifest as a root.
// The data is kept grace past the moment the snapshot left the standard
// tier (an archival's completion, a temporary restore's expiry): a
// CreateVolume on another daemon that read the tier just before stores its
// hold within it, and clocks differ between daemons. While a restore is
// under way the manifest may name data already freed; what the restore
// stores is protected by its lease until it completes.
func (t *tierRecord) keepsStandardData(now time.Time, grace time.Duration) bool {
	if t == nil {
		return true
	}
	switch t.Status {
	case TieringArchivalInProgress, TieringArchivalFailed, TieringPermCompleted:
		return true
	case TieringArchivalCompleted:
		return now.Before(t.ArchivalCompleteTime.Add(grace))
	case TieringTempCompleted:
		return now.Before(t.RestoreExpiryTime.Add(grace))
	}
	return false
}

// inProgress reports whether an archival or restore is under way.
func (t *tierRecord) inProgress() bool {
	if t == nil {
		return false
	}
	switch t.Status {
	case TieringArchivalInProgress, TieringTempInProgress, TieringPermInProgress:
		return true
	}
	return false
}

// restoreExpiry is the expiry time to show at now: a temporary restore's,
// until it expires; zero otherwise.
func (t *tierRecord) restoreExpiry(now time.Time) time.Time {
	if t == nil || t.Status != TieringTempCompleted || !now.Before(t.RestoreExpiryTime) {
		return time.Time{}
	}
	return t.RestoreExpiryTime
}

// checkArchive returns the error ModifySnapshotTier gives for a snapshot
// in tier state t at now; stale reports that an operation shown in
// progress was abandoned (its daemon stopped) and may be taken over.
func (t *tierRecord) checkArchive(now time.Time, stale bool) error {
	if t.inProgress() && !stale {
		return fmt.Errorf("%w: snapshot %s: a tiering operation (%s) is under way", ErrIncorrectState, t.SnapshotID, t.Status)
	}
	if t.storageTier(now) == TierArchive {
		return fmt.Errorf("%w: snapshot %s is already archived", ErrIncorrectState, t.SnapshotID)
	}
	if t != nil && t.Status == TieringTempCompleted {
		return fmt.Errorf("%w: snapshot %s is temporarily restored; it returns to the archive tier at %s",
			ErrIncorrectState, t.SnapshotID, t.RestoreExpiryTime.Format(time.RFC3339))
	}
	return nil
}

// restorePlan is what a RestoreSnapshotTier does.
type restorePlan int

const (
	// restoreCopy copies the archived snapshot back to the standard store.
	restoreCopy restorePlan = iota + 1
	// restoreExtend acts on a temporary restore under way: a temporary
	// restore changes its period, a permanent one makes it permanent (the
	// data is in the standard store already).
	restoreExtend
)

// planRestore returns what RestoreSnapshotTier(days, permanent) does for
// a snapshot in tier state t at now, or the error it gives.
func (t *tierRecord) planRestore(now time.Time, stale bool) (restorePlan, error) {
	if t == nil {
		return 0, fmt.Errorf("%w: snapshot is not archived", ErrIncorrectState)
	}
	if t.inProgress() && !stale {
		return 0, fmt.Errorf("%w: snapshot %s: a tiering operation (%s) is under way", ErrIncorrectState, t.SnapshotID, t.Status)
	}
	if t.Status == TieringTempCompleted && now.Before(t.RestoreExpiryTime) {
		return restoreExtend, nil
	}
	if t.storageTier(now) != TierArchive || t.Status == TieringArchivalInProgress {
		return 0, fmt.Errorf("%w: snapshot %s is not archived", ErrIncorrectState, t.SnapshotID)
	}
	return restoreCopy, nil
}
