package control

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// LockSnapshotInput are the parameters of LockSnapshot; nil pointers are
// not sent.
type LockSnapshotInput struct {
	SnapshotID     string
	LockMode       string // governance or compliance
	LockDuration   *int   // days
	CoolOffPeriod  *int   // hours
	ExpirationDate *time.Time
	DryRun         bool
}

// LockSnapshot locks a snapshot or changes its lock.
func (c *Client) LockSnapshot(ctx context.Context, in LockSnapshotInput) (LockedSnapshot, error) {
	f := url.Values{}
	f.Set("SnapshotId", in.SnapshotID)
	setString(f, "LockMode", in.LockMode)
	for name, v := range map[string]*int{"LockDuration": in.LockDuration, "CoolOffPeriod": in.CoolOffPeriod} {
		if v != nil {
			f.Set(name, strconv.Itoa(*v))
		}
	}
	if in.ExpirationDate != nil {
		f.Set("ExpirationDate", in.ExpirationDate.UTC().Format(TimeFormat))
	}
	setBool(f, "DryRun", in.DryRun)
	var out LockSnapshotResponse
	if err := c.call(ctx, "LockSnapshot", f, &out); err != nil {
		return LockedSnapshot{}, err
	}
	return out.LockedSnapshot, nil
}

// UnlockSnapshot removes a snapshot's lock.
func (c *Client) UnlockSnapshot(ctx context.Context, id string, dryRun bool) error {
	f := url.Values{}
	f.Set("SnapshotId", id)
	setBool(f, "DryRun", dryRun)
	var out UnlockSnapshotResponse
	return c.call(ctx, "UnlockSnapshot", f, &out)
}

// DescribeLockedSnapshotsInput are the parameters of DescribeLockedSnapshots.
type DescribeLockedSnapshotsInput struct {
	SnapshotIDs []string
	Filters     []Filter // lock-state
	// MaxResults (at least 5) pages the answer; 0 means all at once.
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeLockedSnapshotsOutput is one page of DescribeLockedSnapshots.
type DescribeLockedSnapshotsOutput struct {
	Snapshots []LockedSnapshot
	NextToken string
}

// DescribeLockedSnapshots lists the locks of snapshots.
func (c *Client) DescribeLockedSnapshots(ctx context.Context, in DescribeLockedSnapshotsInput) (DescribeLockedSnapshotsOutput, error) {
	f := url.Values{}
	setList(f, "SnapshotId", in.SnapshotIDs)
	setFilters(f, in.Filters)
	setInt(f, "MaxResults", int64(in.MaxResults))
	setString(f, "NextToken", in.NextToken)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeLockedSnapshotsResponse
	if err := c.call(ctx, "DescribeLockedSnapshots", f, &out); err != nil {
		return DescribeLockedSnapshotsOutput{}, err
	}
	return DescribeLockedSnapshotsOutput{Snapshots: out.SnapshotSet.Items, NextToken: out.NextToken}, nil
}
