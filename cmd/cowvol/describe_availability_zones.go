package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeAvailabilityZonesCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-availability-zones",
		Usage: "list the daemon's Availability Zone: one, <region>a (as aws ec2 describe-availability-zones)",
		UsageText: "cowvol describe-availability-zones [--zone-names NAME ...] [--zone-ids ID ...] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--all-availability-zones] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "zone-names", Usage: "zone names (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "zone-ids", Usage: "zone IDs"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: zone-name, zone-id, region-name, state, zone-type, group-name, opt-in-status, message, parent-zone-id, parent-zone-name, group-long-name; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.BoolFlag{Name: "all-availability-zones", Usage: "accepted, as aws: the daemon has one zone either way"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeAvailabilityZones,
	}
}

// availabilityZoneJSON is a zone as aws ec2 describe-availability-zones
// prints it.
type availabilityZoneJSON struct {
	State              string   `json:"State"`
	OptInStatus        string   `json:"OptInStatus"`
	Messages           []string `json:"Messages"`
	RegionName         string   `json:"RegionName"`
	ZoneName           string   `json:"ZoneName"`
	ZoneID             string   `json:"ZoneId"`
	GroupName          string   `json:"GroupName"`
	NetworkBorderGroup string   `json:"NetworkBorderGroup"`
	ZoneType           string   `json:"ZoneType"`
}

func describeAvailabilityZones(c *cli.Context) error {
	in := control.DescribeAvailabilityZonesInput{
		ZoneIDs:              splitCommas(c.StringSlice("zone-ids")),
		AllAvailabilityZones: c.Bool("all-availability-zones"),
		DryRun:               c.Bool("dry-run"),
	}
	var err error
	if in.ZoneNames, err = idListFlag(c, "zone-names"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	zones, err := cl.DescribeAvailabilityZones(c.Context, in)
	if err != nil {
		return opError("DescribeAvailabilityZones", err)
	}
	out := struct {
		AvailabilityZones []availabilityZoneJSON `json:"AvailabilityZones"`
	}{AvailabilityZones: []availabilityZoneJSON{}}
	for _, z := range zones {
		msgs := []string{}
		for _, m := range z.Messages.Items {
			msgs = append(msgs, m.Message)
		}
		out.AvailabilityZones = append(out.AvailabilityZones, availabilityZoneJSON{
			State: z.ZoneState, OptInStatus: z.OptInStatus, Messages: msgs, RegionName: z.RegionName,
			ZoneName: z.ZoneName, ZoneID: z.ZoneID, GroupName: z.GroupName,
			NetworkBorderGroup: z.NetworkBorderGroup, ZoneType: z.ZoneType,
		})
	}
	return printResult(c, out)
}
