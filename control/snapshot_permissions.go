package control

import (
	"context"

	"github.com/cowvol/cowvol/cow"
)

// Snapshot createVolumePermission on the wire: DescribeSnapshotAttribute
// lists the grants, ModifySnapshotAttribute changes them (attributes.go),
// DescribeSnapshots' RestorableBy.N selects by them, and CreateVolume and
// CopySnapshot of another account's snapshot need one.

// permissionBackend is what ModifySnapshotAttribute needs of the engine.
type permissionBackend interface {
	ModifySnapshotPermission(ctx context.Context, c cow.PermissionChange) error
}

// cowGroupAll is the group of every account.
const cowGroupAll = "all"

func appendUser(users []string, g CreateVolumePermission) []string {
	if g.UserID == "" {
		return users
	}
	return append(users, g.UserID)
}

// permissionsOf is a snapshot's <createVolumePermission>.
func permissionsOf(si cow.SnapshotInfo) *CreateVolumePermissions {
	out := &CreateVolumePermissions{}
	if si.CreateVolumeAll {
		out.Items = append(out.Items, CreateVolumePermission{Group: cowGroupAll})
	}
	for _, u := range si.CreateVolumeUsers {
		out.Items = append(out.Items, CreateVolumePermission{UserID: u})
	}
	return out
}

// restorableBy reports whether a snapshot matches DescribeSnapshots'
// RestorableBy.N: "self" (this account), "all" (shared with every
// account) or an account ID, any of them. An empty list matches all.
func (s *Server) restorableBy(list []string, si cow.SnapshotInfo) bool {
	if len(list) == 0 {
		return true
	}
	for _, who := range list {
		switch who {
		case "self":
			who = s.account
		case cowGroupAll:
			if si.CreateVolumeAll {
				return true
			}
			continue
		}
		if si.MayCreateVolume(who, s.account) {
			return true
		}
	}
	return false
}

// checkRestorableBy refuses RestorableBy values that are neither self,
// all nor an account ID.
func checkRestorableBy(list []string) *APIError {
	for _, who := range list {
		if who != "self" && who != cowGroupAll && !cow.ValidAccountID(who) {
			return invalidValue("Value (%s) for parameter RestorableBy is invalid. Expected self, all or a 12-digit account ID.", clip(who))
		}
	}
	return nil
}

// mayUseSnapshot answers, for CreateVolume's dry run and CopySnapshot,
// whether this account may use snapshot id.
func (s *Server) mayUseSnapshot(ctx context.Context, id string) error {
	type checker interface {
		CheckCreateVolumePermission(ctx context.Context, id string) error
	}
	c, ok := s.backend.(checker)
	if !ok {
		return nil
	}
	if err := c.CheckCreateVolumePermission(ctx, id); err != nil {
		return backendErr("check snapshot permission", err, id)
	}
	return nil
}
