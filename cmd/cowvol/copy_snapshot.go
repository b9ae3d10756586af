package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func copySnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "copy-snapshot",
		Usage: "copy a completed snapshot (as aws ec2 copy-snapshot); prints the copy's SnapshotId",
		UsageText: "cowvol copy-snapshot --source-snapshot-id ID [--source-region R] [--description D] [--encrypted] [--kms-key-id KEY] [--tag k=v ...] [--dry-run]\n" +
			"   the copy of an encrypted snapshot is encrypted, under a data key of its own; --encrypted encrypts the copy of a plaintext one",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source-snapshot-id", Usage: "the snapshot to copy"},
			&cli.StringFlag{Name: "source-region", Usage: "the source's region: the daemon's (copies stay within it)"},
			&cli.StringFlag{Name: "description", Usage: "the copy's description"},
			&cli.BoolFlag{Name: "encrypted", Usage: "encrypt the copy of a plaintext snapshot"},
			&cli.StringFlag{Name: "kms-key-id", Usage: "the KMS key of the copy (default: the source's, or alias/aws/ebs)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` of the copy (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without copying anything"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.CopySnapshotInput{
				SourceSnapshotID: c.String("source-snapshot-id"),
				SourceRegion:     c.String("source-region"),
				Description:      c.String("description"),
				Encrypted:        c.Bool("encrypted"),
				KmsKeyID:         c.String("kms-key-id"),
				DryRun:           c.Bool("dry-run"),
			}
			if in.SourceSnapshotID == "" {
				return usageErrorf("copy-snapshot: --source-snapshot-id is required")
			}
			var err error
			if in.Tags, err = tagFlag(c); err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			out, err := cl.CopySnapshot(c.Context, in)
			if err != nil {
				return opError("CopySnapshot", err)
			}
			js := struct {
				SnapshotID string    `json:"SnapshotId"`
				Tags       []tagJSON `json:"Tags,omitempty"`
			}{SnapshotID: out.SnapshotID}
			for _, t := range out.Tags {
				js.Tags = append(js.Tags, tagJSON{Key: t.Key, Value: t.Value})
			}
			return printResult(c, js)
		},
	}
}
