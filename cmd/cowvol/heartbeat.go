package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"
)

// The watchdog vouches for the serving side, not only for the supervisor:
// under systemd's watchdog (WatchdogSec=) the supervisor asks its server
// for a heartbeat (envServeHeartbeat, a period) and the server, after its
// "ready" line, writes an "alive" line on the same pipe each period while
// it is healthy: its engine answers a query of every volume's state (the
// metadata store and the volume locks respond) within the period. The
// supervisor sends WATCHDOG=1 only while the last heartbeat is younger
// than the watchdog's timeout, so that a server that hangs (a deadlock,
// a stuck metadata store) stops the pings and systemd aborts and restarts
// the whole, handing the mount back. While no server serves (starting,
// restarting after a crash) the supervisor's own crash-loop rules apply
// and it goes on pinging.

// envServeHeartbeat is the heartbeat period, a Go duration (supervisor ->
// server); unset: no heartbeat.
const envServeHeartbeat = "COWVOL_SERVE_HEARTBEAT"

// heartbeatLine is what the server writes each period while healthy.
const heartbeatLine = "alive\n"

// heartbeatPeriod reads envServeHeartbeat (and unsets it: the server runs
// nothing that should see it); 0 when there is none.
func heartbeatPeriod() time.Duration {
	s, ok := os.LookupEnv(envServeHeartbeat)
	if !ok {
		return 0
	}
	os.Unsetenv(envServeHeartbeat)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// startHeartbeat starts the server's heartbeat on w (the ready pipe)
// when the supervisor asked for one, else closes w; the returned stop
// ends it and waits for it (before the engine closes).
func startHeartbeat(w io.WriteCloser, healthy func(context.Context) error, log *slog.Logger) (stop func()) {
	period := heartbeatPeriod()
	if period == 0 {
		w.Close()
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		heartbeat(ctx, w, period, healthy, log)
	}()
	return func() {
		cancel()
		<-done
	}
}

// heartbeat writes heartbeatLine to w every period while healthy answers
// nil within the period, until ctx ends or a write fails (the supervisor
// went away or replaced itself); then it closes w. It is run by the
// server, which owns it and stops it through ctx.
func heartbeat(ctx context.Context, w io.WriteCloser, period time.Duration, healthy func(context.Context) error, log *slog.Logger) {
	defer w.Close()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hctx, cancel := context.WithTimeout(ctx, period)
		err := healthy(hctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("health check failed: no heartbeat to the supervisor (the watchdog stops being pinged)", "err", err)
			}
			continue
		}
		if _, err := io.WriteString(w, heartbeatLine); err != nil {
			return
		}
	}
}

// heartbeatEnv is the server's envServeHeartbeat setting for watchdog
// timeout interval: four heartbeats per timeout.
func heartbeatEnv(interval time.Duration) string {
	return envServeHeartbeat + "=" + (interval / 4).String()
}

// serverHealthy reports whether the server is healthy enough to be
// vouched for: it has a heartbeat younger than timeout, or it does not
// serve (yet). It runs on the supervisor's loop.
func (s *supervisor) serverHealthy(timeout time.Duration, now time.Time) bool {
	if s.child == nil || s.readyAt.IsZero() {
		return true
	}
	last := time.Unix(0, s.serverBeat.Load())
	if last.Before(s.readyAt) {
		last = s.readyAt
	}
	healthy := now.Sub(last) < timeout
	if !healthy && !s.unhealthyLogged {
		s.log.Error("the server sent no heartbeat within the watchdog timeout: no longer pinging the watchdog",
			"server_pid", s.child.Process.Pid, "last_heartbeat", last.Format(time.RFC3339), "timeout", timeout)
	}
	s.unhealthyLogged = !healthy
	return healthy
}
