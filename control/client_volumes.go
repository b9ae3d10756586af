package control

import (
	"context"
	"net/url"
)

// CreateVolumeInput are the parameters of CreateVolume.
type CreateVolumeInput struct {
	// Size in GiB, as EC2; exactly one of Size and SizeBytes is set.
	Size int64
	// SizeBytes is the exact size in bytes (a cowvol extension).
	SizeBytes int64
	// BlockSize is the copy-on-write grain in bytes; 0 means the
	// daemon's default (a cowvol extension).
	BlockSize        int
	Tags             []Tag
	ClientToken      string
	AvailabilityZone string
	// SnapshotID creates the volume from a snapshot.
	SnapshotID string
	Encrypted  bool
	// KmsKeyID names the KMS key of an encrypted volume (an ARN, key ID
	// or alias/NAME; empty: the default key).
	KmsKeyID string
	DryRun   bool
}

// CreateVolume creates a volume.
func (c *Client) CreateVolume(ctx context.Context, in CreateVolumeInput) (Volume, error) {
	f := url.Values{}
	setInt(f, "Size", in.Size)
	setInt(f, "SizeBytes", in.SizeBytes)
	setInt(f, "BlockSize", int64(in.BlockSize))
	setTagSpecification(f, "volume", in.Tags)
	setString(f, "ClientToken", in.ClientToken)
	setString(f, "AvailabilityZone", in.AvailabilityZone)
	setString(f, "SnapshotId", in.SnapshotID)
	setBool(f, "Encrypted", in.Encrypted)
	setString(f, "KmsKeyId", in.KmsKeyID)
	setBool(f, "DryRun", in.DryRun)
	var out CreateVolumeResponse
	if err := c.call(ctx, "CreateVolume", f, &out); err != nil {
		return Volume{}, err
	}
	return out.Volume, nil
}

// DescribeVolumesInput are the parameters of DescribeVolumes.
type DescribeVolumesInput struct {
	VolumeIDs []string
	Filters   []Filter
	// MaxResults (at least 5; pages hold at most 500) pages the answer; 0 means all volumes at once.
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeVolumesOutput is one page of DescribeVolumes.
type DescribeVolumesOutput struct {
	Volumes []Volume
	// NextToken is set when more volumes follow: pass it back in the
	// next DescribeVolumesInput.
	NextToken string
}

// DescribeVolumes lists volumes.
func (c *Client) DescribeVolumes(ctx context.Context, in DescribeVolumesInput) (DescribeVolumesOutput, error) {
	f := volumePageForm(in.VolumeIDs, in.Filters, in.MaxResults, in.NextToken, in.DryRun)
	var out DescribeVolumesResponse
	if err := c.call(ctx, "DescribeVolumes", f, &out); err != nil {
		return DescribeVolumesOutput{}, err
	}
	return DescribeVolumesOutput{Volumes: out.VolumeSet.Items, NextToken: out.NextToken}, nil
}

// DeleteVolume deletes a volume that is not in use.
func (c *Client) DeleteVolume(ctx context.Context, id string, dryRun bool) error {
	f := url.Values{}
	f.Set("VolumeId", id)
	setBool(f, "DryRun", dryRun)
	var out DeleteVolumeResponse
	return c.call(ctx, "DeleteVolume", f, &out)
}

// DescribeVolumeStatusInput are the parameters of DescribeVolumeStatus.
type DescribeVolumeStatusInput struct {
	VolumeIDs []string
	// Filters: volume-status.status, volume-status.details-name,
	// volume-status.details-status, availability-zone, event.* and
	// action.*, as EC2's.
	Filters []Filter
	// MaxResults (at least 5; pages hold at most 1000) pages the answer; 0 means all volumes at once.
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeVolumeStatusOutput is one page of DescribeVolumeStatus.
type DescribeVolumeStatusOutput struct {
	VolumeStatuses []VolumeStatusItem
	// NextToken is set when more volumes follow.
	NextToken string
}

// DescribeVolumeStatus reports the volumes' health: ok, or impaired while
// blocks of the snapshot a volume was restored from cannot be read.
func (c *Client) DescribeVolumeStatus(ctx context.Context, in DescribeVolumeStatusInput) (DescribeVolumeStatusOutput, error) {
	f := volumePageForm(in.VolumeIDs, in.Filters, in.MaxResults, in.NextToken, in.DryRun)
	var out DescribeVolumeStatusResponse
	if err := c.call(ctx, "DescribeVolumeStatus", f, &out); err != nil {
		return DescribeVolumeStatusOutput{}, err
	}
	return DescribeVolumeStatusOutput{VolumeStatuses: out.VolumeStatusSet.Items, NextToken: out.NextToken}, nil
}

// volumePageForm is the form of a paged Describe* call over volumes: the
// volume IDs, filters, page size and token, and DryRun.
func volumePageForm(ids []string, filters []Filter, maxResults int, nextToken string, dryRun bool) url.Values {
	f := url.Values{}
	setList(f, "VolumeId", ids)
	setFilters(f, filters)
	setInt(f, "MaxResults", int64(maxResults))
	setString(f, "NextToken", nextToken)
	setBool(f, "DryRun", dryRun)
	return f
}
