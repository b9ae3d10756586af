package control

import (
	"context"
	"net/url"
	"strconv"
)

// FastSnapshotRestoresInput are the parameters of EnableFastSnapshotRestores
// and DisableFastSnapshotRestores.
type FastSnapshotRestoresInput struct {
	AvailabilityZones []string
	SnapshotIDs       []string
	DryRun            bool
}

func (in FastSnapshotRestoresInput) form() url.Values {
	f := url.Values{}
	setList(f, "AvailabilityZone", in.AvailabilityZones)
	setList(f, "SourceSnapshotId", in.SnapshotIDs)
	setBool(f, "DryRun", in.DryRun)
	return f
}

// EnableFastSnapshotRestores enables fast restores of snapshots.
func (c *Client) EnableFastSnapshotRestores(ctx context.Context, in FastSnapshotRestoresInput) (FastSnapshotRestoresResult, error) {
	var out EnableFastSnapshotRestoresResponse
	err := c.call(ctx, "EnableFastSnapshotRestores", in.form(), &out)
	return out.FastSnapshotRestoresResult, err
}

// DisableFastSnapshotRestores disables fast restores of snapshots.
func (c *Client) DisableFastSnapshotRestores(ctx context.Context, in FastSnapshotRestoresInput) (FastSnapshotRestoresResult, error) {
	var out DisableFastSnapshotRestoresResponse
	err := c.call(ctx, "DisableFastSnapshotRestores", in.form(), &out)
	return out.FastSnapshotRestoresResult, err
}

// DescribeFastSnapshotRestoresInput are the parameters of
// DescribeFastSnapshotRestores.
type DescribeFastSnapshotRestoresInput struct {
	Filters    []Filter
	MaxResults int64 // 0: not sent
	NextToken  string
	DryRun     bool
}

// DescribeFastSnapshotRestores describes snapshots' fast restore states:
// one page, and the token of the next.
func (c *Client) DescribeFastSnapshotRestores(ctx context.Context, in DescribeFastSnapshotRestoresInput) (DescribeFastSnapshotRestoresResponse, error) {
	f := url.Values{}
	setFilters(f, in.Filters)
	if in.MaxResults > 0 {
		f.Set("MaxResults", strconv.FormatInt(in.MaxResults, 10))
	}
	setString(f, "NextToken", in.NextToken)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeFastSnapshotRestoresResponse
	err := c.call(ctx, "DescribeFastSnapshotRestores", f, &out)
	return out, err
}
