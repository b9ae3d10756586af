package control

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds an answer the Client reads.
const maxResponseBytes = 64 << 20

// Client calls the daemon's control socket. Its methods return *APIError
// for the daemon's EC2 errors, *UnreachableError when the socket cannot be
// reached and *TimeoutError when the daemon does not connect or answer in
// time. A Client is safe for concurrent use.
type Client struct {
	socket    string
	transport *http.Transport
	http      *http.Client
}

// Default client timeouts: the aws CLI's (--cli-connect-timeout and
// --cli-read-timeout, 60 seconds each).
const (
	DefaultConnectTimeout = 60 * time.Second
	DefaultReadTimeout    = 60 * time.Second
)

// ClientOptions bound how long a Client waits for the daemon. Zero means
// no bound.
type ClientOptions struct {
	// ConnectTimeout bounds connecting to the socket. (A unix socket
	// whose backlog is full refuses at once, so it rarely takes long.)
	ConnectTimeout time.Duration
	// ReadTimeout bounds every wait for the daemon's bytes: from the
	// request written, or the answer's previous bytes read, to the next
	// ones. It bounds each request of a waiter, not the waiter.
	ReadTimeout time.Duration
}

// NewClient returns a client of the daemon listening on socketPath, with
// the default timeouts.
func NewClient(socketPath string) *Client {
	return NewClientWith(socketPath, ClientOptions{ConnectTimeout: DefaultConnectTimeout, ReadTimeout: DefaultReadTimeout})
}

// NewClientWith returns a client of the daemon listening on socketPath,
// with the timeouts of opts.
func NewClientWith(socketPath string, opts ClientOptions) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, socketPath, opts)
		},
		// A connection per request: an idle kept-alive connection
		// would sit in a read the read timeout bounds.
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	return &Client{socket: socketPath, transport: tr, http: &http.Client{Transport: tr}}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// UnreachableError: the control socket could not be connected to (no
// daemon, wrong path, no permission).
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cowvol daemon at %s: %v", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// call POSTs action with form and decodes a successful answer into out.
func (c *Client) call(ctx context.Context, action string, form url.Values, out any) error {
	form.Set("Action", action)
	form.Set("Version", APIVersion)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://cowvol/", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return transportError(ctx, action, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		var er errorResponse
		if err := xml.Unmarshal(body, &er); err != nil || len(er.Errors) == 0 {
			return fmt.Errorf("%s: unexpected answer (HTTP %d): %.200q", action, resp.StatusCode, body)
		}
		reqID := er.RequestID
		if reqID == "" {
			reqID = resp.Header.Get("X-Amzn-RequestId")
		}
		return &APIError{
			Code:       er.Errors[0].Code,
			Message:    er.Errors[0].Message,
			RequestID:  reqID,
			StatusCode: resp.StatusCode,
		}
	}
	if err := xml.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", action, err)
	}
	return nil
}

// form helpers: flattened, 1-based lists as EC2 expects them.

func setInt(f url.Values, name string, v int64) {
	if v != 0 {
		f.Set(name, strconv.FormatInt(v, 10))
	}
}

func setBool(f url.Values, name string, v bool) {
	if v {
		f.Set(name, "true")
	}
}

func setString(f url.Values, name, v string) {
	if v != "" {
		f.Set(name, v)
	}
}

func setList(f url.Values, prefix string, vs []string) {
	for i, v := range vs {
		f.Set(member(prefix, i+1), v)
	}
}

func setTagSpecification(f url.Values, resourceType string, tags []Tag) {
	if len(tags) == 0 {
		return
	}
	f.Set("TagSpecification.1.ResourceType", resourceType)
	for i, t := range tags {
		m := member("TagSpecification.1.Tag", i+1)
		f.Set(m+".Key", t.Key)
		f.Set(m+".Value", t.Value)
	}
}

func setFilters(f url.Values, filters []Filter) {
	for i, flt := range filters {
		m := member("Filter", i+1)
		f.Set(m+".Name", flt.Name)
		setList(f, m+".Value", flt.Values)
	}
}
