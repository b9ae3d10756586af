package control

import (
	"context"
	"net/url"
)

// DescribeVolumeAttribute describes one attribute of a volume
// (autoEnableIO or productCodes).
func (c *Client) DescribeVolumeAttribute(ctx context.Context, volumeID, attribute string, dryRun bool) (DescribeVolumeAttributeResponse, error) {
	f := url.Values{}
	f.Set("VolumeId", volumeID)
	f.Set("Attribute", attribute)
	setBool(f, "DryRun", dryRun)
	var out DescribeVolumeAttributeResponse
	err := c.call(ctx, "DescribeVolumeAttribute", f, &out)
	return out, err
}

// DescribeSnapshotAttribute describes one attribute of a snapshot
// (createVolumePermission or productCodes).
func (c *Client) DescribeSnapshotAttribute(ctx context.Context, snapshotID, attribute string, dryRun bool) (DescribeSnapshotAttributeResponse, error) {
	f := url.Values{}
	f.Set("SnapshotId", snapshotID)
	f.Set("Attribute", attribute)
	setBool(f, "DryRun", dryRun)
	var out DescribeSnapshotAttributeResponse
	err := c.call(ctx, "DescribeSnapshotAttribute", f, &out)
	return out, err
}

// ModifySnapshotAttributeInput are the parameters of
// ModifySnapshotAttribute.
type ModifySnapshotAttributeInput struct {
	SnapshotID string
	// Attribute is createVolumePermission (or empty: the same).
	Attribute string
	// Add and Remove are the grants to add and to remove.
	Add, Remove []CreateVolumePermission
	DryRun      bool
}

// ModifySnapshotAttribute changes who may create volumes from a snapshot.
func (c *Client) ModifySnapshotAttribute(ctx context.Context, in ModifySnapshotAttributeInput) error {
	f := url.Values{}
	f.Set("SnapshotId", in.SnapshotID)
	setString(f, "Attribute", in.Attribute)
	setPermissions(f, "CreateVolumePermission.Add", in.Add)
	setPermissions(f, "CreateVolumePermission.Remove", in.Remove)
	setBool(f, "DryRun", in.DryRun)
	var out ModifySnapshotAttributeResponse
	return c.call(ctx, "ModifySnapshotAttribute", f, &out)
}

func setPermissions(f url.Values, prefix string, grants []CreateVolumePermission) {
	for i, g := range grants {
		m := member(prefix, i+1)
		setString(f, m+".UserId", g.UserID)
		setString(f, m+".Group", g.Group)
	}
}
