package main

import (
	"github.com/urfave/cli/v2"
)

func deleteVolumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete-volume",
		Usage:     "delete a volume that is not in use (as aws ec2 delete-volume); prints nothing",
		UsageText: "cowvol delete-volume --volume-id ID [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to delete"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without deleting anything"},
		},
		Action: deleteVolume,
	}
}

func deleteVolume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	id := c.String("volume-id")
	if id == "" {
		return usageErrorf("delete-volume: --volume-id is required")
	}
	cl := client(c)
	defer cl.Close()
	return opError("DeleteVolume", cl.DeleteVolume(c.Context, id, c.Bool("dry-run")))
}
