package systemd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// The variables systemd sets for a service with WatchdogSec=.
const (
	EnvWatchdogUSec = "WATCHDOG_USEC" // the watchdog timeout in µs
	EnvWatchdogPID  = "WATCHDOG_PID"  // the pid expected to ping
)

// WatchdogInterval returns the service watchdog's timeout from
// WATCHDOG_USEC, and true when it applies to this process: the variable is
// a positive number of microseconds, and WATCHDOG_PID, if set, is our pid.
// Anything else (not under systemd, no WatchdogSec=, a value systemd would
// never set) is no watchdog: 0, false. The variables are left in place, so
// that a re-executed supervisor (same pid) finds them again; ChildEnv
// keeps them from a child.
func WatchdogInterval() (time.Duration, bool) {
	return watchdogInterval(os.LookupEnv, os.Getpid())
}

func watchdogInterval(lookup func(string) (string, bool), pid int) (time.Duration, bool) {
	text, ok := lookup(EnvWatchdogUSec)
	if !ok {
		return 0, false
	}
	usec, err := strconv.ParseInt(text, 10, 64)
	if err != nil || usec <= 0 || usec > int64(time.Duration(1<<63-1)/time.Microsecond) {
		return 0, false
	}
	if pidText, ok := lookup(EnvWatchdogPID); ok {
		if p, err := strconv.Atoi(pidText); err != nil || p != pid {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}

// Watchdog pings the service watchdog (WatchdogPing) at once and then every
// interval/2, until ctx ends; it returns ctx's error. interval is what
// WatchdogInterval returned. When alive is not nil it is asked before each
// ping, and a false answer skips that ping, so that a supervisor that can
// no longer do its job (say, it cannot get its serving child running)
// stops vouching for itself and systemd, after interval without a ping,
// kills it (WatchdogSignal=, SIGABRT) and restarts it with its fds. A
// failed ping is not fatal: it is retried at the next tick, and the last
// error is returned with ctx's when Watchdog ends.
//
// Watchdog blocks: the caller runs it in a goroutine it owns and stops it
// by cancelling ctx.
func Watchdog(ctx context.Context, interval time.Duration, alive func() bool) error {
	if interval <= 0 {
		return fmt.Errorf("watchdog interval %v: want a positive duration", interval)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	period := interval / 2
	if period <= 0 {
		period = interval
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var lastErr error
	for {
		if alive == nil || alive() {
			lastErr = WatchdogPing()
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last ping: %v)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
