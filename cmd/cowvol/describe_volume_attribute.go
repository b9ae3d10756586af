package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func describeVolumeAttributeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe-volume-attribute",
		Usage:     "describe one attribute of a volume: autoEnableIO (always true: cowvol never disables a volume's I/O) or productCodes (as aws ec2 describe-volume-attribute)",
		UsageText: "cowvol describe-volume-attribute --volume-id ID --attribute autoEnableIO|productCodes [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume"},
			&cli.StringFlag{Name: "attribute", Usage: "autoEnableIO or productCodes"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id, attr := c.String("volume-id"), c.String("attribute")
			switch {
			case id == "":
				return usageErrorf("describe-volume-attribute: --volume-id is required")
			case attr == "":
				return usageErrorf("describe-volume-attribute: --attribute is required (autoEnableIO or productCodes)")
			}
			cl := client(c)
			defer cl.Close()
			res, err := cl.DescribeVolumeAttribute(c.Context, id, attr, c.Bool("dry-run"))
			if err != nil {
				return opError("DescribeVolumeAttribute", err)
			}
			out := struct {
				AutoEnableIO *attributeBoolJSON `json:"AutoEnableIO,omitempty"`
				ProductCodes *[]productCodeJSON `json:"ProductCodes,omitempty"`
				VolumeID     string             `json:"VolumeId"`
			}{VolumeID: res.VolumeID}
			if res.AutoEnableIO != nil {
				out.AutoEnableIO = &attributeBoolJSON{Value: res.AutoEnableIO.Value}
			}
			if res.ProductCodes != nil {
				out.ProductCodes = productCodesOutput(res.ProductCodes)
			}
			return printResult(c, out)
		},
	}
}

// attributeBoolJSON is a boolean attribute as aws prints it.
type attributeBoolJSON struct {
	Value bool `json:"Value"`
}

// productCodeJSON is a product code as aws prints it.
type productCodeJSON struct {
	ProductCodeID   string `json:"ProductCodeId"`
	ProductCodeType string `json:"ProductCodeType"`
}

func productCodesOutput(pc *control.ProductCodes) *[]productCodeJSON {
	out := []productCodeJSON{}
	for _, p := range pc.Items {
		out = append(out, productCodeJSON{ProductCodeID: p.ProductCode, ProductCodeType: p.Type})
	}
	return &out
}
