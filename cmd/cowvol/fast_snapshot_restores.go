package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// enable-fast-snapshot-restores, disable-fast-snapshot-restores and
// describe-fast-snapshot-restores, as aws ec2's.

func fastSnapshotRestoresCommand(name, op, usage string, enable bool) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: "cowvol " + name + " --availability-zones ZONE ... --source-snapshot-ids ID ... [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "availability-zones", Usage: "the daemon's zone (describe-availability-zones), by name or ID"},
			&cli.StringSliceFlag{Name: "source-snapshot-ids", Usage: "snapshot IDs (repeatable, comma-separated, or space-separated after the flag)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without changing anything"},
		},
		Action: func(c *cli.Context) error {
			in := control.FastSnapshotRestoresInput{AvailabilityZones: splitCommas(c.StringSlice("availability-zones")), DryRun: c.Bool("dry-run")}
			var err error
			if in.SnapshotIDs, err = idListFlag(c, "source-snapshot-ids"); err != nil {
				return err
			}
			switch {
			case len(in.AvailabilityZones) == 0:
				return usageErrorf("%s: --availability-zones is required", name)
			case len(in.SnapshotIDs) == 0:
				return usageErrorf("%s: --source-snapshot-ids is required", name)
			}
			cl := client(c)
			defer cl.Close()
			call := cl.DisableFastSnapshotRestores
			if enable {
				call = cl.EnableFastSnapshotRestores
			}
			res, err := call(c.Context, in)
			if err != nil {
				return opError(op, err)
			}
			out := fastRestoresResultJSON{Successful: []fastSnapshotRestoreJSON{}, Unsuccessful: []fastRestoreErrorJSON{}}
			for _, f := range res.Successful {
				out.Successful = append(out.Successful, fastSnapshotRestoreOutput(f))
			}
			for _, u := range res.Unsuccessful {
				e := fastRestoreErrorJSON{SnapshotID: u.SnapshotID}
				for _, se := range u.Errors {
					e.Errors = append(e.Errors, fastRestoreStateErrorJSON{AvailabilityZone: se.AvailabilityZone, Error: apiErrorJSON{Code: se.Code, Message: se.Message}})
				}
				out.Unsuccessful = append(out.Unsuccessful, e)
			}
			return printResult(c, out)
		},
	}
}

func enableFastSnapshotRestoresCommand() *cli.Command {
	return fastSnapshotRestoresCommand("enable-fast-snapshot-restores", "EnableFastSnapshotRestores",
		"enable fast snapshot restores in the daemon's zone: volumes created from the snapshot, once enabled, hydrate at full speed and are creating until fully local (as aws ec2 enable-fast-snapshot-restores)", true)
}

func disableFastSnapshotRestoresCommand() *cli.Command {
	return fastSnapshotRestoresCommand("disable-fast-snapshot-restores", "DisableFastSnapshotRestores",
		"disable fast snapshot restores in the daemon's zone (as aws ec2 disable-fast-snapshot-restores)", false)
}

func describeFastSnapshotRestoresCommand() *cli.Command {
	return &cli.Command{
		Name:  "describe-fast-snapshot-restores",
		Usage: "list snapshots' fast restore states: enabling, optimizing, enabled, disabling, disabled (as aws ec2 describe-fast-snapshot-restores)",
		UsageText: "cowvol describe-fast-snapshot-restores [--filter NAME=V1,V2 ...] [--filters Name=NAME,Values=V1,V2 ...]\n" +
			"   [--max-results N] [--next-token T] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Usage: "`NAME=V1,V2`: availability-zone, availability-zone-id, owner-id, snapshot-id, state; values take * and ?"},
			&cli.StringSliceFlag{Name: "filters", Usage: "aws shorthand `Name=NAME,Values=V1,V2`"},
			&cli.Int64Flag{Name: "max-results", Usage: "at most this many (5 to 200) and a NextToken"},
			&cli.StringFlag{Name: "next-token", Usage: "the page after this token"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without answering it"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			in := control.DescribeFastSnapshotRestoresInput{MaxResults: c.Int64("max-results"), NextToken: c.String("next-token"), DryRun: c.Bool("dry-run")}
			var err error
			if in.Filters, err = filterFlags(c); err != nil {
				return err
			}
			cl := client(c)
			defer cl.Close()
			res, err := cl.DescribeFastSnapshotRestores(c.Context, in)
			if err != nil {
				return opError("DescribeFastSnapshotRestores", err)
			}
			out := struct {
				FastSnapshotRestores []fastSnapshotRestoreJSON `json:"FastSnapshotRestores"`
				NextToken            string                    `json:"NextToken,omitempty"`
			}{FastSnapshotRestores: []fastSnapshotRestoreJSON{}, NextToken: res.NextToken}
			for _, f := range res.FastSnapshotRestores {
				out.FastSnapshotRestores = append(out.FastSnapshotRestores, fastSnapshotRestoreOutput(f))
			}
			return printResult(c, out)
		},
	}
}

// fastSnapshotRestoreJSON is a snapshot's state as aws prints it.
type fastSnapshotRestoreJSON struct {
	SnapshotID            string `json:"SnapshotId"`
	AvailabilityZone      string `json:"AvailabilityZone"`
	AvailabilityZoneID    string `json:"AvailabilityZoneId"`
	State                 string `json:"State"`
	StateTransitionReason string `json:"StateTransitionReason"`
	OwnerID               string `json:"OwnerId"`
	EnablingTime          string `json:"EnablingTime,omitempty"`
	OptimizingTime        string `json:"OptimizingTime,omitempty"`
	EnabledTime           string `json:"EnabledTime,omitempty"`
	DisablingTime         string `json:"DisablingTime,omitempty"`
	DisabledTime          string `json:"DisabledTime,omitempty"`
}

type fastRestoresResultJSON struct {
	Successful   []fastSnapshotRestoreJSON `json:"Successful"`
	Unsuccessful []fastRestoreErrorJSON    `json:"Unsuccessful"`
}

type fastRestoreErrorJSON struct {
	SnapshotID string                      `json:"SnapshotId"`
	Errors     []fastRestoreStateErrorJSON `json:"FastSnapshotRestoreStateErrors"`
}

type fastRestoreStateErrorJSON struct {
	AvailabilityZone string       `json:"AvailabilityZone"`
	Error            apiErrorJSON `json:"Error"`
}

type apiErrorJSON struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// timeOf prints a time as the other verbs do; absent, as nothing.
func timeOf(t *control.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.String()
}

func fastSnapshotRestoreOutput(f control.FastSnapshotRestore) fastSnapshotRestoreJSON {
	return fastSnapshotRestoreJSON{SnapshotID: f.SnapshotID, AvailabilityZone: f.AvailabilityZone, AvailabilityZoneID: f.AvailabilityZoneID,
		State: f.State, StateTransitionReason: f.StateTransitionReason, OwnerID: f.OwnerID,
		EnablingTime: timeOf(f.EnablingTime), OptimizingTime: timeOf(f.OptimizingTime), EnabledTime: timeOf(f.EnabledTime),
		DisablingTime: timeOf(f.DisablingTime), DisabledTime: timeOf(f.DisabledTime)}
}
