package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func createVolumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "create-volume",
		Usage: "create a volume (as aws ec2 create-volume)",
		UsageText: "cowvol create-volume --size 4GiB [--block-size 64KiB] [--encrypted [--kms-key-id KEY]] [--tag k=v ...] [--client-token T] [--dry-run]\n" +
			"   cowvol create-volume --snapshot-id ID [--size SIZE] [--tag k=v ...]   (size defaults to the snapshot's; encrypted if it is)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "size", Usage: "size with a binary unit (512MiB, 4GiB, 1TiB); a plain integer is GiB, as aws"},
			&cli.StringFlag{Name: "block-size", Usage: "copy-on-write grain, a power of two from 4KiB to 1MiB (plain integer: bytes); default 64KiB"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "client-token", Usage: "idempotency token: retrying with it returns the same volume"},
			&cli.StringFlag{Name: "availability-zone", Usage: "must be the daemon's zone if given"},
			&cli.StringFlag{Name: "snapshot-id", Usage: "create the volume from this completed snapshot; --size is then optional (at least the snapshot's)"},
			&cli.BoolFlag{Name: "encrypted", Usage: "encrypt the volume (a volume from an encrypted snapshot always is)"},
			&cli.StringFlag{Name: "kms-key-id", Usage: "the KMS key (ARN, key ID, alias/NAME) that wraps the volume's data key; default alias/aws/ebs"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without creating anything"},
		},
		Action: createVolume,
	}
}

func createVolume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.CreateVolumeInput{
		ClientToken:      c.String("client-token"),
		AvailabilityZone: c.String("availability-zone"),
		SnapshotID:       c.String("snapshot-id"),
		Encrypted:        c.Bool("encrypted"),
		KmsKeyID:         c.String("kms-key-id"),
		DryRun:           c.Bool("dry-run"),
	}
	switch {
	case c.IsSet("size"):
		size, err := parseSize(c.String("size"), gib)
		if err != nil {
			return usageErrorf("--size: %v", err)
		}
		// Whole GiB go as EC2's Size, anything else as cowvol's SizeBytes.
		if size%gib == 0 {
			in.Size = size / gib
		} else {
			in.SizeBytes = size
		}
	case in.SnapshotID == "":
		return usageErrorf("create-volume: --size is required (e.g. --size 4GiB)")
	}
	if c.IsSet("block-size") {
		bs, err := parseSize(c.String("block-size"), 1)
		if err != nil {
			return usageErrorf("--block-size: %v", err)
		}
		if bs > 1<<30 {
			return usageErrorf("--block-size: %s is too large", c.String("block-size"))
		}
		in.BlockSize = int(bs)
	}
	var err error
	if in.Tags, err = tagFlag(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	vol, err := cl.CreateVolume(c.Context, in)
	if err != nil {
		return opError("CreateVolume", err)
	}
	return printResult(c, volumeOutput(vol, false))
}
