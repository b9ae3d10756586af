package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/control"
)

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:  "wait",
		Usage: "wait until resources reach a state (as aws ec2 wait)",
		Subcommands: append([]*cli.Command{{
			Name:      "snapshot-completed",
			Usage:     "wait until every snapshot is completed; a progress bar on a terminal, plain lines otherwise",
			UsageText: "cowvol wait snapshot-completed --snapshot-ids ID [ID ...] [--interval 500ms] [--timeout 10m]",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "snapshot-ids", Usage: "the snapshots to wait for"},
				&cli.DurationFlag{Name: "interval", Value: 500 * time.Millisecond, Usage: "how often to ask"},
				&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "give up after"},
			},
			Action: func(c *cli.Context) error {
				ids, err := idListFlag(c, "snapshot-ids")
				if err != nil {
					return err
				}
				if len(ids) == 0 {
					return usageErrorf("wait snapshot-completed: --snapshot-ids is required")
				}
				cl := client(c)
				defer cl.Close()
				_, err = waitSnapshots(c, cl, ids)
				return err
			},
		}}, volumeWaiters()...),
	}
}

// waiterError is how the aws CLI reports a waiter that failed: exit 255.
type waiterError struct{ msg string }

func (e *waiterError) Error() string { return "Waiter SnapshotCompleted failed: " + e.msg }
func (e *waiterError) ExitCode() int { return exitWaiter }

// exitWaiter is the aws CLI's exit code for a failed waiter.
const exitWaiter = 255

// waitSnapshots polls DescribeSnapshots until every snapshot in ids is
// completed, showing progress on stderr, and returns their final state.
func waitSnapshots(c *cli.Context, cl *control.Client, ids []string) ([]control.Snapshot, error) {
	interval, timeout := c.Duration("interval"), c.Duration("timeout")
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	p := newProgress(c.App.ErrWriter)
	deadline := time.Now().Add(timeout)
	for {
		res, err := cl.DescribeSnapshots(c.Context, control.DescribeSnapshotsInput{SnapshotIDs: ids})
		var apiErr *control.APIError
		switch {
		case errors.As(err, &apiErr):
			// As botocore's waiters: an error answer no acceptor
			// expects (e.g. InvalidSnapshot.NotFound) fails the waiter.
			return nil, &waiterError{fmt.Sprintf("An error occurred (%s): %s", apiErr.Code, apiErr.Message)}
		case err != nil:
			return nil, opError("DescribeSnapshots", err)
		}
		p.show(res.Snapshots)
		done := true
		for _, s := range res.Snapshots {
			switch s.Status {
			case "completed":
			case "error":
				return nil, &waiterError{fmt.Sprintf("Waiter encountered a terminal failure state: snapshot %s is in state error: %s", s.SnapshotID, s.StatusMessage)}
			default:
				done = false
			}
		}
		if done {
			return res.Snapshots, nil
		}
		if time.Now().After(deadline) {
			return nil, &waiterError{"Max attempts exceeded"}
		}
		select {
		case <-c.Context.Done():
			return nil, c.Context.Err()
		case <-time.After(min(interval, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// progress shows snapshots' progress: bars redrawn in place on a
// terminal, a plain line per change otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	last  map[string]string
	lines int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, last: map[string]string{}}
	if f, ok := w.(*os.File); ok {
		p.tty = isTerminal(f.Fd())
	}
	return p
}

// isTerminal reports whether fd is a terminal. It is what
// golang.org/x/term's IsTerminal does on Linux (TCGETS succeeds), without
// adding a module for one ioctl.
func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

func (p *progress) show(snaps []control.Snapshot) {
	if !p.tty {
		for _, s := range snaps {
			line := s.Status + " " + s.Progress
			if p.last[s.SnapshotID] != line {
				fmt.Fprintf(p.w, "%s %s\n", s.SnapshotID, line)
				p.last[s.SnapshotID] = line
			}
		}
		return
	}
	if p.lines > 0 {
		fmt.Fprintf(p.w, "\033[%dA", p.lines) // back to the first bar
	}
	const width = 40
	for _, s := range snaps {
		pct := 0
		fmt.Sscanf(s.Progress, "%d%%", &pct)
		filled := pct * width / 100
		fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %4s %s\n", s.SnapshotID,
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), s.Progress, s.Status)
	}
	p.lines = len(snaps)
}
