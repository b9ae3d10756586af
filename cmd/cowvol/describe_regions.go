package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeRegionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-regions",
		Usage: "list the daemon's region: one, its --region (as aws ec2 describe-regions)",
		UsageText: "cowvol describe-regions [--region-names NAME ...] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--all-regions] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "region-names", Usage: "region names (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: region-name, endpoint, opt-in-status; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.BoolFlag{Name: "all-regions", Usage: "accepted, as aws: the daemon has one region either way"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeRegions,
	}
}

// regionJSON is a region as aws ec2 describe-regions prints it. Endpoint
// is the host the request went to.
type regionJSON struct {
	Endpoint    string `json:"Endpoint"`
	RegionName  string `json:"RegionName"`
	OptInStatus string `json:"OptInStatus"`
}

func describeRegions(c *cli.Context) error {
	in := control.DescribeRegionsInput{AllRegions: c.Bool("all-regions"), DryRun: c.Bool("dry-run")}
	var err error
	if in.RegionNames, err = idListFlag(c, "region-names"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	regions, err := cl.DescribeRegions(c.Context, in)
	if err != nil {
		return opError("DescribeRegions", err)
	}
	out := struct {
		Regions []regionJSON `json:"Regions"`
	}{Regions: []regionJSON{}}
	for _, r := range regions {
		out.Regions = append(out.Regions, regionJSON{Endpoint: r.RegionEndpoint, RegionName: r.RegionName, OptInStatus: r.OptInStatus})
	}
	return printResult(c, out)
}
