package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/attach"
	"github.com/cowvol/cowvol/control"
)

// attachmentJSON is an attachment as `aws ec2` prints it: in
// describe-volumes' Attachments, and alone for attach-volume and
// detach-volume (without DeleteOnTermination there, as aws).
type attachmentJSON struct {
	AttachTime          string `json:"AttachTime"`
	Device              string `json:"Device"`
	InstanceID          string `json:"InstanceId"`
	State               string `json:"State"`
	VolumeID            string `json:"VolumeId"`
	DeleteOnTermination *bool  `json:"DeleteOnTermination,omitempty"`
}

func attachmentsOutput(set *control.AttachmentSet) *[]attachmentJSON {
	out := []attachmentJSON{}
	if set != nil {
		for _, a := range set.Items {
			j := attachmentJSON{Device: a.Device, InstanceID: a.InstanceID, State: a.Status, VolumeID: a.VolumeID,
				DeleteOnTermination: a.DeleteOnTermination}
			if a.AttachTime != nil {
				j.AttachTime = a.AttachTime.String()
			}
			out = append(out, j)
		}
	}
	return &out
}

func attachVolumeCommand() *cli.Command {
	return &cli.Command{
		Name: "attach-volume",
		Usage: "attach a volume to a loop device of this host, with direct I/O (as aws ec2 attach-volume); " +
			"--device /dev/sdf (any EC2 name) takes the first free loop device, /dev/loopN that one; prints the real device",
		UsageText: "cowvol attach-volume --volume-id ID --device NAME [--instance-id I] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to attach"},
			&cli.StringFlag{Name: "instance-id", Usage: "this host's instance ID (default: derived from /etc/machine-id, as the daemon does)"},
			&cli.StringFlag{Name: "device", Usage: "an EC2 device name (/dev/sdf, /dev/xvdf) or /dev/loopN"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without attaching anything"},
		},
		Action: attachVolume,
	}
}

func attachVolume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.AttachVolumeInput{VolumeID: c.String("volume-id"), InstanceID: c.String("instance-id"),
		Device: c.String("device"), DryRun: c.Bool("dry-run")}
	if in.InstanceID == "" {
		// The socket is the local daemon's: this host is its instance.
		id, err := attach.InstanceID()
		if err != nil {
			return usageErrorf("attach-volume: --instance-id is required: %v", err)
		}
		in.InstanceID = id
	}
	for flag, v := range map[string]string{"--volume-id": in.VolumeID, "--device": in.Device} {
		if v == "" {
			return usageErrorf("attach-volume: %s is required", flag)
		}
	}
	cl := client(c)
	defer cl.Close()
	a, err := cl.AttachVolume(c.Context, in)
	if err != nil {
		return opError("AttachVolume", err)
	}
	return printResult(c, attachmentOutput(a))
}

func attachmentOutput(a control.VolumeAttachment) attachmentJSON {
	return attachmentJSON{AttachTime: a.AttachTime.String(), Device: a.Device, InstanceID: a.InstanceID, State: a.Status, VolumeID: a.VolumeID}
}

func detachVolumeCommand() *cli.Command {
	return &cli.Command{
		Name: "detach-volume",
		Usage: "detach a volume from its loop device (as aws ec2 detach-volume); refused while the device is mounted or open, " +
			"unless --force (the kernel lets go of it when its last user does)",
		UsageText: "cowvol detach-volume --volume-id ID [--instance-id I] [--device DEV] [--force] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to detach"},
			&cli.StringFlag{Name: "instance-id", Usage: "this host's instance ID (optional)"},
			&cli.StringFlag{Name: "device", Usage: "the device it is attached to (optional)"},
			&cli.BoolFlag{Name: "force", Usage: "detach even while the device is mounted or open"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without detaching anything"},
		},
		Action: detachVolume,
	}
}

func detachVolume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.DetachVolumeInput{VolumeID: c.String("volume-id"), InstanceID: c.String("instance-id"),
		Device: c.String("device"), Force: c.Bool("force"), DryRun: c.Bool("dry-run")}
	if in.VolumeID == "" {
		return usageErrorf("detach-volume: --volume-id is required")
	}
	cl := client(c)
	defer cl.Close()
	a, err := cl.DetachVolume(c.Context, in)
	if err != nil {
		return opError("DetachVolume", err)
	}
	return printResult(c, attachmentOutput(a))
}
