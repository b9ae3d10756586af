package cow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// A snapshot's attributes are what may change of it after CreateSnapshot:
// its tags and who may create volumes from it (createVolumePermission).
// Until they change, a snapshot's tags are those it was created with (in
// its record and its manifest) and only its owner may use it.
//
// Once changed they are kept twice: in a Badger record of the daemon
// that owns the snapshot (meta.SnapshotAttributes, so they survive a
// restart with the snapshot's record) and in the object
// snapshots/<id>/attributes beside the manifest, which every daemon
// sharing the store reads with the manifest and again whenever the
// catalogue's listing shows the object changed. The manifest itself is
// never rewritten: it is checksummed and, for an encrypted snapshot,
// sealed. The object wins over the manifest's tags. Changes are serialised
// per snapshot on one daemon; two daemons of the owning account changing
// the same snapshot at once: the last object stored wins.

// attributesKey is where snapshot snapID's attributes are stored.
func attributesKey(snapID string) string { return "snapshots/" + snapID + "/attributes" }

// attributesFormat is the version of the stored attributes object.
const attributesFormat = 1

// storedAttributes is the stored form of a snapshot's attributes.
type storedAttributes struct {
	Version                int              `json:"version"`
	SnapshotID             string           `json:"snapshotId"`
	Tags                   []Tag            `json:"tags"`
	CreateVolumePermission storedPermission `json:"createVolumePermission"`
}

// storedPermission: the accounts (UserIDs) and group ("all") that may
// create volumes from a snapshot besides its owner.
type storedPermission struct {
	UserIDs []string `json:"userIds,omitempty"`
	Group   string   `json:"group,omitempty"`
}

func encodeAttributes(id string, a meta.SnapshotAttributes) ([]byte, error) {
	sa := storedAttributes{Version: attributesFormat, SnapshotID: id, Tags: tagsFromMeta(a.Tags),
		CreateVolumePermission: storedPermission{UserIDs: a.CreateVolumeUsers}}
	if sa.Tags == nil {
		sa.Tags = []Tag{}
	}
	if a.CreateVolumeAll {
		sa.CreateVolumePermission.Group = groupAll
	}
	return json.Marshal(sa)
}

// decodeAttributes decodes snapshot id's attributes object, refusing one
// that is not well formed (ErrCorrupt).
func decodeAttributes(b []byte, id string) (meta.SnapshotAttributes, error) {
	var sa storedAttributes
	if err := json.Unmarshal(b, &sa); err != nil {
		return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s: %v", ErrCorrupt, id, err)
	}
	switch {
	case sa.Version != attributesFormat:
		return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s: format %d", ErrCorrupt, id, sa.Version)
	case sa.SnapshotID != id:
		return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s name snapshot %q", ErrCorrupt, id, sa.SnapshotID)
	case sa.CreateVolumePermission.Group != "" && sa.CreateVolumePermission.Group != groupAll:
		return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s: group %q", ErrCorrupt, id, sa.CreateVolumePermission.Group)
	}
	if err := ValidateTags(sa.Tags); err != nil {
		return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s: %v", ErrCorrupt, id, err)
	}
	for _, u := range sa.CreateVolumePermission.UserIDs {
		if !ValidAccountID(u) {
			return meta.SnapshotAttributes{}, fmt.Errorf("%w: attributes of %s: account %q", ErrCorrupt, id, u)
		}
	}
	return meta.SnapshotAttributes{Tags: tagsToMeta(sa.Tags), CreateVolumeUsers: sa.CreateVolumePermission.UserIDs,
		CreateVolumeAll: sa.CreateVolumePermission.Group == groupAll}, nil
}

// groupAll is the createVolumePermission group of every account.
const groupAll = "all"

// ValidAccountID reports whether id is a 12-digit account ID.
func ValidAccountID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// attributes returns the snapshot's attributes: as changed, or else its
// tags as created and no permissions.
func (s *snapshot) attributes() meta.SnapshotAttributes {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attrs != nil {
		a := *s.attrs
		a.Tags = slices.Clone(a.Tags)
		a.CreateVolumeUsers = slices.Clone(a.CreateVolumeUsers)
		return a
	}
	return meta.SnapshotAttributes{Tags: slices.Clone(s.rec.Tags)}
}

// own reports whether the snapshot is this daemon's (it has its record).
func (s *snapshot) own() bool { return s.store == "" }

// storeName is the name of the store that holds the snapshot.
func (s *snapshot) storeName() string {
	if s.own() {
		return s.record().Store
	}
	return s.store
}

