package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// volumeWaiters are the aws CLI's volume waiters: each polls
// DescribeVolumes until every volume is in its state; a deleted volume
// fails volume-in-use and volume-available, and is what volume-deleted
// waits for (InvalidVolume.NotFound too, as botocore's waiter).
func volumeWaiters() []*cli.Command {
	mk := func(name, waiter, state string) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     "wait until every volume is " + state,
			UsageText: "cowvol wait " + name + " --volume-ids ID [ID ...] [--interval 500ms] [--timeout 10m]",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "volume-ids", Usage: "the volumes to wait for"},
				&cli.DurationFlag{Name: "interval", Value: 500 * time.Millisecond, Usage: "how often to ask"},
				&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "give up after"},
			},
			Action: func(c *cli.Context) error {
				ids, err := idListFlag(c, "volume-ids")
				if err != nil {
					return err
				}
				if len(ids) == 0 {
					return usageErrorf("wait %s: --volume-ids is required", name)
				}
				cl := client(c)
				defer cl.Close()
				return waitVolumes(c, cl, ids, waiter, state)
			},
		}
	}
	return []*cli.Command{
		mk("volume-available", "VolumeAvailable", "available"),
		mk("volume-in-use", "VolumeInUse", "in-use"),
		mk("volume-deleted", "VolumeDeleted", "deleted"),
	}
}

// volumeWaiterError is a failed volume waiter, as the aws CLI reports it.
type volumeWaiterError struct{ waiter, msg string }

func (e *volumeWaiterError) Error() string { return "Waiter " + e.waiter + " failed: " + e.msg }
func (e *volumeWaiterError) ExitCode() int { return exitWaiter }

func waitVolumes(c *cli.Context, cl *control.Client, ids []string, waiter, state string) error {
	interval, timeout := c.Duration("interval"), c.Duration("timeout")
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		res, err := cl.DescribeVolumes(c.Context, control.DescribeVolumesInput{VolumeIDs: ids})
		var apiErr *control.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.Code == control.CodeInvalidVolumeNotFound && state == "deleted":
			return nil
		case errors.As(err, &apiErr):
			return &volumeWaiterError{waiter, fmt.Sprintf("An error occurred (%s): %s", apiErr.Code, apiErr.Message)}
		case err != nil:
			return opError("DescribeVolumes", err)
		}
		done := true
		for _, v := range res.Volumes {
			switch {
			case v.Status == state:
			case v.Status == "deleted":
				return &volumeWaiterError{waiter, fmt.Sprintf("Waiter encountered a terminal failure state: volume %s is deleted", v.VolumeID)}
			default:
				done = false
			}
		}
		if done {
			return nil
		}
		if timeout > 0 && time.Now().After(deadline) {
			return &volumeWaiterError{waiter, "Max attempts exceeded"}
		}
		select {
		case <-c.Context.Done():
			return c.Context.Err()
		case <-time.After(interval):
		}
	}
}
