package control

import (
	"context"
	"net/url"
)

// ModifyVolumeInput are the parameters of ModifyVolume.
type ModifyVolumeInput struct {
	VolumeID string
	// Size is the new size in GiB (0: unchanged).
	Size int64
	// VolumeType, if set, must be "standard" (unchanged).
	VolumeType string
	DryRun     bool
}

// ModifyVolume grows a volume; the answer is the modification as it
// started (modifying).
func (c *Client) ModifyVolume(ctx context.Context, in ModifyVolumeInput) (VolumeModification, error) {
	f := url.Values{}
	setString(f, "VolumeId", in.VolumeID)
	setInt(f, "Size", in.Size)
	setString(f, "VolumeType", in.VolumeType)
	setBool(f, "DryRun", in.DryRun)
	var out ModifyVolumeResponse
	if err := c.call(ctx, "ModifyVolume", f, &out); err != nil {
		return VolumeModification{}, err
	}
	return out.VolumeModification, nil
}

// DescribeVolumesModificationsInput are the parameters of
// DescribeVolumesModifications.
type DescribeVolumesModificationsInput struct {
	VolumeIDs  []string
	Filters    []Filter
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeVolumesModificationsOutput is one page of
// DescribeVolumesModifications.
type DescribeVolumesModificationsOutput struct {
	VolumesModifications []VolumeModification
	NextToken            string
}

// DescribeVolumesModifications lists each volume's last modification.
func (c *Client) DescribeVolumesModifications(ctx context.Context, in DescribeVolumesModificationsInput) (DescribeVolumesModificationsOutput, error) {
	f := volumePageForm(in.VolumeIDs, in.Filters, in.MaxResults, in.NextToken, in.DryRun)
	var out DescribeVolumesModificationsResponse
	if err := c.call(ctx, "DescribeVolumesModifications", f, &out); err != nil {
		return DescribeVolumesModificationsOutput{}, err
	}
	return DescribeVolumesModificationsOutput{VolumesModifications: out.VolumeModificationSet.Items, NextToken: out.NextToken}, nil
}
