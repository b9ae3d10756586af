package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"slices"

	"github.com/cowvol/cowvol/meta"
)

// createVolumePermission: which accounts besides a snapshot's owner may
// create volumes from it (and copy it), as EC2's ModifySnapshotAttribute
// grants it: account IDs, or the group "all" (every account that reads
// the store). The owner always may. The grants are attributes of the
// snapshot (snapshot_attributes.go), stored beside its manifest, so that
// the daemons of other accounts sharing the store honour them.

// ErrNoCreateVolumePermission: the snapshot belongs to another account,
// which has not given this one createVolumePermission.
var ErrNoCreateVolumePermission = errors.New("no permission to create volumes from the snapshot")

// PermissionChange is a ModifySnapshotAttribute call on
// createVolumePermission: accounts (and the group all) to add and to
// remove. DryRun checks the call and changes nothing.
type PermissionChange struct {
	SnapshotID            string
	AddUsers, RemoveUsers []string
	AddAll, RemoveAll     bool
	DryRun                bool
}

// ModifySnapshotPermission changes who may create volumes from a snapshot
// of this account. Removing a grant the snapshot does not have is not an
// error; adding the owner's own account changes nothing.
func (e *Engine) ModifySnapshotPermission(ctx context.Context, c PermissionChange) error {
	for _, u := range slices.Concat(c.AddUsers, c.RemoveUsers) {
		if !ValidAccountID(u) {
			return fmt.Errorf("%w: %q is not a 12-digit account ID", ErrInvalidParameter, u)
		}
	}
	s, err := e.ownSnapshot(ctx, c.SnapshotID)
	if err != nil {
		return err
	}
	if c.AddAll && s.record().Encryption != nil {
		return fmt.Errorf("%w: encrypted snapshots cannot be made public (group all)", ErrInvalidParameter)
	}
	if c.DryRun {
		return nil
	}
	return e.changeSnapshotAttributes(ctx, s, func(a *meta.SnapshotAttributes) {
		for _, u := range c.AddUsers {
			if u != e.accountID && !slices.Contains(a.CreateVolumeUsers, u) {
				a.CreateVolumeUsers = append(a.CreateVolumeUsers, u)
			}
		}
		a.CreateVolumeUsers = slices.DeleteFunc(a.CreateVolumeUsers, func(u string) bool { return slices.Contains(c.RemoveUsers, u) })
		if len(a.CreateVolumeUsers) == 0 {
			a.CreateVolumeUsers = nil
		}
		a.CreateVolumeAll = (a.CreateVolumeAll || c.AddAll) && !c.RemoveAll
	})
}

// MayCreateVolume reports whether account may create volumes from a
// snapshot owned by owner ("" or ownerAccount: this daemon's) with
// permissions si.
func (si SnapshotInfo) MayCreateVolume(account, ownerAccount string) bool {
	owner := cmp.Or(si.OwnerID, ownerAccount)
	return owner == account || si.CreateVolumeAll || slices.Contains(si.CreateVolumeUsers, account)
}

// checkCreateVolumePermission refuses this daemon's account the use of
// another account's snapshot s that it was not given. A refusal by what
// the catalogue knows is checked again against the store (one GET), so
// that a grant counts as soon as the owner's call returns.
func (e *Engine) checkCreateVolumePermission(ctx context.Context, s *snapshot) error {
	if s.info().MayCreateVolume(e.accountID, e.accountID) {
		return nil
	}
	id := s.record().ID
	if !s.own() {
		st, err := e.store(s.store)
		if err != nil {
			return err
		}
		s.attrMu.Lock()
		a, err := readStoreAttributes(ctx, st, id)
		if err == nil && a != nil {
			s.mu.Lock()
			s.attrs = a
			s.mu.Unlock()
		}
		s.attrMu.Unlock()
		if err != nil {
			return err
		}
		if s.info().MayCreateVolume(e.accountID, e.accountID) {
			return nil
		}
		if a == nil {
			// DeleteSnapshot removes the manifest, then the attributes.
			if ok, err := st.Exists(ctx, snapfmt.ManifestKey(id)); err == nil && !ok {
				return fmt.Errorf("%w: %s was deleted", ErrSnapshotNotFound, id)
			}
		}
	}
	return fmt.Errorf("snapshot %s of account %s: %w (account %s)", id, s.owner, ErrNoCreateVolumePermission, e.accountID)
}

// CheckCreateVolumePermission answers whether this daemon's account may
// create volumes from (or copy) snapshot id: nil, or an error wrapping
// ErrNoCreateVolumePermission or ErrSnapshotNotFound.
func (e *Engine) CheckCreateVolumePermission(ctx context.Context, id string) error {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return err
	}
	return e.checkCreateVolumePermission(ctx, s)
}
