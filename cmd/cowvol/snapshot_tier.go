package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The archive-tier verbs, as aws ec2 modify-snapshot-tier,
// restore-snapshot-tier and describe-snapshot-tier-status.

func modifySnapshotTierCommand() *cli.Command {
	return &cli.Command{
		Name:      "modify-snapshot-tier",
		Usage:     "archive a completed snapshot (as aws ec2 modify-snapshot-tier); prints SnapshotId and TieringStartTime",
		UsageText: "cowvol modify-snapshot-tier --snapshot-id ID [--storage-tier archive] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot to archive"},
			&cli.StringFlag{Name: "storage-tier", Value: "archive", Usage: "the tier: archive"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without archiving anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("snapshot-id")
			if id == "" {
				return usageErrorf("modify-snapshot-tier: --snapshot-id is required")
			}
			if t := c.String("storage-tier"); t != "archive" {
				return usageErrorf("modify-snapshot-tier: --storage-tier %q: the only tier is archive", t)
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.ModifySnapshotTier(c.Context, id, c.Bool("dry-run"))
			if err != nil {
				return opError("ModifySnapshotTier", err)
			}
			return printResult(c, struct {
				SnapshotID       string `json:"SnapshotId"`
				TieringStartTime string `json:"TieringStartTime"`
			}{out.SnapshotID, out.TieringStartTime.String()})
		},
	}
}

func restoreSnapshotTierCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore-snapshot-tier",
		Usage: "restore an archived snapshot, for some days or for good (as aws ec2 restore-snapshot-tier)",
		UsageText: "cowvol restore-snapshot-tier --snapshot-id ID (--temporary-restore-days N | --permanent-restore) [--dry-run]\n" +
			"   on a temporarily restored snapshot: changes the period, or makes the restore permanent",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the archived snapshot"},
			&cli.IntFlag{Name: "temporary-restore-days", Usage: "restore for `N` days (1 to 180); it returns to the archive tier after"},
			&cli.BoolFlag{Name: "permanent-restore", Usage: "restore for good (back to the standard tier)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without restoring anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.RestoreSnapshotTierInput{SnapshotID: c.String("snapshot-id"), TemporaryRestoreDays: c.Int("temporary-restore-days"),
				PermanentRestore: c.Bool("permanent-restore"), DryRun: c.Bool("dry-run")}
			switch {
			case in.SnapshotID == "":
				return usageErrorf("restore-snapshot-tier: --snapshot-id is required")
			case in.PermanentRestore == c.IsSet("temporary-restore-days"):
				return usageErrorf("restore-snapshot-tier: give --temporary-restore-days N or --permanent-restore (one of them)")
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.RestoreSnapshotTier(c.Context, in)
			if err != nil {
				return opError("RestoreSnapshotTier", err)
			}
			return printResult(c, struct {
				SnapshotID         string `json:"SnapshotId"`
				RestoreStartTime   string `json:"RestoreStartTime"`
				RestoreDuration    int    `json:"RestoreDuration,omitempty"`
				IsPermanentRestore bool   `json:"IsPermanentRestore"`
			}{out.SnapshotID, out.RestoreStartTime.String(), out.RestoreDuration, out.IsPermanentRestore})
		},
	}
}

func describeSnapshotTierStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe-snapshot-tier-status",
		Usage:     "list the storage tier status of snapshots (as aws ec2 describe-snapshot-tier-status)",
		UsageText: "cowvol describe-snapshot-tier-status [--filter NAME=V1,V2 ...] [--filters Name=NAME,Values=V1,V2 ...] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: snapshot-id, volume-id, last-tiering-operation, storage-tier; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 1000)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeSnapshotTierStatus,
	}
}

// tierStatusJSON is one item describe-snapshot-tier-status prints.
type tierStatusJSON struct {
	SnapshotID                       string    `json:"SnapshotId"`
	VolumeID                         string    `json:"VolumeId"`
	Status                           string    `json:"Status"`
	OwnerID                          string    `json:"OwnerId"`
	Tags                             []tagJSON `json:"Tags,omitempty"`
	StorageTier                      string    `json:"StorageTier"`
	LastTieringStartTime             string    `json:"LastTieringStartTime,omitempty"`
	LastTieringProgress              *int      `json:"LastTieringProgress,omitempty"`
	LastTieringOperationStatus       string    `json:"LastTieringOperationStatus,omitempty"`
	LastTieringOperationStatusDetail string    `json:"LastTieringOperationStatusDetail,omitempty"`
	ArchivalCompleteTime             string    `json:"ArchivalCompleteTime,omitempty"`
	RestoreExpiryTime                string    `json:"RestoreExpiryTime,omitempty"`
}

func describeSnapshotTierStatus(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.DescribeSnapshotTierStatusInput{MaxResults: c.Int("max-results"), NextToken: c.String("next-token"), DryRun: c.Bool("dry-run")}
	var err error
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.DescribeSnapshotTierStatus(c.Context, in)
	if err != nil {
		return opError("DescribeSnapshotTierStatus", err)
	}
	out := struct {
		SnapshotTierStatuses []tierStatusJSON `json:"SnapshotTierStatuses"`
		NextToken            string           `json:"NextToken,omitempty"`
	}{SnapshotTierStatuses: []tierStatusJSON{}, NextToken: res.NextToken}
	for _, s := range res.Items {
		j := tierStatusJSON{SnapshotID: s.SnapshotID, VolumeID: s.VolumeID, Status: s.Status, OwnerID: s.OwnerID,
			StorageTier: s.StorageTier, LastTieringProgress: s.LastTieringProgress, LastTieringOperationStatus: s.LastTieringOperationStatus,
			LastTieringOperationStatusDetail: s.LastTieringOperationStatusDetail, LastTieringStartTime: timeOrEmpty(s.LastTieringStartTime),
			ArchivalCompleteTime: timeOrEmpty(s.ArchivalCompleteTime), RestoreExpiryTime: timeOrEmpty(s.RestoreExpiryTime)}
		for _, t := range s.Tags {
			j.Tags = append(j.Tags, tagJSON{Key: t.Key, Value: t.Value})
		}
		out.SnapshotTierStatuses = append(out.SnapshotTierStatuses, j)
	}
	return printResult(c, out)
}

func timeOrEmpty(t *control.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.String()
}
