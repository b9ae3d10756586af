package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func createSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "create-snapshot",
		Usage: "snapshot a volume (as aws ec2 create-snapshot): instant; the data moves to snapshot storage in the background",
		UsageText: "cowvol create-snapshot --volume-id ID [--description D] [--tag k=v ...] [--outpost-arn ARN]\n" +
			"   [--freeze MOUNTPOINT] [--wait] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to snapshot"},
			&cli.StringFlag{Name: "description", Usage: "up to 255 characters"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "outpost-arn", Usage: "store the snapshot on this host's Outpost (its local snapshot store)"},
			&cli.StringFlag{Name: "freeze", Usage: "freeze the file system mounted at `MOUNTPOINT` (FIFREEZE) around the snapshot, then always thaw it (FITHAW); needs root"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the snapshot is completed, then print it"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without creating anything"},
		},
		Action: createSnapshot,
	}
}

// snapshotFreezer is what --freeze uses; tests replace it.
var snapshotFreezer = kernelFreezer

func createSnapshot(c *cli.Context) error {
	return createSnapshotWith(c, snapshotFreezer)
}

func createSnapshotWith(c *cli.Context, fz fsFreezer) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.CreateSnapshotInput{
		VolumeID:    c.String("volume-id"),
		Description: c.String("description"),
		OutpostArn:  c.String("outpost-arn"),
		DryRun:      c.Bool("dry-run"),
	}
	if in.VolumeID == "" {
		return usageErrorf("create-snapshot: --volume-id is required")
	}
	var err error
	if in.Tags, err = tagFlag(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	var snap control.Snapshot
	call := func() error {
		var err error
		snap, err = cl.CreateSnapshot(c.Context, in)
		return opError("CreateSnapshot", err)
	}
	// A dry run changes nothing, the file system's state included.
	if dir := c.String("freeze"); dir != "" && !in.DryRun {
		err = fz.whileFrozen(dir, call)
	} else {
		err = call()
	}
	if err != nil {
		if snap.SnapshotID != "" {
			// The snapshot was made but the thaw failed: show both.
			if perr := printJSON(c.App.Writer, snapshotOutput(snap)); perr != nil {
				return errors.Join(err, perr)
			}
		}
		return err
	}
	if c.Bool("wait") {
		final, err := waitSnapshots(c, cl, []string{snap.SnapshotID})
		if err != nil {
			return err
		}
		if len(final) != 1 {
			return fmt.Errorf("snapshot %s vanished while waiting", snap.SnapshotID)
		}
		snap = final[0]
	}
	return printJSON(c.App.Writer, snapshotOutput(snap))
}
