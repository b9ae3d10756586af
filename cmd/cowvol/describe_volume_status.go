package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeVolumeStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-volume-status",
		Usage: "report volumes' health: ok, or impaired while blocks of their snapshot cannot be read, with an event per unreadable object and per snapshot retrying its flush (as aws ec2 describe-volume-status)",
		UsageText: "cowvol describe-volume-status [--volume-ids ID[,ID...] ...] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "volume-ids", Usage: "volume IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: volume-status.status, volume-status.details-name, volume-status.details-status, availability-zone, event.event-type, event.description, event.event-id, event.not-before, event.not-after, action.code, action.description, action.event-id; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 1000)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeVolumeStatus,
	}
}

// describeVolumeStatusOutput is the JSON describe-volume-status prints, as
// aws ec2 describe-volume-status.
type describeVolumeStatusOutput struct {
	VolumeStatuses []volumeStatusJSON `json:"VolumeStatuses"`
	NextToken      string             `json:"NextToken,omitempty"`
}

type volumeStatusJSON struct {
	Actions          []volumeActionJSON `json:"Actions"`
	AvailabilityZone string             `json:"AvailabilityZone"`
	Events           []volumeEventJSON  `json:"Events"`
	VolumeID         string             `json:"VolumeId"`
	VolumeStatus     volumeStatusInfo   `json:"VolumeStatus"`
}

type volumeStatusInfo struct {
	Details []volumeStatusDetail `json:"Details"`
	Status  string               `json:"Status"`
}

type volumeStatusDetail struct {
	Name   string `json:"Name"`
	Status string `json:"Status"`
}

type volumeEventJSON struct {
	Description string `json:"Description"`
	EventID     string `json:"EventId"`
	EventType   string `json:"EventType"`
	NotAfter    string `json:"NotAfter,omitempty"`
	NotBefore   string `json:"NotBefore"`
}

type volumeActionJSON struct {
	Code        string `json:"Code"`
	Description string `json:"Description"`
	EventID     string `json:"EventId"`
	EventType   string `json:"EventType"`
}

func describeVolumeStatus(c *cli.Context) error {
	in := control.DescribeVolumeStatusInput{
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
	res, err := cl.DescribeVolumeStatus(c.Context, in)
	if err != nil {
		return opError("DescribeVolumeStatus", err)
	}
	out := describeVolumeStatusOutput{VolumeStatuses: []volumeStatusJSON{}, NextToken: res.NextToken}
	for _, it := range res.VolumeStatuses {
		out.VolumeStatuses = append(out.VolumeStatuses, volumeStatusOutput(it))
	}
	return printResult(c, out)
}

func volumeStatusOutput(it control.VolumeStatusItem) volumeStatusJSON {
	out := volumeStatusJSON{
		Actions:          []volumeActionJSON{},
		AvailabilityZone: it.AvailabilityZone,
		Events:           []volumeEventJSON{},
		VolumeID:         it.VolumeID,
		VolumeStatus:     volumeStatusInfo{Details: []volumeStatusDetail{}, Status: it.VolumeStatus.Status},
	}
	for _, d := range it.VolumeStatus.Details.Items {
		out.VolumeStatus.Details = append(out.VolumeStatus.Details, volumeStatusDetail(d))
	}
	for _, e := range it.Events.Items {
		ev := volumeEventJSON{Description: e.Description, EventID: e.EventID, EventType: e.EventType, NotBefore: e.NotBefore.String()}
		if e.NotAfter != nil {
			ev.NotAfter = e.NotAfter.String()
		}
		out.Events = append(out.Events, ev)
	}
	for _, a := range it.Actions.Items {
		out.Actions = append(out.Actions, volumeActionJSON{Code: a.Code, Description: a.Description, EventID: a.EventID, EventType: a.EventType})
	}
	return out
}
