package systemd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// maxStatus bounds the STATUS= text, so that a status built from an error
// message always fits in one message (MaxMessage).
const maxStatus = 1024

// maxFDName is the longest fd name systemd accepts (FDNAME_MAX).
const maxFDName = 255

// Ready tells systemd that start-up (or a reload) is finished: READY=1,
// with STATUS=status when status is not empty. For Type=notify the unit
// becomes active; after RELOADING=1 the reload is over.
func Ready(status string) error {
	if status == "" {
		return Notify("READY=1")
	}
	return Notify("READY=1\nSTATUS=" + statusText(status))
}

// Stopping tells systemd that the service is shutting down: STOPPING=1.
// Send it first thing on SIGTERM, so that the unit shows as deactivating
// while volumes are synced and the mount is waited for.
func Stopping() error {
	return Notify("STOPPING=1")
}

// Status sets the one-line status shown by systemctl status: STATUS=s.
// Newlines and other control characters in s become spaces, and s is cut
// to 1024 bytes, so that any error text can be passed as it is.
func Status(s string) error {
	return Notify("STATUS=" + statusText(s))
}

// Reloading tells systemd that a reload began: RELOADING=1 and
// MONOTONIC_USEC=<now on CLOCK_MONOTONIC>. The unit shows as reloading
// until Ready is sent. Type=notify-reload (systemd 253+) requires the
// timestamp to tell this reload from an earlier one; older systemd ignores it.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("notify systemd (RELOADING=1): CLOCK_MONOTONIC: %w", err)
	}
	usec := ts.Nano() / int64(time.Microsecond)
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// WatchdogPing tells systemd that the service is alive: WATCHDOG=1. See
// Watchdog for a loop that sends it.
func WatchdogPing() error {
	return Notify("WATCHDOG=1")
}

// ExtendTimeout asks systemd for d more from now before the current
// start, stop or reload times out: EXTEND_TIMEOUT_USEC=<d in µs>. It only
// extends, never shortens, and must be repeated before d runs out.
func ExtendTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("extend timeout by %v: want a positive duration", d)
	}
	return Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// StoreFDs hands files to systemd's file-descriptor store under name:
// FDSTORE=1 and FDNAME=name, the files as SCM_RIGHTS. The caller keeps its
// own fds. When systemd restarts the service the new process finds them in
// Files()[name]. The unit needs FileDescriptorStoreMax= at least the number
// of fds stored, or systemd closes the extra ones; one call stores at most
// MaxFDs. A name is 1 to 255 printable ASCII characters other than ':'
// (the separator of LISTEN_FDNAMES); anything else is ErrBadFDName, not
// sent (systemd would store the fds under "stored" instead).
//
// StoreFDs does not send FDPOLL=0: systemd polls each stored fd and drops
// it when it reports POLLHUP or POLLERR, and for cowvol's fds that is
// exactly when they have become useless (fdpoll_test.go asks the kernel):
//   - /dev/fuse reports POLLERR once its connection has ended (unmounted,
//     `umount -l` and released, or aborted in /sys/fs/fuse/connections),
//     and never while the connection lives, with or without a server
//     reading it. A restarted supervisor then finds no "fuse" fd and mounts
//     afresh (clearing the dead mount) instead of adopting a dead
//     connection, and systemd holds no reference to a dead connection until
//     the unit stops. It also reports POLLERR before mount(2) has attached
//     it: store it only after mounting, or systemd drops it at once.
//   - A listening socket (unix or TCP) reports POLLHUP only after someone
//     calls shutdown(2) on it (SHUT_RDWR); closing our own copy does not,
//     so a listener survives the supervisor's death, clients queueing in
//     its backlog until the new supervisor accepts. (Go's UnixListener
//     unlinks its path on Close: call SetUnlinkOnClose(false) on a stored
//     one; listeners made by net.FileListener never unlink.)
//   - A regular file (the data-dir lock) cannot be polled; systemd keeps
//     it without polling.
func StoreFDs(name string, files ...*os.File) error {
	if err := checkFDName(name); err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("store fds %q: no files", name)
	}
	return NotifyWithFDs("FDSTORE=1\nFDNAME="+name, files...)
}

// RemoveFDs asks systemd to close every stored fd named name:
// FDSTOREREMOVE=1 and FDNAME=name. Names that hold no fd are ignored.
func RemoveFDs(name string) error {
	if err := checkFDName(name); err != nil {
		return err
	}
	return Notify("FDSTOREREMOVE=1\nFDNAME=" + name)
}

// checkFDName applies systemd's fdname_is_valid, less the empty name.
func checkFDName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadFDName)
	}
	if len(name) > maxFDName {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadFDName, len(name), maxFDName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("%w: %q: only printable ASCII other than ':'", ErrBadFDName, name)
		}
	}
	return nil
}

// statusText makes s one line of at most maxStatus bytes of valid UTF-8.
func statusText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= maxStatus {
		return s
	}
	cut := maxStatus
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
