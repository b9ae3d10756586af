package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerContext is the http.Server's ConnContext for the unix socket: it
// asks the kernel who is on the other end of c (SO_PEERCRED: pid, uid,
// gid; SO_PEERGROUPS: supplementary groups, both as they were when the
// peer connected) and puts the answer in the connection's context.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return withCaller(ctx, Caller{}, fmt.Errorf("connection from %s is not a unix socket", c.RemoteAddr()))
	}
	caller, err := peerCredentials(uc)
	return withCaller(ctx, caller, err)
}

func peerCredentials(c *net.UnixConn) (Caller, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	var caller Caller
	var opErr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		caller = Caller{Unix: true, PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
		caller.Groups, opErr = peerGroups(int(fd))
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	return caller, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13), growing the buffer when the
// kernel answers ERANGE with the size it needs.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[:size/4], nil
		case errors.Is(errno, unix.ERANGE) && int(size/4) > len(buf):
			buf = make([]uint32, size/4)
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
	}
}