// changeSnapshotAttributes changes snapshot s's attributes with fn: the
// daemon's record if the snapshot is its own, then the object in the
// store; if the store refuses, the record goes back to what it was.
func (e *Engine) changeSnapshotAttributes(ctx context.Context, s *snapshot, fn func(a *meta.SnapshotAttributes)) error {
	s.attrMu.Lock()
	defer s.attrMu.Unlock()
	s.mu.Lock()
	old := s.attrs
	s.mu.Unlock()
	a := s.attributes()
	fn(&a)
	id := s.record().ID
	st, err := e.store(s.storeName())
	if err != nil {
		return err
	}
	b, err := encodeAttributes(id, a)
	if err != nil {
		return err
	}
	if s.own() {
		if err := e.putAttributesRecord(id, &a); err != nil {
			return err
		}
	}
	if err := st.Put(ctx, attributesKey(id), b); err != nil {
		if s.own() {
			if rerr := e.putAttributesRecord(id, old); rerr != nil {
				e.log.Error("cannot restore a snapshot's attributes after the store refused the change", "snapshot", id, "err", rerr)
			}
		}
		return fmt.Errorf("store the attributes of snapshot %s: %w", id, err)
	}
	s.mu.Lock()
	s.attrs = &a
	s.mu.Unlock()
	e.log.Info("snapshot attributes changed", "snapshot", id, "tags", len(a.Tags),
		"create_volume_users", len(a.CreateVolumeUsers), "create_volume_all", a.CreateVolumeAll)
	return nil
}

// putAttributesRecord makes a the record of snapshot id's attributes (nil:
// none), durably.
func (e *Engine) putAttributesRecord(id string, a *meta.SnapshotAttributes) error {
	var err error
	if a == nil {
		err = e.meta.DeleteSnapshotAttributes(id)
	} else {
		err = e.meta.PutSnapshotAttributes(id, *a)
	}
	if err == nil {
		err = e.metaSync.sync()
	}
	return err
}

// loadSnapshotAttributes gives the snapshots recovered from their records
// their attributes, and drops the records of snapshots that are gone.
func (e *Engine) loadSnapshotAttributes() error {
	all, err := e.meta.AllSnapshotAttributes()
	if err != nil {
		return fmt.Errorf("recover snapshot attributes: %w", err)
	}
	for id, a := range all {
		s, ok := e.snapshots.byID[id]
		if !ok {
			if err := e.meta.DeleteSnapshotAttributes(id); err != nil {
				return fmt.Errorf("recover snapshot attributes: %w", err)
			}
			continue
		}
		s.attrs = &a
	}
	return nil
}

// dropSnapshotAttributes removes a deleted snapshot's attributes: its
// record and its object in the store.
func (e *Engine) dropSnapshotAttributes(ctx context.Context, r meta.SnapshotRecord) error {
	if err := e.meta.DeleteSnapshotAttributes(r.ID); err != nil {
		return err
	}
	st, err := e.store(r.Store)
	if err != nil {
		return nil // no store, no object
	}
	if err := st.Delete(ctx, attributesKey(r.ID)); err != nil && !errors.Is(err, snapstore.ErrNotFound) {
		return fmt.Errorf("delete the attributes of snapshot %s: %w", r.ID, err)
	}
	return nil
}

// readStoreAttributes reads snapshot id's attributes object from st; nil
// if there is none.
func readStoreAttributes(ctx context.Context, st snapstore.Store, id string) (*meta.SnapshotAttributes, error) {
	b, err := st.Get(ctx, attributesKey(id))
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the attributes of snapshot %s: %w", id, err)
	}
	a, err := decodeAttributes(b, id)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// refreshAttributes re-reads the attributes objects of store name that
// changed since they were read (mods: their store times, by snapshot),
// for the catalogue's snapshots and this daemon's own.
func (e *Engine) refreshAttributes(ctx context.Context, name string, st snapstore.Store, mods map[string]time.Time) {
	var stale []*snapshot
	e.snapshots.mu.Lock()
	for id, mod := range mods {
		s, ok := e.snapshots.byID[id]
		if !ok {
			s, ok = e.snapshots.catalog[id]
		}
		if !ok || s.storeName() != name {
			continue
		}
		s.mu.Lock()
		seen := s.attrsSeen
		s.mu.Unlock()
		if !mod.Equal(seen) {
			stale = append(stale, s)
		}
	}
	e.snapshots.mu.Unlock()
	for _, s := range stale {
		id := s.record().ID
		s.attrMu.Lock()
		a, err := readStoreAttributes(ctx, st, id)
		if err == nil && a != nil && s.own() && !attributesEqual(*a, s.attributes()) {
			err = e.putAttributesRecord(id, a) // changed by another daemon of this account
		}
		if err == nil && a != nil {
			s.mu.Lock()
			s.attrs, s.attrsSeen = a, mods[id]
			s.mu.Unlock()
		}
		s.attrMu.Unlock()
		if err != nil {
			e.log.Warn("cannot read a snapshot's attributes", "snapshot", id, "store", name, "err", err)
		}
	}
}

func attributesEqual(a, b meta.SnapshotAttributes) bool {
	return slices.Equal(a.Tags, b.Tags) && slices.Equal(a.CreateVolumeUsers, b.CreateVolumeUsers) && a.CreateVolumeAll == b.CreateVolumeAll
}
