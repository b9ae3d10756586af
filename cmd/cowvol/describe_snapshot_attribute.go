package main

import "github.com/urfave/cli/v2"

func describeSnapshotAttributeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe-snapshot-attribute",
		Usage:     "describe one attribute of a snapshot: createVolumePermission (who besides the owner may create volumes from it) or productCodes (as aws ec2 describe-snapshot-attribute)",
		UsageText: "cowvol describe-snapshot-attribute --snapshot-id ID --attribute createVolumePermission|productCodes [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot"},
			&cli.StringFlag{Name: "attribute", Usage: "createVolumePermission or productCodes"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id, attr := c.String("snapshot-id"), c.String("attribute")
			switch {
			case id == "":
				return usageErrorf("describe-snapshot-attribute: --snapshot-id is required")
			case attr == "":
				return usageErrorf("describe-snapshot-attribute: --attribute is required (createVolumePermission or productCodes)")
			}
			cl := client(c)
			defer cl.Close()
			res, err := cl.DescribeSnapshotAttribute(c.Context, id, attr, c.Bool("dry-run"))
			if err != nil {
				return opError("DescribeSnapshotAttribute", err)
			}
			out := struct {
				CreateVolumePermissions *[]createVolumePermissionJSON `json:"CreateVolumePermissions,omitempty"`
				ProductCodes            *[]productCodeJSON            `json:"ProductCodes,omitempty"`
				SnapshotID              string                        `json:"SnapshotId"`
			}{SnapshotID: res.SnapshotID}
			if res.CreateVolumePermission != nil {
				perms := []createVolumePermissionJSON{}
				for _, p := range res.CreateVolumePermission.Items {
					perms = append(perms, createVolumePermissionJSON{Group: p.Group, UserID: p.UserID})
				}
				out.CreateVolumePermissions = &perms
			}
			if res.ProductCodes != nil {
				out.ProductCodes = productCodesOutput(res.ProductCodes)
			}
			return printResult(c, out)
		},
	}
}

// createVolumePermissionJSON is a grant as aws prints it.
type createVolumePermissionJSON struct {
	Group  string `json:"Group,omitempty"`
	UserID string `json:"UserId,omitempty"`
}
