package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func createSnapshotsCommand() *cli.Command {
	return &cli.Command{
		Name: "create-snapshots",
		Usage: "snapshot many volumes at one instant, crash-consistent with each other (as aws ec2 create-snapshots): " +
			"the volumes attached to this host's loop devices, or those named by --volume-ids",
		UsageText: "cowvol create-snapshots --instance-specification InstanceId=ID[,ExcludeBootVolume=true][,ExcludeDataVolumeIds=[vol-a,vol-b]]\n" +
			"   | --volume-ids ID[,ID...] ...   [--description D] [--copy-tags-from-source volume] [--tag K=V ...] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "instance-specification", Usage: "aws shorthand `InstanceId=ID,ExcludeBootVolume=BOOL,ExcludeDataVolumeIds=[ID,ID]`: this host's instance ID (as attachments report it)"},
			&cli.StringSliceFlag{Name: "volume-ids", Usage: "cowvol extension: the volumes, attached or not (repeatable, comma-separated)"},
			&cli.StringFlag{Name: "description", Usage: "up to 255 characters, on every snapshot"},
			&cli.StringFlag{Name: "copy-tags-from-source", Usage: "volume: each snapshot gets its volume's tags"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` for every snapshot (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without creating anything"},
		},
		Action: createSnapshots,
	}
}

func createSnapshots(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.CreateSnapshotsInput{
		VolumeIDs:   splitCommas(c.StringSlice("volume-ids")),
		Description: c.String("description"),
		DryRun:      c.Bool("dry-run"),
	}
	switch src := c.String("copy-tags-from-source"); src {
	case "":
	case "volume":
		in.CopyTagsFromSource = true
	default:
		return usageErrorf("create-snapshots: --copy-tags-from-source %q: want volume", src)
	}
	if spec := c.String("instance-specification"); spec != "" {
		if err := parseInstanceSpecification(spec, &in); err != nil {
			return err
		}
	}
	if (in.InstanceID == "") == (len(in.VolumeIDs) == 0) {
		return usageErrorf("create-snapshots: give --instance-specification InstanceId=ID or --volume-ids, one of them")
	}
	var err error
	if in.Tags, err = tagFlag(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	snaps, err := cl.CreateSnapshots(c.Context, in)
	if err != nil {
		return opError("CreateSnapshots", err)
	}
	out := struct {
		Snapshots []snapshotInfoJSON `json:"Snapshots"`
	}{Snapshots: []snapshotInfoJSON{}}
	for _, s := range snaps {
		j := snapshotInfoJSON{Description: s.Description, Encrypted: s.Encrypted, OwnerID: s.OwnerID, Progress: s.Progress,
			SnapshotID: s.SnapshotID, StartTime: s.StartTime.String(), State: s.State, VolumeID: s.VolumeID, VolumeSize: s.VolumeSize, SseType: s.SseType}
		for _, t := range s.Tags {
			j.Tags = append(j.Tags, tagJSON{Key: t.Key, Value: t.Value})
		}
		out.Snapshots = append(out.Snapshots, j)
	}
	return printResult(c, out)
}

// snapshotInfoJSON is a snapshot as aws ec2 create-snapshots prints it.
type snapshotInfoJSON struct {
	Description string    `json:"Description"`
	Tags        []tagJSON `json:"Tags,omitempty"`
	Encrypted   bool      `json:"Encrypted"`
	VolumeID    string    `json:"VolumeId"`
	State       string    `json:"State"`
	VolumeSize  int64     `json:"VolumeSize"`
	StartTime   string    `json:"StartTime"`
	Progress    string    `json:"Progress"`
	OwnerID     string    `json:"OwnerId"`
	SnapshotID  string    `json:"SnapshotId"`
	SseType     string    `json:"SseType,omitempty"`
}

// parseInstanceSpecification parses the aws shorthand
// InstanceId=i-...,ExcludeBootVolume=true,ExcludeDataVolumeIds=[vol-a,vol-b].
func parseInstanceSpecification(s string, in *control.CreateSnapshotsInput) error {
	bad := func() error {
		return usageErrorf("--instance-specification: %q is not InstanceId=ID[,ExcludeBootVolume=true|false][,ExcludeDataVolumeIds=[ID,ID]]", s)
	}
	rest := s
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return bad()
		}
		var value string
		if strings.HasPrefix(after, "[") {
			end := strings.Index(after, "]")
			if end < 0 {
				return bad()
			}
			value, rest = after[1:end], strings.TrimPrefix(after[end+1:], ",")
		} else {
			value, rest, _ = strings.Cut(after, ",")
		}
		switch key {
		case "InstanceId":
			in.InstanceID = value
		case "ExcludeBootVolume":
			if value != "true" && value != "false" {
				return bad()
			}
			in.ExcludeBootVolume = value == "true"
		case "ExcludeDataVolumeIds":
			in.ExcludeDataVolumeIDs = splitCommas([]string{value})
		default:
			return bad()
		}
	}
	if in.InstanceID == "" {
		return bad()
	}
	return nil
}
