package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeSnapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-snapshots",
		Usage: "list snapshots (as aws ec2 describe-snapshots)",
		UsageText: "cowvol describe-snapshots [--snapshot-ids ID ...] [--owner-ids self] [--restorable-by-user-ids self] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "snapshot-ids", Usage: "snapshot IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "owner-ids", Usage: "owners: self or an account ID"},
			&cli.StringSliceFlag{Name: "restorable-by-user-ids", Usage: "only snapshots these may create volumes from: self, all or account IDs"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: status, volume-id, snapshot-id, tag:KEY, tag-key, description, owner-id, start-time, progress, storage-tier, volume-size, encrypted, outpost-arn; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 1000)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeSnapshots,
	}
}

// describeSnapshotsOutput is the JSON describe-snapshots prints.
type describeSnapshotsOutput struct {
	Snapshots []snapshotJSON `json:"Snapshots"`
	NextToken string         `json:"NextToken,omitempty"`
}

func describeSnapshots(c *cli.Context) error {
	in := control.DescribeSnapshotsInput{
		OwnerIDs:     splitCommas(c.StringSlice("owner-ids")),
		RestorableBy: splitCommas(c.StringSlice("restorable-by-user-ids")),
		MaxResults:   c.Int("max-results"),
		NextToken:    c.String("next-token"),
		DryRun:       c.Bool("dry-run"),
	}
	var err error
	if in.SnapshotIDs, err = idListFlag(c, "snapshot-ids"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.DescribeSnapshots(c.Context, in)
	if err != nil {
		return opError("DescribeSnapshots", err)
	}
	out := describeSnapshotsOutput{Snapshots: []snapshotJSON{}, NextToken: res.NextToken}
	for _, s := range res.Snapshots {
		out.Snapshots = append(out.Snapshots, snapshotOutput(s))
	}
	return printResult(c, out)
}
