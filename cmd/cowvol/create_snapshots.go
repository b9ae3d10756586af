package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func createSnapshotsCommand() *cli.Command {
	return &cli.Command{
		Name: "create-snapshots",
		Usage: "snapshot many volumes at one instant, crash-consistent with each other (as aws ec2 create-snapshots): " +
			"the volumes attached to this host's loop devices, or those named by --volume-ids",
		UsageText: "cowvol create-snapshots --instance-specification InstanceId=ID[,ExcludeBootVolume=true][,ExcludeDataVolumeIds=[vol-a,vol-b]]\n" +
			"   | --volume-ids ID[,ID...] ...   [--description D] [--copy-tags-from-source volume] [--tag K=V ...]\n" +
			"   [--freeze MOUNTPOINT ... [--freeze-timeout 30s]] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "instance-specification", Usage: "aws shorthand `InstanceId=ID,ExcludeBootVolume=BOOL,ExcludeDataVolumeIds=[ID,ID]`: this host's instance ID (as attachments report it)"},
			&cli.StringSliceFlag{Name: "volume-ids", Usage: "cowvol extension: the volumes, attached or not (repeatable, comma-separated)"},
			&cli.StringFlag{Name: "description", Usage: "up to 255 characters, on every snapshot"},
			&cli.StringFlag{Name: "copy-tags-from-source", Usage: "volume: each snapshot gets its volume's tags"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` for every snapshot (repeatable)"},
			&cli.StringSliceFlag{Name: "freeze", Usage: "freeze the file system mounted at `MOUNTPOINT` (FIFREEZE) around the snapshots, then always thaw it (FITHAW); " +
				"repeatable; each must be a file system on a loop device attached to one of the volumes; needs root"},
			&cli.StringFlag{Name: "freeze-timeout", Value: "30s",
				Usage: "with --freeze: give up on the request after `SECONDS` (or a duration: 90s, 2m), thaw and exit 255"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without creating anything"},
		},
		Action: createSnapshots,
	}
}

func createSnapshots(c *cli.Context) error {
	return createSnapshotsWith(c, snapshotFreezer)
}

func createSnapshotsWith(c *cli.Context, fz fsFreezer) error {
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
	dirs, bound, err := freezeFlags(c)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	var snaps []control.SnapshotInfo
	if len(dirs) == 0 || in.DryRun { // a dry run changes nothing, the file systems' state included
		snaps, err = cl.CreateSnapshots(c.Context, in)
		err = opError("CreateSnapshots", err)
	} else {
		snaps, err = createSnapshotsFrozen(c, cl, fz, dirs, bound, in)
	}
	if err != nil {
		return err
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

// createSnapshotsFrozen checks that every mount point in dirs is a file
// system on one of the volumes the request snapshots, then makes it with
// them all frozen and thaws them all, whatever happens.
func createSnapshotsFrozen(c *cli.Context, cl *control.Client, fz fsFreezer, dirs []string, bound time.Duration, in control.CreateSnapshotsInput) ([]control.SnapshotInfo, error) {
	ids, err := snapshotsVolumes(c.Context, cl, in)
	if err != nil {
		return nil, err
	}
	if fz.check != nil {
		sc := freezeScope{verb: c.Command.Name, volumeIDs: ids, socket: globalString(c, "socket")}
		if err := fz.check(dirs, sc); err != nil {
			return nil, err
		}
	}
	var snaps []control.SnapshotInfo
	err = createFrozen(c, fz, dirs, bound, freezeCall{op: "CreateSnapshots", volumeIDs: ids,
		call: func(ctx context.Context, cl *control.Client) (err error) {
			snaps, err = cl.CreateSnapshots(ctx, in)
			return err
		}})
	return snaps, err
}

// snapshotsVolumes are the volumes CreateSnapshots will snapshot: those
// named, or those attached to the instance (as DescribeVolumes reports
// attachments) but the excluded ones.
func snapshotsVolumes(ctx context.Context, cl *control.Client, in control.CreateSnapshotsInput) ([]string, error) {
	if len(in.VolumeIDs) > 0 {
		return in.VolumeIDs, nil
	}
	out, err := cl.DescribeVolumes(ctx, control.DescribeVolumesInput{
		Filters: []control.Filter{{Name: "attachment.instance-id", Values: []string{in.InstanceID}}}})
	if err != nil {
		return nil, opError("DescribeVolumes", err)
	}
	var ids []string
	for _, v := range out.Volumes {
		if !slices.Contains(in.ExcludeDataVolumeIDs, v.VolumeID) {
			ids = append(ids, v.VolumeID)
		}
	}
	if len(ids) == 0 {
		return nil, usageErrorf("create-snapshots: --freeze: instance %s has no volumes attached to snapshot", in.InstanceID)
	}
	return ids, nil
}
