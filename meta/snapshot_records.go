package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// prefixSnapshot: s/<snap-id> -> SnapshotRecord (JSON).
const prefixSnapshot = "s/"

// SnapshotKey is the key of a snapshot's record.
func SnapshotKey(snapID string) []byte { return []byte(prefixSnapshot + snapID) }

// SnapshotRecord is the persistent description of a snapshot.
type SnapshotRecord struct {
	ID       string `json:"id"`
	VolumeID string `json:"volume_id"`
	// Gen is the volume generation the snapshot froze: it holds, for every
	// block, the newest version born in a generation <= Gen.
	Gen            uint64    `json:"gen"`
	State          string    `json:"state"`    // pending, completed, error
	Progress       int       `json:"progress"` // percent
	StartTime      time.Time `json:"start_time"`
	CompletionTime time.Time `json:"completion_time,omitzero"`
	Description    string    `json:"description,omitempty"`
	Tags           []Tag     `json:"tags,omitempty"`
	VolumeSize     int64     `json:"volume_size"` // bytes
	BlockSize      int       `json:"block_size"`
	// Store names the snapshot store holding it: "regional" or "local".
	Store         string `json:"store"`
	OutpostArn    string `json:"outpost_arn,omitempty"`
	StatusMessage string `json:"status_message,omitempty"`
	DataBytes     int64  `json:"data_bytes,omitempty"`
	// Deleted: DeleteSnapshot was called while it was pending; the
	// flusher drops it instead of uploading it.
	Deleted bool `json:"deleted,omitempty"`
	// Encryption is set for an encrypted snapshot: the data key of its
	// volume, or for a copy its own.
	Encryption *Encryption `json:"encryption,omitempty"`
	// CopyOf is set for a snapshot made by CopySnapshot: the source
	// snapshot, in store CopyFromStore. The flusher copies its content.
	CopyOf        string `json:"copy_of,omitempty"`
	CopyFromStore string `json:"copy_from_store,omitempty"`
	// Parent is set for a snapshot written through the EBS direct APIs
	// on top of another (StartSnapshot's ParentSnapshotId): its lineage.
	Parent string `json:"parent,omitempty"`
}

// PutSnapshot writes a snapshot record.
func (s *Store) PutSnapshot(r SnapshotRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(SnapshotKey(r.ID), v) }); err != nil {
		return fmt.Errorf("meta: put snapshot %s: %w", r.ID, err)
	}
	return nil
}

// DeleteSnapshot removes a snapshot record.
func (s *Store) DeleteSnapshot(id string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(SnapshotKey(id)) }); err != nil {
		return fmt.Errorf("meta: delete snapshot %s: %w", id, err)
	}
	return nil
}

// Snapshots returns every snapshot record in ID order.
func (s *Store) Snapshots() ([]SnapshotRecord, error) {
	var out []SnapshotRecord
	err := s.scan([]byte(prefixSnapshot), func(key, val []byte) error {
		var r SnapshotRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("meta: decode snapshot %q: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Fork records a new snapshot and the volume's next generation in one
// transaction: the O(1) metadata fork of CreateSnapshot.
func (s *Store) Fork(vol VolumeRecord, snap SnapshotRecord) error {
	vv, err := encodeVolume(vol)
	if err != nil {
		return err
	}
	sv, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(SnapshotKey(snap.ID)); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("snapshot %s exists already", snap.ID)
		}
		if err := txn.Set(VolumeKey(vol.ID), vv); err != nil {
			return err
		}
		return txn.Set(SnapshotKey(snap.ID), sv)
	})
	if err != nil {
		return fmt.Errorf("meta: fork %s -> %s: %w", vol.ID, snap.ID, err)
	}
	return nil
}

// Change returns volume volID's version of block blk born in generation gen.
func (s *Store) Change(volID string, gen, blk uint64) (Extent, error) {
	var e Extent
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(ChangeKey(volID, gen, blk))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			e, err = DecodeExtent(v)
			return err
		})
	})
	return e, err
}

// ChangesBetween calls fn for every change-set entry of volume volID born in
// a generation in (afterGen, uptoGen], in (generation, block) order.
func (s *Store) ChangesBetween(volID string, afterGen, uptoGen uint64, fn func(gen, blk uint64, e Extent) error) error {
	for gen := afterGen + 1; gen <= uptoGen; gen++ {
		err := s.scan(ChangeGenPrefix(volID, gen), func(key, val []byte) error {
			g, blk, err := ParseChangeKey(volID, key)
			if err != nil {
				return err
			}
			e, err := DecodeExtent(val)
			if err != nil {
				return err
			}
			return fn(g, blk, e)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
