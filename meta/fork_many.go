package meta

import (
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Forks are the records of ForkMany: each volume's next generation and
// the snapshot that freezes its present one.
type Forks struct {
	Volumes   []VolumeRecord
	Snapshots []SnapshotRecord
}

// ForkMany records many snapshots and their volumes' next generations in
// one transaction: the fork point of CreateSnapshots, so that a crash
// leaves all of them or none.
func (s *Store) ForkMany(f Forks) error {
	type kv struct{ k, v []byte }
	var sets []kv
	for _, r := range f.Volumes {
		v, err := encodeVolume(r)
		if err != nil {
			return err
		}
		sets = append(sets, kv{VolumeKey(r.ID), v})
	}
	for _, r := range f.Snapshots {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		sets = append(sets, kv{SnapshotKey(r.ID), v})
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, r := range f.Snapshots {
			if _, err := txn.Get(SnapshotKey(r.ID)); !errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("snapshot %s exists already", r.ID)
			}
		}
		for _, e := range sets {
			if err := txn.Set(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: fork %d volumes: %w", len(f.Volumes), err)
	}
	return nil
}
