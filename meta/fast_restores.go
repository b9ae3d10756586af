package meta

import (
	"encoding/json"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// prefixFastRestore: fsr/<snap-id> -> FastRestoreRecord (JSON).
const prefixFastRestore = "fsr/"

func fastRestoreKey(snapID string) []byte { return []byte(prefixFastRestore + snapID) }

// FastRestoreRecord is the fast snapshot restore state of one snapshot in
// the daemon's one Availability Zone (EC2's EnableFastSnapshotRestores):
// its state, why it last changed, who enabled it, and when it entered
// each state (zero: not yet).
type FastRestoreRecord struct {
	SnapshotID     string    `json:"snapshot_id"`
	State          string    `json:"state"`
	Reason         string    `json:"reason,omitempty"`
	OwnerID        string    `json:"owner_id,omitempty"`
	EnablingTime   time.Time `json:"enabling_time,omitzero"`
	OptimizingTime time.Time `json:"optimizing_time,omitzero"`
	EnabledTime    time.Time `json:"enabled_time,omitzero"`
	DisablingTime  time.Time `json:"disabling_time,omitzero"`
	DisabledTime   time.Time `json:"disabled_time,omitzero"`
}

// PutFastRestore writes a snapshot's fast restore record.
func (s *Store) PutFastRestore(r FastRestoreRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(fastRestoreKey(r.SnapshotID), v) }); err != nil {
		return fmt.Errorf("meta: put fast restore of snapshot %s: %w", r.SnapshotID, err)
	}
	return nil
}

// DeleteFastRestore removes snapshot snapID's fast restore record, if any.
func (s *Store) DeleteFastRestore(snapID string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(fastRestoreKey(snapID)) }); err != nil {
		return fmt.Errorf("meta: delete fast restore of snapshot %s: %w", snapID, err)
	}
	return nil
}

// FastRestores returns every fast restore record, by snapshot ID.
func (s *Store) FastRestores() ([]FastRestoreRecord, error) {
	var out []FastRestoreRecord
	err := s.scan([]byte(prefixFastRestore), func(key, val []byte) error {
		var r FastRestoreRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("meta: decode fast restore %q: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
