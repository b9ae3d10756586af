package control

import (
	"context"
	"net/url"
	"strconv"
)

// ModifySnapshotTier starts archiving a snapshot (StorageTier archive).
func (c *Client) ModifySnapshotTier(ctx context.Context, id string, dryRun bool) (ModifySnapshotTierResponse, error) {
	f := url.Values{}
	f.Set("SnapshotId", id)
	f.Set("StorageTier", "archive")
	setBool(f, "DryRun", dryRun)
	var out ModifySnapshotTierResponse
	err := c.call(ctx, "ModifySnapshotTier", f, &out)
	return out, err
}

// RestoreSnapshotTierInput are the parameters of RestoreSnapshotTier: a
// temporary restore for TemporaryRestoreDays, or a permanent one.
// TemporaryRestoreDays is sent unless PermanentRestore is set and it is 0.
type RestoreSnapshotTierInput struct {
	SnapshotID           string
	TemporaryRestoreDays int
	PermanentRestore     bool
	DryRun               bool
}

// RestoreSnapshotTier restores an archived snapshot, or changes the
// period or kind of a temporary restore.
func (c *Client) RestoreSnapshotTier(ctx context.Context, in RestoreSnapshotTierInput) (RestoreSnapshotTierResponse, error) {
	f := url.Values{}
	f.Set("SnapshotId", in.SnapshotID)
	if in.TemporaryRestoreDays != 0 || !in.PermanentRestore {
		f.Set("TemporaryRestoreDays", strconv.Itoa(in.TemporaryRestoreDays))
	}
	setBool(f, "PermanentRestore", in.PermanentRestore)
	setBool(f, "DryRun", in.DryRun)
	var out RestoreSnapshotTierResponse
	err := c.call(ctx, "RestoreSnapshotTier", f, &out)
	return out, err
}

// DescribeSnapshotTierStatusInput are the parameters of
// DescribeSnapshotTierStatus.
type DescribeSnapshotTierStatusInput struct {
	Filters    []Filter
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeSnapshotTierStatus lists the storage tier status of snapshots.
func (c *Client) DescribeSnapshotTierStatus(ctx context.Context, in DescribeSnapshotTierStatusInput) (DescribeSnapshotTierStatusResponse, error) {
	f := url.Values{}
	setFilters(f, in.Filters)
	setInt(f, "MaxResults", int64(in.MaxResults))
	setString(f, "NextToken", in.NextToken)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeSnapshotTierStatusResponse
	err := c.call(ctx, "DescribeSnapshotTierStatus", f, &out)
	return out, err
}
