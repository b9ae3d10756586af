package integration

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWatchdogVouchesForTheServer runs the daemon under a watchdog
// (WATCHDOG_USEC, as systemd sets it for WatchdogSec=) and checks that the
// supervisor pings only while its server is healthy: WATCHDOG=1 arrives
// once it serves; with the server stopped (SIGSTOP: a hang) the supervisor
// says it got no heartbeat and the pings stop; the server resumed, they
// come back.
func TestWatchdogVouchesForTheServer(t *testing.T) {
	requirePrereqs(t)
	const interval = 2 * time.Second
	sd := newFakeSystemd(t)
	sd.env = []string{"WATCHDOG_USEC=" + strconv.FormatInt(interval.Microseconds(), 10)}
	d := newDaemon(t)
	sd.launch(t, d)
	d.waitReady(t)
	waitFor(t, "READY=1 and a watchdog ping", func() bool { return sd.saw("READY=1") && sd.saw("WATCHDOG=1") })
	server := d.serverPID()
	if server == 0 {
		t.Fatal("no server pid")
	}
	before := sd.count("WATCHDOG=1")
	waitFor(t, "more pings while the server is healthy", func() bool { return sd.count("WATCHDOG=1") > before+1 })

	if err := syscall.Kill(server, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(server, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	waitFor(t, "the supervisor to notice the silent server", func() bool {
		return strings.Contains(d.output(), "the server sent no heartbeat within the watchdog timeout")
	})
	// The supervisor vouched for the loop up to one timeout ago: pings may
	// go on for that long, and no longer.
	time.Sleep(interval + interval/2)
	stopped := sd.count("WATCHDOG=1")
	time.Sleep(2 * interval)
	if n := sd.count("WATCHDOG=1"); n != stopped {
		t.Fatalf("%d watchdog pings while the server was stopped", n-stopped)
	}

	resume()
	waitFor(t, "pings once the server is back", func() bool { return sd.count("WATCHDOG=1") > stopped })
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !sd.saw("STOPPING=1") {
		t.Fatal("no STOPPING=1")
	}
}
