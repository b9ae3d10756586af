package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// `cowvol list-snapshots-in-recycle-bin` and
// `cowvol restore-snapshot-from-recycle-bin`, as `aws ec2`.

// recycledSnapshotJSON is a snapshot in the recycle bin as aws prints it.
type recycledSnapshotJSON struct {
	SnapshotID          string `json:"SnapshotId"`
	RecycleBinEnterTime string `json:"RecycleBinEnterTime"`
	RecycleBinExitTime  string `json:"RecycleBinExitTime"`
	Description         string `json:"Description"`
	VolumeID            string `json:"VolumeId"`
}

func listSnapshotsInRecycleBinCommand() *cli.Command {
	return &cli.Command{
		Name:      "list-snapshots-in-recycle-bin",
		Usage:     "list the snapshots in the recycle bin (as aws ec2 list-snapshots-in-recycle-bin), every page",
		UsageText: "cowvol list-snapshots-in-recycle-bin [--snapshot-ids ID ...] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "snapshot-ids", Usage: "only these snapshots (each must be in the bin)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request only"},
		},
		Action: func(c *cli.Context) error {
			ids, err := idListFlag(c, "snapshot-ids")
			if err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			out := struct {
				Snapshots []recycledSnapshotJSON `json:"Snapshots"`
			}{Snapshots: []recycledSnapshotJSON{}}
			token := ""
			for {
				page, err := cl.ListSnapshotsInRecycleBin(c.Context, ids, 0, token, c.Bool("dry-run"))
				if err != nil {
					return opError("ListSnapshotsInRecycleBin", err)
				}
				for _, s := range page.Snapshots {
					out.Snapshots = append(out.Snapshots, recycledSnapshotJSON{SnapshotID: s.SnapshotID,
						RecycleBinEnterTime: s.RecycleBinEnterTime.String(), RecycleBinExitTime: s.RecycleBinExitTime.String(),
						Description: s.Description, VolumeID: s.VolumeID})
				}
				if token = page.NextToken; token == "" {
					return printResult(c, out)
				}
			}
		},
	}
}

// restoredSnapshotJSON is RestoreSnapshotFromRecycleBin's answer as aws prints it.
type restoredSnapshotJSON struct {
	SnapshotID  string `json:"SnapshotId"`
	OutpostArn  string `json:"OutpostArn,omitempty"`
	Description string `json:"Description"`
	Encrypted   bool   `json:"Encrypted"`
	OwnerID     string `json:"OwnerId"`
	Progress    string `json:"Progress"`
	StartTime   string `json:"StartTime"`
	State       string `json:"State"`
	VolumeID    string `json:"VolumeId"`
	VolumeSize  int64  `json:"VolumeSize"`
	SseType     string `json:"SseType,omitempty"`
}

func restoreSnapshotFromRecycleBinCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore-snapshot-from-recycle-bin",
		Usage:     "restore a snapshot from the recycle bin (as aws ec2 restore-snapshot-from-recycle-bin): it is a normal snapshot again, same ID",
		UsageText: "cowvol restore-snapshot-from-recycle-bin --snapshot-id ID [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot to restore"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without restoring anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("snapshot-id")
			if id == "" {
				return usageErrorf("restore-snapshot-from-recycle-bin: --snapshot-id is required")
			}
			cl := client(c)
			defer cl.Close()
			r, err := cl.RestoreSnapshotFromRecycleBin(c.Context, id, c.Bool("dry-run"))
			if err != nil {
				return opError("RestoreSnapshotFromRecycleBin", err)
			}
			return printResult(c, restoredOutput(r))
		},
	}
}

func restoredOutput(r control.RestoreSnapshotFromRecycleBinResponse) restoredSnapshotJSON {
	return restoredSnapshotJSON{SnapshotID: r.SnapshotID, OutpostArn: r.OutpostArn, Description: r.Description,
		Encrypted: r.Encrypted, OwnerID: r.OwnerID, Progress: r.Progress, StartTime: r.StartTime.String(),
		State: r.Status, VolumeID: r.VolumeID, VolumeSize: r.VolumeSize, SseType: r.SseType}
}
