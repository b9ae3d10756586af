package systemd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors a caller may want to tell apart.
var (
	// ErrBadNotifySocket: $NOTIFY_SOCKET is neither an absolute path nor an
	// abstract socket name starting with '@'.
	ErrBadNotifySocket = errors.New("unsupported NOTIFY_SOCKET")
	// ErrMessageTooLong: the message exceeds what systemd reads in one
	// datagram (MaxMessage); systemd would drop it.
	ErrMessageTooLong = errors.New("notification message too long")
	// ErrTooManyFDs: more fds than one message can carry (MaxFDs).
	ErrTooManyFDs = errors.New("too many file descriptors for one notification")
	// ErrBadFDName: an fd name systemd would refuse (see StoreFDs).
	ErrBadFDName = errors.New("invalid fd name")
	// ErrBadEnvironment: a LISTEN_* variable that systemd would never set.
	ErrBadEnvironment = errors.New("invalid LISTEN_* environment")
)

const (
	// EnvNotifySocket names the notification socket's address.
	EnvNotifySocket = "NOTIFY_SOCKET"

	// MaxMessage is the longest message systemd reads from the socket
	// (PIPE_BUF in systemd 252; larger datagrams are dropped whole).
	MaxMessage = 4096
	// MaxFDs is the most fds one message carries (the kernel's SCM_MAX_FD).
	MaxFDs = 253

	// sendTimeout bounds a send to a service manager that does not read
	// its socket, so that a wedged PID 1 cannot hang the caller.
	sendTimeout = 5 * time.Second
)

// Notify sends state, one or more newline-separated VAR=value assignments
// (see sd_notify(3)), to the service manager. Without $NOTIFY_SOCKET (not
// started by systemd, or by systemd without Type=notify) it does nothing
// and returns nil. It never unsets $NOTIFY_SOCKET: the supervisor notifies
// for its whole life, and across re-executing itself.
func Notify(state string) error {
	return NotifyWithFDs(state)
}

// NotifyWithFDs is Notify with files attached as SCM_RIGHTS: the receiver
// gets new fds for the same open files (same offset, flags and locks). The
// files stay open and owned by the caller, who must not close them before
// the call returns. Without $NOTIFY_SOCKET it does nothing and returns nil.
func NotifyWithFDs(state string, files ...*os.File) error {
	addr := os.Getenv(EnvNotifySocket)
	if addr == "" {
		return nil
	}
	if err := send(addr, state, files); err != nil {
		return fmt.Errorf("notify systemd (%s): %w", firstLine(state), err)
	}
	return nil
}

// send writes state, with files as SCM_RIGHTS, to the socket at addr.
func send(addr, state string, files []*os.File) error {
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return fmt.Errorf("%w: %q (want an absolute path or @name)", ErrBadNotifySocket, addr)
	}
	if len(state) > MaxMessage {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(state), MaxMessage)
	}
	if len(files) > MaxFDs {
		return fmt.Errorf("%w: %d, at most %d", ErrTooManyFDs, len(files), MaxFDs)
	}
	var oob []byte
	if len(files) > 0 {
		fds, err := rawFDs(files)
		if err != nil {
			return err
		}
		oob = unix.UnixRights(fds...)
	}
	err := sendDatagram(addr, []byte(state), oob)
	runtime.KeepAlive(files) // their fds must stay open until the kernel has duplicated them
	return err
}

// sendDatagram sends one datagram from a new unbound socket, waiting at
// most sendTimeout for room in the receiver's queue.
func sendDatagram(addr string, msg, oob []byte) error {
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(sock)
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	to := &unix.SockaddrUnix{Name: addr} // x/sys/unix maps a leading '@' to the abstract namespace
	for {
		err = unix.Sendmsg(sock, msg, oob, to, unix.MSG_NOSIGNAL)
		// With SO_SNDTIMEO set, a signal (the Go runtime's preemption
		// signal among them) interrupts the call instead of restarting it.
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("%s: not read for %v: %w", addr, sendTimeout, err)
	case err != nil:
		return fmt.Errorf("%s: %w", addr, err)
	}
	return nil
}

// rawFDs returns the fd numbers of files. It reads them through
// SyscallConn rather than File.Fd, because Fd puts a non-blocking file
// into blocking mode, and that mode belongs to the open file description
// that the caller shares with whoever else uses it (a FUSE server, a
// listener's poller).
func rawFDs(files []*os.File) ([]int, error) {
	fds := make([]int, 0, len(files))
	for _, f := range files {
		if f == nil {
			return nil, errors.New("nil file")
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		if err := rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) }); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	return fds, nil
}

// firstLine names a message in errors without repeating all of it.
func firstLine(state string) string {
	if i := strings.IndexByte(state, '\n'); i >= 0 {
		return state[:i] + " ..."
	}
	return state
}
