package control

import (
	"context"
	"net/url"
)

// CreateSnapshotsInput are the parameters of CreateSnapshots: the volumes
// attached to instance InstanceID (less ExcludeDataVolumeIDs), or, as a
// cowvol extension, VolumeIDs.
type CreateSnapshotsInput struct {
	InstanceID           string
	ExcludeBootVolume    bool
	ExcludeDataVolumeIDs []string
	VolumeIDs            []string
	Description          string
	// CopyTagsFromSource gives each snapshot its volume's tags too.
	CopyTagsFromSource bool
	Tags               []Tag
	DryRun             bool
}

// CreateSnapshots snapshots many volumes at one fork point.
func (c *Client) CreateSnapshots(ctx context.Context, in CreateSnapshotsInput) ([]SnapshotInfo, error) {
	f := url.Values{}
	if in.InstanceID != "" {
		f.Set("InstanceSpecification.InstanceId", in.InstanceID)
		setBool(f, "InstanceSpecification.ExcludeBootVolume", in.ExcludeBootVolume)
		setList(f, "InstanceSpecification.ExcludeDataVolumeId", in.ExcludeDataVolumeIDs)
	}
	setList(f, "VolumeId", in.VolumeIDs)
	setString(f, "Description", in.Description)
	if in.CopyTagsFromSource {
		f.Set("CopyTagsFromSource", "volume")
	}
	setTagSpecification(f, "snapshot", in.Tags)
	setBool(f, "DryRun", in.DryRun)
	var out CreateSnapshotsResponse
	if err := c.call(ctx, "CreateSnapshots", f, &out); err != nil {
		return nil, err
	}
	return out.Snapshots.Items, nil
}
