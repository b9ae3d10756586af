package systemd

import (
	"slices"
	"testing"
)

// TestChildEnv: the variables that address the service manager are kept
// from a child; everything else, including look-alikes, stays in order.
func TestChildEnv(t *testing.T) {
	in := []string{
		"PATH=/usr/bin",
		"NOTIFY_SOCKET=/run/systemd/notify",
		"WATCHDOG_USEC=30000000",
		"WATCHDOG_PID=4242",
		"LISTEN_PID=4242",
		"LISTEN_FDS=3",
		"LISTEN_FDNAMES=fuse:control:lock",
		"NOTIFY_SOCKETS=kept",
		"COWVOL_LOG_LEVEL=debug",
		"FDSTORE=16",
		"LISTEN_PID", // malformed entries are compared by name too
	}
	want := []string{"PATH=/usr/bin", "NOTIFY_SOCKETS=kept", "COWVOL_LOG_LEVEL=debug", "FDSTORE=16"}
	if got := ChildEnv(in); !slices.Equal(got, want) {
		t.Errorf("ChildEnv = %q, want %q", got, want)
	}
	if got := ChildEnv(nil); len(got) != 0 {
		t.Errorf("ChildEnv(nil) = %q", got)
	}
}
