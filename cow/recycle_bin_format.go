package cow

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// A snapshot in the recycle bin is two objects in its snapshot store,
// where every daemon sharing the store sees them:
//
//   - snapshots/<id>/recycle-bin, beside where its manifest was: when it
//     entered the bin, when its retention ends, the rule, the owner (a
//     recycledRecord, JSON);
//   - holds/recycle-bin/<id>: the bin's hold, a copy of its manifest.
//     Garbage collection marks from every hold, so the snapshot's data
//     stays on every host until the hold goes.
//
// The manifest itself is gone, so the snapshot is in no catalogue and no
// DescribeSnapshots. Restoring puts the manifest back from the hold;
// expiry (in garbage collection, by whichever host sees it first) deletes
// the hold, then the record.

// recycleRecordSuffix ends the key of a recycled snapshot's record.
const recycleRecordSuffix = "/recycle-bin"

// recycleHoldVolume is the volume part of the recycle bin's holds: no
// volume has this ID (volume IDs are vol-...).
const recycleHoldVolume = "recycle-bin"

// recycleRecordKey is where snapshot id's recycle-bin record is.
func recycleRecordKey(id string) string { return snapfmt.SnapshotPrefix + id + recycleRecordSuffix }

// recycleHoldKey is the recycle bin's hold on snapshot id.
func recycleHoldKey(id string) string { return snapfmt.HoldKey(recycleHoldVolume, id) }

// parseRecycleRecordKey returns the snapshot a record key names.
func parseRecycleRecordKey(key string) (string, bool) {
	id, ok := strings.CutPrefix(key, snapfmt.SnapshotPrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, recycleRecordSuffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// recycledFormat is the version of the stored record.
const recycledFormat = 1

// recycledRecord is the stored record of a snapshot in the recycle bin.
type recycledRecord struct {
	Version     int       `json:"version"`
	SnapshotID  string    `json:"snapshotId"`
	OwnerID     string    `json:"ownerId"`
	VolumeID    string    `json:"volumeId"`
	Description string    `json:"description,omitempty"`
	RuleID      string    `json:"ruleId"`
	EnterTime   time.Time `json:"enterTime"`
	ExitTime    time.Time `json:"exitTime"`
}

// expired reports whether the record's retention has ended at now.
func (r recycledRecord) expired(now time.Time) bool { return !now.Before(r.ExitTime) }

func encodeRecycled(r recycledRecord) ([]byte, error) {
	r.Version = recycledFormat
	return json.Marshal(r)
}

// decodeRecycled decodes snapshot id's recycle-bin record, refusing one
// that is not well formed (ErrCorrupt).
func decodeRecycled(b []byte, id string) (recycledRecord, error) {
	var r recycledRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return recycledRecord{}, fmt.Errorf("%w: recycle-bin record of %s: %v", ErrCorrupt, id, err)
	}
	switch {
	case r.Version != recycledFormat:
		return recycledRecord{}, fmt.Errorf("%w: recycle-bin record of %s: format %d", ErrCorrupt, id, r.Version)
	case r.SnapshotID != id:
		return recycledRecord{}, fmt.Errorf("%w: recycle-bin record of %s names snapshot %q", ErrCorrupt, id, r.SnapshotID)
	case r.EnterTime.IsZero() || r.ExitTime.IsZero() || r.ExitTime.Before(r.EnterTime):
		return recycledRecord{}, fmt.Errorf("%w: recycle-bin record of %s: retention from %v to %v", ErrCorrupt, id, r.EnterTime, r.ExitTime)
	case r.OwnerID == "":
		return recycledRecord{}, fmt.Errorf("%w: recycle-bin record of %s has no owner", ErrCorrupt, id)
	}
	return r, nil
}
