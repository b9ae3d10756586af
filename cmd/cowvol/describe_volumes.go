package main

import (
	"strings"

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
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 to 500"},
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
	ids := c.StringSlice("volume-ids")
	if c.Args().Present() {
		// aws takes `--volume-ids a b`: the IDs after the first are arguments.
		if len(ids) == 0 {
			return noArgs(c)
		}
		for _, a := range c.Args().Slice() {
			if strings.HasPrefix(a, "-") {
				return usageErrorf("describe-volumes: flag %s must come before the volume IDs", a)
			}
			ids = append(ids, a)
		}
	}
	for _, id := range ids {
		for _, one := range strings.Split(id, ",") {
			if one != "" {
				in.VolumeIDs = append(in.VolumeIDs, one)
			}
		}
	}
	for _, f := range c.StringSlice("filter") {
		name, values, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return usageErrorf("--filter: %q is not NAME=VALUE[,VALUE...]", f)
		}
		in.Filters = append(in.Filters, control.Filter{Name: name, Values: strings.Split(values, ",")})
	}
	for _, f := range c.StringSlice("filters") {
		flt, err := parseFilterShorthand(f)
		if err != nil {
			return err
		}
		in.Filters = append(in.Filters, flt)
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
	return printJSON(c.App.Writer, out)
}

// parseFilterShorthand parses the aws CLI shorthand Name=n,Values=a,b.
func parseFilterShorthand(s string) (control.Filter, error) {
	rest, ok := strings.CutPrefix(s, "Name=")
	if !ok {
		return control.Filter{}, usageErrorf("--filters: %q is not Name=NAME,Values=V1,V2", s)
	}
	name, values, ok := strings.Cut(rest, ",Values=")
	if !ok || name == "" || values == "" {
		return control.Filter{}, usageErrorf("--filters: %q is not Name=NAME,Values=V1,V2", s)
	}
	return control.Filter{Name: name, Values: strings.Split(values, ",")}, nil
}
