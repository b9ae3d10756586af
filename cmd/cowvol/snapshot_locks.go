package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The snapshot lock verbs, as aws ec2 lock-snapshot, unlock-snapshot and
// describe-locked-snapshots.

func lockSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name: "lock-snapshot",
		Usage: "lock a snapshot against deletion, or change its lock (as aws ec2 lock-snapshot): governance mode " +
			"(unlockable), or compliance mode (unlockable only during --cool-off-period hours; then only extendable)",
		UsageText: "cowvol lock-snapshot --snapshot-id ID --lock-mode governance|compliance\n" +
			"   (--lock-duration DAYS | --expiration-date TIME) [--cool-off-period HOURS] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot to lock"},
			&cli.StringFlag{Name: "lock-mode", Usage: "governance or compliance"},
			&cli.IntFlag{Name: "lock-duration", Usage: "days, 1 to 36500"},
			&cli.StringFlag{Name: "expiration-date", Usage: "when the lock expires, UTC (e.g. 2030-01-01T00:00:00Z)"},
			&cli.IntFlag{Name: "cool-off-period", Usage: "compliance mode: hours, 1 to 72, during which the lock may still be removed or changed"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without locking anything"},
		},
		Action: lockSnapshot,
	}
}

// lockedSnapshotJSON is a lock as the aws CLI prints it.
type lockedSnapshotJSON struct {
	OwnerID                string `json:"OwnerId,omitempty"`
	SnapshotID             string `json:"SnapshotId"`
	LockState              string `json:"LockState"`
	LockDuration           int    `json:"LockDuration,omitempty"`
	CoolOffPeriod          int    `json:"CoolOffPeriod,omitempty"`
	CoolOffPeriodExpiresOn string `json:"CoolOffPeriodExpiresOn,omitempty"`
	LockCreatedOn          string `json:"LockCreatedOn"`
	LockDurationStartTime  string `json:"LockDurationStartTime,omitempty"` // absent until a pending snapshot completes
	LockExpiresOn          string `json:"LockExpiresOn,omitempty"`
}

func lockedSnapshotOutput(l control.LockedSnapshot) lockedSnapshotJSON {
	out := lockedSnapshotJSON{OwnerID: l.OwnerID, SnapshotID: l.SnapshotID, LockState: l.LockState,
		LockDuration: l.LockDuration, CoolOffPeriod: l.CoolOffPeriod, LockCreatedOn: l.LockCreatedOn.String()}
	for _, t := range []struct {
		src *control.Timestamp
		dst *string
	}{
		{l.CoolOffPeriodExpiresOn, &out.CoolOffPeriodExpiresOn},
		{l.LockDurationStartTime, &out.LockDurationStartTime},
		{l.LockExpiresOn, &out.LockExpiresOn},
	} {
		if t.src != nil {
			*t.dst = t.src.String()
		}
	}
	return out
}

func lockSnapshot(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.LockSnapshotInput{SnapshotID: c.String("snapshot-id"), LockMode: c.String("lock-mode"), DryRun: c.Bool("dry-run")}
	switch {
	case in.SnapshotID == "":
		return usageErrorf("lock-snapshot: --snapshot-id is required")
	case in.LockMode == "":
		return usageErrorf("lock-snapshot: --lock-mode (governance or compliance) is required")
	}
	// Values are the daemon's to check, as EC2's are: the flags given are sent.
	for flag, dst := range map[string]**int{"lock-duration": &in.LockDuration, "cool-off-period": &in.CoolOffPeriod} {
		if c.IsSet(flag) {
			v := c.Int(flag)
			*dst = &v
		}
	}
	if v := c.String("expiration-date"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return usageErrorf("lock-snapshot: --expiration-date %q: want a time such as 2030-01-01T00:00:00Z", v)
		}
		in.ExpirationDate = &t
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.LockSnapshot(c.Context, in)
	if err != nil {
		return opError("LockSnapshot", err)
	}
	return printResult(c, lockedSnapshotOutput(res))
}

func unlockSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "unlock-snapshot",
		Usage:     "remove a snapshot's lock (as aws ec2 unlock-snapshot): governance mode, or compliance mode during its cooling-off period",
		UsageText: "cowvol unlock-snapshot --snapshot-id ID [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot to unlock"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without unlocking anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("snapshot-id")
			if id == "" {
				return usageErrorf("unlock-snapshot: --snapshot-id is required")
			}
			cl := client(c)
			defer cl.Close()
			if err := cl.UnlockSnapshot(c.Context, id, c.Bool("dry-run")); err != nil {
				return opError("UnlockSnapshot", err)
			}
			return printResult(c, struct {
				SnapshotID string `json:"SnapshotId"`
			}{id})
		},
	}
}

func describeLockedSnapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-locked-snapshots",
		Usage: "list snapshot locks (as aws ec2 describe-locked-snapshots)",
		UsageText: "cowvol describe-locked-snapshots [--snapshot-ids ID ...] [--filter lock-state=STATE ...]\n" +
			"   [--filters Name=lock-state,Values=STATE] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "snapshot-ids", Usage: "snapshot IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: lock-state (compliance-cooloff, governance, compliance, expired)"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 1000)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeLockedSnapshots,
	}
}

// describeLockedSnapshotsOutput is the JSON describe-locked-snapshots prints.
type describeLockedSnapshotsOutput struct {
	Snapshots []lockedSnapshotJSON `json:"Snapshots"`
	NextToken string               `json:"NextToken,omitempty"`
}

func describeLockedSnapshots(c *cli.Context) error {
	in := control.DescribeLockedSnapshotsInput{MaxResults: c.Int("max-results"), NextToken: c.String("next-token"), DryRun: c.Bool("dry-run")}
	var err error
	if in.SnapshotIDs, err = idListFlag(c, "snapshot-ids"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.DescribeLockedSnapshots(c.Context, in)
	if err != nil {
		return opError("DescribeLockedSnapshots", err)
	}
	out := describeLockedSnapshotsOutput{Snapshots: []lockedSnapshotJSON{}, NextToken: res.NextToken}
	for _, l := range res.Snapshots {
		out.Snapshots = append(out.Snapshots, lockedSnapshotOutput(l))
	}
	return printResult(c, out)
}
