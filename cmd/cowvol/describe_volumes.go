package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeVolumesCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-volumes",
		Usage: "list volumes (as aws ec2 describe-volumes)",
		UsageText: "cowvol describe-volumes [--volume-ids ID[,ID...] ...] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "volume-ids", Usage: "volume IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: status, size, volume-id, tag:KEY, tag-key, encrypted, snapshot-id, create-time, availability-zone, volume-type; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 500)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeVolumes,
	}
}

// describeVolumesOutput is the JSON describe-volumes prints.
type describeVolumesOutput struct {
	Volumes   []volumeJSON `json:"Volumes"`
	NextToken string       `json:"NextToken,omitempty"`
}

func describeVolumes(c *cli.Context) error {
	in := control.DescribeVolumesInput{
		MaxResults: c.Int("max-results"),
		NextToken:  c.String("next-token"),
		DryRun:     c.Bool("dry-run"),
	}
	var err error
	if in.VolumeIDs, err = idListFlag(c, "volume-ids"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.DescribeVolumes(c.Context, in)
	if err != nil {
		return opError("DescribeVolumes", err)
	}
	out := describeVolumesOutput{Volumes: []volumeJSON{}, NextToken: res.NextToken}
	for _, v := range res.Volumes {
		out.Volumes = append(out.Volumes, volumeOutput(v, true))
	}
	return printResult(c, out)
}
