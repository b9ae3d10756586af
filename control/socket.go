package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ListenUnix listens on the unix socket path for the daemon. It creates
// the parent directory (0755) if missing and replaces a stale socket left
// by a daemon that died, but it never removes anything that is not a
// socket, nor a socket another process still answers on.
//
// The socket is made 0666: anyone may connect, and the server decides what
// each peer may do by the credentials the kernel gives for it (see
// Policy), answering the refused with UnauthorizedOperation rather than
// leaving them with "permission denied". An administrator who wants the
// file system to keep others out too can create the directory with a
// tighter mode; it is left as found.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("control socket: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("control socket: %s exists and is not a socket; refusing to replace it", path)
	default:
		conn, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			conn.Close()
			return nil, fmt.Errorf("control socket: another daemon is listening on %s", path)
		}
		if !errors.Is(derr, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket: cannot tell whether %s is in use: %w", path, derr)
		}
		// Nobody listens: a stale socket.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control socket: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Between bind and chmod the socket has the umask's mode: at most
	// what is granted next.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}
