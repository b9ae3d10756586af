package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/lifecycle"
)

// The daemon's lifecycle policies (Data Lifecycle Manager): kept in
// <data-dir>/lifecycle, run by one scheduler goroutine the server starts
// once the engine is open and stops before it closes the engine.

// flagTestLifecycleMinutes is test-only: it lets policies run every few
// minutes (IntervalUnit MINUTES, crons firing every minute), where DLM's
// shortest interval is an hour, and makes the scheduler look for due work
// every second. Hidden from --help; never for production.
const flagTestLifecycleMinutes = "test-lifecycle-minutes"

// lifecycleFlags are the daemon's flags for lifecycle policies.
func lifecycleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagTestLifecycleMinutes, Hidden: true,
			Usage: "(tests only) accept lifecycle policies that run every minute"},
	}
}

// lifecycleDir is where the policies and the scheduler's progress live.
func lifecycleDir(dataDir string) string { return filepath.Join(dataDir, "lifecycle") }

// startLifecycle opens the policies and starts their scheduler. stop
// stops it and waits for it (a pass under way finishes first).
func startLifecycle(cfg daemonConfig, eng *cow.Engine, log *slog.Logger) (*lifecycle.Manager, func(), error) {
	m, err := lifecycle.Open(lifecycleDir(cfg.dataDir), lifecycle.Limits{MinuteIntervals: cfg.testLifecycleMinutes}, lifecycleClock(log))
	if err != nil {
		return nil, nil, err
	}
	// Retention deletes through sc.DeleteSnapshot, the engine's
	// DeleteSnapshot when nil: a Recycle Bin that must catch those
	// deletions and does not live in the engine is wired in here.
	sc := lifecycle.Config{Engine: eng, AccountID: cfg.accountID, Logger: log}
	if cfg.testLifecycleMinutes {
		sc.Tick = time.Second
		log.Warn("--" + flagTestLifecycleMinutes + " is set: lifecycle policies may run every minute (tests only)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lifecycle.NewScheduler(m, sc).Run(ctx)
	}()
	return m, func() { cancel(); <-done }, nil
}

// envLifecycleClock names a file for an injection point of the tests: the
// scheduler's clock reads a time (RFC 3339) from it and runs on from that
// time since the file was last written, so that a test moves the
// lifecycle policies' time by rewriting it (never waiting an hour, or a
// minute, for a schedule). Without the variable: the real clock.
const envLifecycleClock = "COWVOL_TEST_LIFECYCLE_CLOCK"

// lifecycleClock is the scheduler's clock: nil (the real one) unless
// envLifecycleClock is set.
func lifecycleClock(log *slog.Logger) func() time.Time {
	path := os.Getenv(envLifecycleClock)
	if path == "" {
		return nil
	}
	log.Warn(envLifecycleClock + " is set: lifecycle policies run on a test clock")
	return func() time.Time {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Now()
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return time.Now()
		}
		base, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
		if err != nil {
			return time.Now()
		}
		return base.Add(time.Since(fi.ModTime()))
	}
}
