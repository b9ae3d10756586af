package meta

import (
	"encoding/json"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// prefixSnapshotAttrs: a/<snap-id> -> SnapshotAttributes (JSON).
const prefixSnapshotAttrs = "a/"

// SnapshotAttributesKey is the key of a snapshot's changeable attributes.
func SnapshotAttributesKey(snapID string) []byte { return []byte(prefixSnapshotAttrs + snapID) }

// SnapshotAttributes are what may change of a snapshot after CreateSnapshot:
// its tags (CreateTags, DeleteTags) and who may create volumes from it
// (ModifySnapshotAttribute). Once a snapshot has them, they supersede the
// tags of its SnapshotRecord and manifest, which are the tags it was
// created with.
type SnapshotAttributes struct {
	Tags []Tag `json:"tags"`
	// CreateVolumeUsers are the accounts, besides the owner, that may
	// create volumes from the snapshot; CreateVolumeAll: every account.
	CreateVolumeUsers []string `json:"create_volume_users,omitempty"`
	CreateVolumeAll   bool     `json:"create_volume_all,omitempty"`
}

// PutSnapshotAttributes writes snapshot snapID's attributes.
func (s *Store) PutSnapshotAttributes(snapID string, a SnapshotAttributes) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(SnapshotAttributesKey(snapID), v) }); err != nil {
		return fmt.Errorf("meta: put attributes of snapshot %s: %w", snapID, err)
	}
	return nil
}

// DeleteSnapshotAttributes removes snapshot snapID's attributes, if any.
func (s *Store) DeleteSnapshotAttributes(snapID string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(SnapshotAttributesKey(snapID)) }); err != nil {
		return fmt.Errorf("meta: delete attributes of snapshot %s: %w", snapID, err)
	}
	return nil
}

// AllSnapshotAttributes returns the attributes of every snapshot that has
// them, by snapshot ID.
func (s *Store) AllSnapshotAttributes() (map[string]SnapshotAttributes, error) {
	out := map[string]SnapshotAttributes{}
	err := s.scan([]byte(prefixSnapshotAttrs), func(key, val []byte) error {
		var a SnapshotAttributes
		if err := json.Unmarshal(val, &a); err != nil {
			return fmt.Errorf("meta: decode snapshot attributes %q: %w", key, err)
		}
		out[string(key[len(prefixSnapshotAttrs):])] = a
		return nil
	})
	return out, err
}
