package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

func createSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "create-snapshot",
		Usage: "snapshot a volume (as aws ec2 create-snapshot): instant; the data moves to snapshot storage in the background",
		UsageText: "cowvol create-snapshot --volume-id ID [--description D] [--tag k=v ...] [--outpost-arn ARN]\n" +
			"   [--freeze MOUNTPOINT [--freeze-timeout 30s]] [--wait] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to snapshot"},
			&cli.StringFlag{Name: "description", Usage: "up to 255 characters"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "outpost-arn", Usage: "store the snapshot on this host's Outpost (its local snapshot store)"},
			&cli.StringFlag{Name: "freeze", Usage: "freeze the file system mounted at `MOUNTPOINT` (FIFREEZE) around the snapshot, then always thaw it (FITHAW); needs root"},
			&cli.StringFlag{Name: "freeze-timeout", Value: "30s",
				Usage: "with --freeze: give up on the request after `SECONDS` (or a duration: 90s, 2m), thaw and exit 255; " +
					"bounds the request instead of --cli-read-timeout while the file system is frozen"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the snapshot is completed, then print it"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check the request without creating anything"},
		},
		Action: createSnapshot,
	}
}

// snapshotFreezer is what --freeze uses; tests replace it.
var snapshotFreezer = kernelFreezer

func createSnapshot(c *cli.Context) error {
	return createSnapshotWith(c, snapshotFreezer)
}

func createSnapshotWith(c *cli.Context, fz fsFreezer) error {
	if err := noArgs(c); err != nil {
		return err
	}
	in := control.CreateSnapshotInput{
		VolumeID:    c.String("volume-id"),
		Description: c.String("description"),
		OutpostArn:  c.String("outpost-arn"),
		DryRun:      c.Bool("dry-run"),
	}
	if in.VolumeID == "" {
		return usageErrorf("create-snapshot: --volume-id is required")
	}
	var err error
	if in.Tags, err = tagFlag(c); err != nil {
		return err
	}
	dir, bound, err := freezeFlags(c, in.DryRun)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	var snap control.Snapshot
	if dir == "" {
		snap, err = cl.CreateSnapshot(c.Context, in)
		err = opError("CreateSnapshot", err)
	} else {
		snap, err = createFrozen(c, fz, dir, bound, in)
	}
	if err != nil {
		if snap.SnapshotID != "" {
			// The snapshot was made but the thaw failed: show both.
			if perr := printResult(c, snapshotOutput(snap)); perr != nil {
				return errors.Join(err, perr)
			}
		}
		return err
	}
	if c.Bool("wait") {
		final, err := waitSnapshots(c, cl, []string{snap.SnapshotID})
		if err != nil {
			return err
		}
		if len(final) != 1 {
			return fmt.Errorf("snapshot %s vanished while waiting", snap.SnapshotID)
		}
		snap = final[0]
	}
	return printResult(c, snapshotOutput(snap))
}

// createFrozen calls CreateSnapshot with the file system mounted at dir
// frozen, bounded by bound rather than the read timeout: a daemon that
// does not answer must not keep every writer of the file system waiting.
// Past the bound it gives up, thaws and returns a *freezeTimeoutError.
func createFrozen(c *cli.Context, fz fsFreezer, dir string, bound time.Duration, in control.CreateSnapshotInput) (control.Snapshot, error) {
	opts, _ := clientOptions(c)
	opts.ReadTimeout = 0
	cl := control.NewClientWith(globalString(c, "socket"), opts)
	defer cl.Close()
	var (
		snap     control.Snapshot
		timedOut bool
	)
	err := fz.whileFrozen(dir, func() error {
		ctx, cancel := context.WithTimeout(c.Context, bound)
		defer cancel()
		var err error
		snap, err = cl.CreateSnapshot(ctx, in)
		timedOut = err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && c.Context.Err() == nil
		return opError("CreateSnapshot", err)
	})
	if timedOut {
		fe := &freezeTimeoutError{dir: dir, volume: in.VolumeID, bound: bound, socket: globalString(c, "socket")}
		var te *thawError
		if errors.As(err, &te) {
			fe.thaw = te
		}
		return snap, fe
	}
	return snap, err
}

// freezeFlags reads --freeze and --freeze-timeout: the mount point to
// freeze, "" for none (a dry run changes nothing, the file system's state
// included), and how long it may stay frozen.
func freezeFlags(c *cli.Context, dryRun bool) (dir string, bound time.Duration, err error) {
	if bound, err = timeoutFlag(c, "freeze-timeout"); err != nil {
		return "", 0, err
	}
	if bound == 0 {
		return "", 0, usageErrorf("create-snapshot: --freeze-timeout must be more than 0: every writer of a frozen file system waits")
	}
	if dryRun {
		return "", bound, nil
	}
	return c.String("freeze"), bound, nil
}

// freezeTimeoutError: CreateSnapshot did not answer within
// --freeze-timeout while the file system was frozen. The CLI gave up and
// thawed it; the daemon may still make the snapshot, after the thaw.
type freezeTimeoutError struct {
	dir, volume, socket string
	bound               time.Duration
	thaw                *thawError // the thaw failed too
}

func (e *freezeTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cowvol: CreateSnapshot: the cowvol daemon at %s did not answer within %v (--freeze-timeout) while %s was frozen; ",
		e.socket, e.bound, e.dir)
	if e.thaw == nil {
		fmt.Fprintf(&b, "cowvol stopped waiting and thawed %s.\n", e.dir)
	} else {
		fmt.Fprintf(&b, "cowvol stopped waiting, but the thaw failed: %v\n%s may still be frozen: thaw it with `fsfreeze --unfreeze %s`.\n",
			e.thaw, e.dir, e.dir)
	}
	socket := ""
	if e.socket != control.DefaultSocket {
		socket = " --socket " + e.socket
	}
	fmt.Fprintf(&b, "The snapshot may or may not have been created, and if it was, perhaps after the thaw "+
		"(then it is crash-consistent, as without --freeze); check with:\n  cowvol%s describe-snapshots --filter volume-id=%s", socket, e.volume)
	return b.String()
}

// ExitCode is the aws CLI's for a request that timed out.
func (e *freezeTimeoutError) ExitCode() int { return exitTimeout }
