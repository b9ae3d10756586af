package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The key verbs manage the daemon's keyring through the KMS API on the
// socket (what `aws kms` speaks), printing what `aws kms` would.

func createKeyCommand() *cli.Command {
	return &cli.Command{
		Name:      "create-key",
		Usage:     "create a KMS key in the daemon's keyring (as aws kms create-key, plus create-alias)",
		UsageText: "cowvol create-key [--description TEXT] [--alias alias/NAME]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "description", Usage: "what the key is for"},
			&cli.StringFlag{Name: "alias", Usage: "also name the key `alias/NAME`"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			k, err := cl.CreateKey(c.Context, c.String("description"), c.String("alias"))
			if err != nil {
				return opError("CreateKey", err)
			}
			return printResult(c, struct {
				KeyMetadata control.Key `json:"KeyMetadata"`
			}{k})
		},
	}
}

func describeKeysCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe-keys",
		Usage:     "describe the keyring's KMS keys (aws kms list-keys and describe-key in one)",
		UsageText: "cowvol describe-keys [--key-ids ID|ARN|alias/NAME ...]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "key-ids", Usage: "keys by ID, ARN or alias (repeatable, comma-separated); default all"},
		},
		Action: func(c *cli.Context) error {
			ids, err := idListFlag(c, "key-ids")
			if err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			keys, err := cl.DescribeKeys(c.Context, ids)
			if err != nil {
				op := "DescribeKey"
				if len(ids) == 0 {
					op = "ListKeys"
				}
				return opError(op, err)
			}
			return printResult(c, struct {
				Keys []control.Key `json:"Keys"`
			}{keys})
		},
	}
}

func setKeyEnabledCommand(name string, enabled bool) *cli.Command {
	op, usage := "DisableKey", "disable a KMS key: its volumes and snapshots become unreadable until it is enabled (aws kms disable-key)"
	if enabled {
		op, usage = "EnableKey", "enable a disabled KMS key (aws kms enable-key)"
	}
	return &cli.Command{
		Name:      name,
		Usage:     usage + "; prints nothing",
		UsageText: "cowvol " + name + " --key-id ID|ARN|alias/NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key-id", Usage: "the key, by ID, ARN or alias"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			id := c.String("key-id")
			if id == "" {
				return usageErrorf("%s: --key-id is required", name)
			}
			cl := client(c)
			defer cl.Close()
			return opError(op, cl.SetKeyEnabled(c.Context, id, enabled))
		},
	}
}
