package main

import (
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The global options (--socket, the timeouts, --query, --output) may come
// before the verb or after it, as aws takes its global options anywhere:
// `cowvol --socket S describe-volumes` and `cowvol describe-volumes
// --socket S` are the same. Before the verb they are the app's flags, with
// their environment variables and defaults; every verb has a hidden copy of
// each, without either. Given on both sides, the one after the verb wins.

// globalFlags are the app's global options.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "socket",
			Usage:   "the daemon's control socket",
			EnvVars: []string{"COWVOL_SOCKET"},
			Value:   control.DefaultSocket,
		},
		&cli.StringFlag{
			Name:    "cli-connect-timeout",
			Usage:   "give up connecting to the daemon after `SECONDS` (or a duration: 90s, 2m); 0: never",
			EnvVars: []string{"COWVOL_CLI_CONNECT_TIMEOUT"},
			Value:   "60",
		},
		&cli.StringFlag{
			Name:    "cli-read-timeout",
			Usage:   "give up waiting for each answer of the daemon after `SECONDS` (or a duration: 90s, 2m); 0: never",
			EnvVars: []string{"COWVOL_CLI_READ_TIMEOUT"},
			Value:   "60",
		},
		&cli.StringFlag{
			Name:  "query",
			Usage: "print only this part of the answer: a JMESPath subset, as aws --query (`EXPR`: VolumeId, Volumes[0].VolumeId, Volumes[*].[VolumeId,State])",
		},
		&cli.StringFlag{
			Name:    "output",
			Usage:   "`FORMAT` of the answer: json, or text (as aws --output text: tab-separated, for shell variables)",
			EnvVars: []string{"COWVOL_OUTPUT"},
			Value:   outputJSON,
		},
	}
}

// withGlobalFlags adds hidden copies of the global options named to cmd
// and its subcommands, so that they may follow the verb.
func withGlobalFlags(cmd *cli.Command, names ...string) {
	for _, n := range names {
		cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: n, Hidden: true})
	}
	for _, sub := range cmd.Subcommands {
		withGlobalFlags(sub, names...)
	}
}

// globalString is the value of global option name: given after the verb
// (the innermost verb first), else before it (or from the environment,
// or the default).
func globalString(c *cli.Context, name string) string {
	var root *cli.Context
	for _, cc := range c.Lineage() {
		if cc.Command != nil {
			root = cc
		}
	}
	for _, cc := range c.Lineage() {
		if cc == root || cc.Command == nil {
			continue
		}
		if slices.Contains(cc.LocalFlagNames(), name) {
			return cc.String(name)
		}
	}
	if root == nil {
		return c.String(name)
	}
	return root.String(name)
}
