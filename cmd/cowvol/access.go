package main

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/cowvol/cowvol/control"
)

// policyFromFlags builds the control socket's policy from --allow-uid,
// --allow-gid and --read-only-gid, each a number or a name resolved now.
func policyFromFlags(uids, gids, readOnlyGIDs []string) (control.Policy, error) {
	var p control.Policy
	var err error
	if p.AllowUIDs, err = resolveIDs("--allow-uid", splitCommas(uids), lookupUID); err != nil {
		return p, err
	}
	if p.AllowGIDs, err = resolveIDs("--allow-gid", splitCommas(gids), lookupGID); err != nil {
		return p, err
	}
	if p.ReadOnlyGIDs, err = resolveIDs("--read-only-gid", splitCommas(readOnlyGIDs), lookupGID); err != nil {
		return p, err
	}
	return p, nil
}

// volumeGroupFromFlag resolves --volume-group (a number or a name; "":
// none) to a group ID.
func volumeGroupFromFlag(group string) (*uint32, error) {
	if group == "" {
		return nil, nil
	}
	ids, err := resolveIDs("--volume-group", []string{group}, lookupGID)
	if err != nil {
		return nil, err
	}
	return &ids[0], nil
}

func resolveIDs(flag string, names []string, lookup func(string) (string, error)) ([]uint32, error) {
	var ids []uint32
	for _, name := range names {
		s := name
		if _, err := strconv.ParseUint(name, 10, 32); err != nil {
			if s, err = lookup(name); err != nil {
				return nil, fmt.Errorf("%s %s: %w", flag, name, err)
			}
		}
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s %s: not a number or a known name", flag, name)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

func lookupUID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}
