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
			"   [--freeze MOUNTPOINT ... [--freeze-timeout 30s]] [--wait] [--dry-run]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "volume-id", Usage: "the volume to snapshot"},
			&cli.StringFlag{Name: "description", Usage: "up to 255 characters"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: "outpost-arn", Usage: "store the snapshot on this host's Outpost (its local snapshot store)"},
			&cli.StringSliceFlag{Name: "freeze", Usage: "freeze the file system mounted at `MOUNTPOINT` (FIFREEZE) around the snapshot, then always thaw it (FITHAW); " +
				"repeatable; each must be a file system on a loop device attached to the volume; needs root"},
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
	dirs, bound, err := freezeFlags(c)
	if err != nil {
		return err
	}
	if len(dirs) > 0 && fz.check != nil {
		sc := freezeScope{verb: c.Command.Name, volumeIDs: []string{in.VolumeID}, socket: globalString(c, "socket")}
		if err := fz.check(dirs, sc); err != nil {
			return err
		}
	}
	cl := client(c)
	defer cl.Close()
	var snap control.Snapshot
	if len(dirs) == 0 || in.DryRun { // a dry run changes nothing, the file systems' state included
		snap, err = cl.CreateSnapshot(c.Context, in)
		err = opError("CreateSnapshot", err)
	} else {
		err = createFrozen(c, fz, dirs, bound, freezeCall{op: "CreateSnapshot", volumeIDs: []string{in.VolumeID},
			call: func(ctx context.Context, cl *control.Client) (err error) {
				snap, err = cl.CreateSnapshot(ctx, in)
				return err
			}})
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

// freezeCall is the request made while file systems are frozen: op names
// it in errors, volumeIDs are the volumes it snapshots.
type freezeCall struct {
	op        string
	volumeIDs []string
	call      func(ctx context.Context, cl *control.Client) error
}

// createFrozen makes fc's request with the file systems mounted at dirs
// frozen, bounded by bound rather than the read timeout: a daemon that
// does not answer must not keep every writer of the file systems waiting.
// Past the bound it gives up, thaws and returns a *freezeTimeoutError.
func createFrozen(c *cli.Context, fz fsFreezer, dirs []string, bound time.Duration, fc freezeCall) error {
	opts, _ := clientOptions(c)
	opts.ReadTimeout = 0
	cl := control.NewClientWith(globalString(c, "socket"), opts)
	defer cl.Close()
	var timedOut bool
	err := fz.whileFrozen(dirs, func() error {
		ctx, cancel := context.WithTimeout(c.Context, bound)
		defer cancel()
		err := fc.call(ctx, cl)
		timedOut = err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && c.Context.Err() == nil
		return opError(fc.op, err)
	})
	if timedOut {
		fe := &freezeTimeoutError{op: fc.op, dirs: dirs, volumes: fc.volumeIDs, bound: bound, socket: globalString(c, "socket")}
		fe.thaws = thawErrors(err)
		return fe
	}
	return err
}

// freezeFlags reads --freeze and --freeze-timeout: the mount points to
// freeze (none: no --freeze), and how long they may stay frozen.
func freezeFlags(c *cli.Context) (dirs []string, bound time.Duration, err error) {
	if bound, err = timeoutFlag(c, "freeze-timeout"); err != nil {
		return nil, 0, err
	}
	if bound == 0 {
		return nil, 0, usageErrorf("%s: --freeze-timeout must be more than 0: every writer of a frozen file system waits", c.Command.Name)
	}
	for _, d := range c.StringSlice("freeze") {
		if d == "" {
			return nil, 0, usageErrorf("%s: --freeze needs a mount point", c.Command.Name)
		}
		dirs = append(dirs, d)
	}
	return dirs, bound, nil
}

// thawErrors are the failed thaws among err's errors.
func thawErrors(err error) []*thawError {
	var out []*thawError
	var walk func(error)
	walk = func(e error) {
		var te *thawError
		switch x := e.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(e, &te) {
				out = append(out, te)
			}
		}
	}
	walk(err)
	return out
}

// freezeTimeoutError: CreateSnapshot did not answer within
// --freeze-timeout while the file system was frozen. The CLI gave up and
// thawed it; the daemon may still make the snapshot, after the thaw.
type freezeTimeoutError struct {
	op      string // CreateSnapshot, CreateSnapshots
	dirs    []string
	volumes []string
	socket  string
	bound   time.Duration
	thaws   []*thawError // the thaws that failed too
}

func (e *freezeTimeoutError) Error() string {
	var b strings.Builder
	dirs := strings.Join(e.dirs, ", ")
	verb := "was"
	if len(e.dirs) > 1 {
		verb = "were"
	}
	fmt.Fprintf(&b, "cowvol: %s: the cowvol daemon at %s did not answer within %v (--freeze-timeout) while %s %s frozen; ",
		e.op, e.socket, e.bound, dirs, verb)
	if len(e.thaws) == 0 {
		fmt.Fprintf(&b, "cowvol stopped waiting and thawed %s.\n", dirs)
	} else {
		b.WriteString("cowvol stopped waiting, but the thaw failed: ")
		for i, te := range e.thaws {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(te.err.Error())
		}
		b.WriteString("\n")
		for _, te := range e.thaws {
			fmt.Fprintf(&b, "%s may still be frozen: thaw it with `fsfreeze --unfreeze %s`.\n", te.dir, te.dir)
		}
	}
	socket := ""
	if e.socket != control.DefaultSocket {
		socket = " --socket " + e.socket
	}
	b.WriteString("The snapshot may or may not have been created, and if it was, perhaps after the thaw " +
		"(then it is crash-consistent, as without --freeze); check with:")
	for _, v := range e.volumes {
		fmt.Fprintf(&b, "\n  cowvol%s describe-snapshots --filter volume-id=%s", socket, v)
	}
	return b.String()
}

// ExitCode is the aws CLI's for a request that timed out.
func (e *freezeTimeoutError) ExitCode() int { return exitTimeout }
