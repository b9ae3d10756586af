package main

import "github.com/urfave/cli/v2"

func deleteSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-snapshot",
		Usage:     "delete a snapshot (as aws ec2 delete-snapshot); prints nothing",
		UsageText: "cowvol delete-snapshot --snapshot-id ID [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot to delete"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without deleting anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("snapshot-id")
			if id == "" {
				return usageErrorf("delete-snapshot: --snapshot-id is required")
			}
			cl := client(c)
			defer cl.Close()
			return opError("DeleteSnapshot", cl.DeleteSnapshot(c.Context, id, c.Bool("dry-run")))
		},
	}
}
