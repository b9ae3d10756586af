package control

import (
	"context"
	"net/url"
)

// CreateSnapshotInput are the parameters of CreateSnapshot.
type CreateSnapshotInput struct {
	VolumeID    string
	Description string
	Tags        []Tag
	// OutpostArn stores the snapshot on the daemon's Outpost (its local store).
	OutpostArn string
	DryRun     bool
}

// CreateSnapshot forks a volume into a new snapshot.
func (c *Client) CreateSnapshot(ctx context.Context, in CreateSnapshotInput) (Snapshot, error) {
	f := url.Values{}
	f.Set("VolumeId", in.VolumeID)
	setString(f, "Description", in.Description)
	setTagSpecification(f, "snapshot", in.Tags)
	setString(f, "OutpostArn", in.OutpostArn)
	setBool(f, "DryRun", in.DryRun)
	var out CreateSnapshotResponse
	if err := c.call(ctx, "CreateSnapshot", f, &out); err != nil {
		return Snapshot{}, err
	}
	return out.Snapshot, nil
}

// DescribeSnapshotsInput are the parameters of DescribeSnapshots.
type DescribeSnapshotsInput struct {
	SnapshotIDs []string
	OwnerIDs    []string
	// RestorableBy: self, all or account IDs (RestorableBy.N).
	RestorableBy []string
	Filters      []Filter
	// MaxResults (at least 5; pages hold at most 1000) pages the answer; 0 means all at once.
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeSnapshotsOutput is one page of DescribeSnapshots.
type DescribeSnapshotsOutput struct {
	Snapshots []Snapshot
	NextToken string
}

// DescribeSnapshots lists snapshots.
func (c *Client) DescribeSnapshots(ctx context.Context, in DescribeSnapshotsInput) (DescribeSnapshotsOutput, error) {
	f := url.Values{}
	setList(f, "SnapshotId", in.SnapshotIDs)
	setList(f, "Owner", in.OwnerIDs)
	setList(f, "RestorableBy", in.RestorableBy)
	setFilters(f, in.Filters)
	setInt(f, "MaxResults", int64(in.MaxResults))
	setString(f, "NextToken", in.NextToken)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeSnapshotsResponse
	if err := c.call(ctx, "DescribeSnapshots", f, &out); err != nil {
		return DescribeSnapshotsOutput{}, err
	}
	return DescribeSnapshotsOutput{Snapshots: out.SnapshotSet.Items, NextToken: out.NextToken}, nil
}

// DeleteSnapshot deletes a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, id string, dryRun bool) error {
	f := url.Values{}
	f.Set("SnapshotId", id)
	setBool(f, "DryRun", dryRun)
	var out DeleteSnapshotResponse
	return c.call(ctx, "DeleteSnapshot", f, &out)
}

// CopySnapshotInput are the parameters of CopySnapshot.
type CopySnapshotInput struct {
	SourceSnapshotID string
	// SourceRegion is the daemon's region (copies stay within it); empty
	// sends none.
	SourceRegion string
	Description  string
	Tags         []Tag
	// Encrypted makes the copy of a plaintext snapshot encrypted, under
	// the KMS key KmsKeyID names (empty: the source's, or the default).
	Encrypted bool
	KmsKeyID  string
	DryRun    bool
}

// CopySnapshotOutput is CopySnapshot's answer.
type CopySnapshotOutput struct {
	SnapshotID string
	Tags       []Tag
}

// CopySnapshot copies a completed snapshot; the copy is pending until its
// content is copied.
func (c *Client) CopySnapshot(ctx context.Context, in CopySnapshotInput) (CopySnapshotOutput, error) {
	f := url.Values{}
	f.Set("SourceSnapshotId", in.SourceSnapshotID)
	setString(f, "SourceRegion", in.SourceRegion)
	setString(f, "Description", in.Description)
	setTagSpecification(f, "snapshot", in.Tags)
	setBool(f, "Encrypted", in.Encrypted)
	setString(f, "KmsKeyId", in.KmsKeyID)
	setBool(f, "DryRun", in.DryRun)
	var out CopySnapshotResponse
	if err := c.call(ctx, "CopySnapshot", f, &out); err != nil {
		return CopySnapshotOutput{}, err
	}
	return CopySnapshotOutput{SnapshotID: out.SnapshotID, Tags: out.Tags}, nil
}
