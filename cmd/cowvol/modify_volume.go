package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func modifyVolumeCommand() *cli.Command {
	return &cli.Command{
		Name: "modify-volume",
		Usage: "grow a volume online (as aws ec2 modify-volume): the volume file and the loop devices attached to it " +
			"get the new size; then grow the file system (resize2fs DEVICE)",
		UsageText: "cowvol modify-volume --volume-id ID --size GIB [--volume-type standard] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to grow"},
			&cli.Int64Flag{Name: "size", Usage: "the new size in GiB: larger than the volume's"},
			&cli.StringFlag{Name: "volume-type", Usage: "standard (the only type; changes nothing)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without changing anything"},
		},
		Action: modifyVolume,
	}
}

// modifyVolumeOutput is the JSON modify-volume prints, as aws ec2
// modify-volume.
type modifyVolumeOutput struct {
	VolumeModification volumeModificationJSON `json:"VolumeModification"`
}

type volumeModificationJSON struct {
	VolumeID                   string `json:"VolumeId"`
	ModificationState          string `json:"ModificationState"`
	TargetSize                 int64  `json:"TargetSize"`
	TargetVolumeType           string `json:"TargetVolumeType"`
	TargetMultiAttachEnabled   bool   `json:"TargetMultiAttachEnabled"`
	OriginalSize               int64  `json:"OriginalSize"`
	OriginalVolumeType         string `json:"OriginalVolumeType"`
	OriginalMultiAttachEnabled bool   `json:"OriginalMultiAttachEnabled"`
	Progress                   int64  `json:"Progress"`
	StartTime                  string `json:"StartTime"`
	EndTime                    string `json:"EndTime,omitempty"`
}

func modificationOutput(m control.VolumeModification) volumeModificationJSON {
	out := volumeModificationJSON{
		VolumeID: m.VolumeID, ModificationState: m.ModificationState,
		TargetSize: m.TargetSize, TargetVolumeType: m.TargetVolumeType, TargetMultiAttachEnabled: m.TargetMultiAttachEnabled,
		OriginalSize: m.OriginalSize, OriginalVolumeType: m.OriginalVolumeType, OriginalMultiAttachEnabled: m.OriginalMultiAttachEnabled,
		Progress: m.Progress, StartTime: m.StartTime.String(),
	}
	if m.EndTime != nil {
		out.EndTime = m.EndTime.String()
	}
	return out
}

func modifyVolume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.ModifyVolumeInput{VolumeID: c.String("volume-id"), Size: c.Int64("size"),
		VolumeType: c.String("volume-type"), DryRun: c.Bool("dry-run")}
	if in.VolumeID == "" {
		return usageErrorf("modify-volume: --volume-id is required")
	}
	if c.IsSet("size") && in.Size < 1 {
		return usageErrorf("modify-volume: --size %d: want GiB, 1 or more", in.Size)
	}
	cl := client(c)
	defer cl.Close()
	m, err := cl.ModifyVolume(c.Context, in)
	if err != nil {
		return opError("ModifyVolume", err)
	}
	return printResult(c, modifyVolumeOutput{VolumeModification: modificationOutput(m)})
}

func describeVolumesModificationsCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-volumes-modifications",
		Usage: "show each volume's last modification: modifying, optimizing or completed (as aws ec2 describe-volumes-modifications)",
		UsageText: "cowvol describe-volumes-modifications [--volume-ids ID[,ID...] ...] [--filter NAME=V1,V2 ...]\n" +
			"   [--filters Name=NAME,Values=V1,V2 ...] [--max-results N] [--next-token T]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "volume-ids", Usage: "volume IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: volume-id, modification-state, target-size, original-size, target-volume-type, original-volume-type, start-time; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.IntFlag{Name: "max-results", Usage: "page size, 5 or more (pages hold at most 500)"},
			&cli.StringFlag{Name: "next-token", Usage: "NextToken of the previous page"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: describeVolumesModifications,
	}
}

type describeVolumesModificationsOutput struct {
	VolumesModifications []volumeModificationJSON `json:"VolumesModifications"`
	NextToken            string                   `json:"NextToken,omitempty"`
}

func describeVolumesModifications(c *cli.Context) error {
	in := control.DescribeVolumesModificationsInput{MaxResults: c.Int("max-results"), NextToken: c.String("next-token"), DryRun: c.Bool("dry-run")}
	var err error
	if in.VolumeIDs, err = idListFlag(c, "volume-ids"); err != nil {
		return err
	}
	if in.Filters, err = filterFlags(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	res, err := cl.DescribeVolumesModifications(c.Context, in)
	if err != nil {
		return opError("DescribeVolumesModifications", err)
	}
	out := describeVolumesModificationsOutput{VolumesModifications: []volumeModificationJSON{}, NextToken: res.NextToken}
	for _, m := range res.VolumesModifications {
		out.VolumesModifications = append(out.VolumesModifications, modificationOutput(m))
	}
	return printResult(c, out)
}
