package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func modifySnapshotAttributeCommand() *cli.Command {
	return &cli.Command{
		Name: "modify-snapshot-attribute",
		Usage: "change who may create volumes from a snapshot (as aws ec2 modify-snapshot-attribute): " +
			"accounts, or the group all, that share the snapshot store; prints nothing",
		UsageText: "cowvol modify-snapshot-attribute --snapshot-id ID [--attribute createVolumePermission]\n" +
			"   --operation-type add|remove [--user-ids ACCOUNT ...] [--group-names all] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot"},
			&cli.StringFlag{Name: "attribute", Usage: "createVolumePermission (the only one)"},
			&cli.StringFlag{Name: "operation-type", Usage: "add or remove"},
			&cli.StringSliceFlag{Name: "user-ids", Usage: "12-digit account IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.StringSliceFlag{Name: "group-names", Usage: "all: everyone"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without changing anything"},
		},
		Action: modifySnapshotAttribute,
	}
}

func modifySnapshotAttribute(c *cli.Context) error {
	in := control.ModifySnapshotAttributeInput{
		SnapshotID: c.String("snapshot-id"),
		Attribute:  c.String("attribute"),
		DryRun:     c.Bool("dry-run"),
	}
	users, err := idListFlag(c, "user-ids")
	if err != nil {
		return err
	}
	var grants []control.CreateVolumePermission
	for _, u := range users {
		grants = append(grants, control.CreateVolumePermission{UserID: u})
	}
	for _, g := range splitCommas(c.StringSlice("group-names")) {
		grants = append(grants, control.CreateVolumePermission{Group: g})
	}
	switch op := c.String("operation-type"); {
	case in.SnapshotID == "":
		return usageErrorf("modify-snapshot-attribute: --snapshot-id is required")
	case op == "add":
		in.Add = grants
	case op == "remove":
		in.Remove = grants
	case op == "":
		return usageErrorf("modify-snapshot-attribute: --operation-type (add or remove) is required")
	default:
		return usageErrorf("modify-snapshot-attribute: --operation-type %q: want add or remove", op)
	}
	if len(grants) == 0 {
		return usageErrorf("modify-snapshot-attribute: name whom with --user-ids or --group-names all")
	}
	cl := client(c)
	defer cl.Close()
	return opError("ModifySnapshotAttribute", cl.ModifySnapshotAttribute(c.Context, in))
}
