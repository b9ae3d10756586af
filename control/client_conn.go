package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// TimeoutError: the daemon did not accept the connection, or did not
// answer, within the Client's bound. The daemon may still carry out a
// request it received.
type TimeoutError struct {
	Socket  string
	Op      string        // the operation that waited, e.g. DescribeVolumes
	Connect bool          // connecting timed out, not an answer
	After   time.Duration // the bound that passed
	Err     error         // what the connection reported
}

func (e *TimeoutError) Error() string {
	if e.Connect {
		return fmt.Sprintf("connect timeout: the cowvol daemon at %s did not accept a connection within %v", e.Socket, e.After)
	}
	op := e.Op
	if op == "" {
		op = "the request"
	}
	return fmt.Sprintf("read timeout: the cowvol daemon at %s did not answer %s within %v", e.Socket, op, e.After)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, as a net.Error that timed out does.
func (e *TimeoutError) Timeout() bool { return true }

// dial connects to the control socket within opts.ConnectTimeout and
// bounds the connection's reads by opts.ReadTimeout.
func dial(ctx context.Context, socket string, opts ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: opts.ConnectTimeout}
	conn, err := d.DialContext(ctx, "unix", socket)
	switch {
	case err == nil:
	case ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, &TimeoutError{Socket: socket, Connect: true, After: opts.ConnectTimeout, Err: err}
	default:
		return nil, &UnreachableError{Socket: socket, Err: err}
	}
	if opts.ReadTimeout <= 0 {
		return conn, nil
	}
	return &readTimeoutConn{Conn: conn, socket: socket, timeout: opts.ReadTimeout}, nil
}

// readTimeoutConn bounds each wait for the daemon's bytes, as the aws
// CLI's read timeout bounds each socket read: writing the request and
// every read push the read deadline timeout into the future, so a read
// fails once the daemon has sent nothing for that long.
type readTimeoutConn struct {
	net.Conn
	socket  string
	timeout time.Duration
}

func (c *readTimeoutConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *readTimeoutConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = &TimeoutError{Socket: c.socket, After: c.timeout, Err: err}
	}
	return n, err
}

// transportError is what a call returns when the request or its answer
// did not get through: the caller's own deadline or cancellation, an
// unreachable socket, a timeout (named after op), or anything else
// wrapped with op.
func transportError(ctx context.Context, op string, err error) error {
	var (
		ue *UnreachableError
		te *TimeoutError
	)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case errors.As(err, &ue):
		return ue
	case errors.As(err, &te):
		named := *te
		named.Op = op
		return &named
	}
	return fmt.Errorf("%s: %w", op, err)
}
