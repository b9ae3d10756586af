package control

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"github.com/cowvol/cowvol/cow"
)

// Backend is what the server needs from the engine; *cow.Engine
// satisfies it. Errors wrap cow's sentinel errors.
type Backend interface {
	CreateVolume(ctx context.Context, p cow.CreateVolumeParams) (cow.VolumeInfo, error)
	// DescribeVolumes returns every volume, sorted by ID.
	DescribeVolumes(ctx context.Context) ([]cow.VolumeInfo, error)
	DeleteVolume(ctx context.Context, id string) error
	CreateSnapshot(ctx context.Context, p cow.CreateSnapshotParams) (cow.SnapshotInfo, error)
	// DescribeSnapshots returns every snapshot, sorted by ID.
	DescribeSnapshots(ctx context.Context) ([]cow.SnapshotInfo, error)
	// SnapshotInfo describes one snapshot (cow.ErrSnapshotNotFound if
	// there is none with that ID).
	SnapshotInfo(id string) (cow.SnapshotInfo, error)
	DeleteSnapshot(ctx context.Context, id string) error
	// OutpostArn is the ARN of the Outpost the daemon is, or "".
	OutpostArn() string
}

var _ Backend = (*cow.Engine)(nil)

// Defaults for Options.
const (
	DefaultAccountID        = "000000000000"
	DefaultAvailabilityZone = "local"
	// DefaultSocket is where the daemon listens unless told otherwise.
	DefaultSocket = "/run/cowvol/cowvol.sock"
)

// Options configure a Server.
type Options struct {
	// AccountID is the 12-digit owner of every resource (ownerId).
	// Empty means DefaultAccountID.
	AccountID string
	// AvailabilityZone is reported for every volume, and the only zone
	// CreateVolume accepts. Empty means DefaultAvailabilityZone.
	AvailabilityZone string
	// Logger receives request logs (debug) and internal errors. Nil
	// means slog.Default().
	Logger *slog.Logger
}

// Server answers EC2 Query API requests with a Backend.
type Server struct {
	backend Backend
	account string
	zone    string
	log     *slog.Logger
	actions map[string]actionFunc
}

// actionFunc handles one Action. It returns the answer, an *APIError for
// the client, or any other error, which is logged and answered with
// InternalError.
type actionFunc func(ctx context.Context, p *params) (response, error)

// Log attribute keys.
const (
	logRequestID = "request_id"
	logAction    = "action"
	logStatus    = "status"
	logCode      = "code"
	logDuration  = "duration"
	logErr       = "err"
)

// NewServer returns a server for b.
func NewServer(b Backend, opts Options) *Server {
	s := &Server{
		backend: b,
		account: opts.AccountID,
		zone:    opts.AvailabilityZone,
		log:     opts.Logger,
	}
	if s.account == "" {
		s.account = DefaultAccountID
	}
	if s.zone == "" {
		s.zone = DefaultAvailabilityZone
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "control")
	s.actions = map[string]actionFunc{
		"CreateVolume":    s.createVolume,
		"DescribeVolumes": s.describeVolumes,
		"DeleteVolume":    s.deleteVolume,

		"CreateSnapshot":    s.createSnapshot,
		"DescribeSnapshots": s.describeSnapshots,
		"DeleteSnapshot":    s.deleteSnapshot,
	}
	return s
}

// Handler returns the HTTP handler serving the API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Timeouts and limits of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 10 * time.Second
)

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully (waiting up to 10s for requests in flight) and returns nil.
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("control socket %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done // http.ErrServerClosed
	if err != nil {
		srv.Close()
		return fmt.Errorf("control socket shutdown: %w", err)
	}
	return nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	action := ""
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic while handling a request", logRequestID, reqID, logAction, action,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.writeError(w, reqID, errInternal())
		}
	}()
	var status int
	var code string
	action, status, code = s.serve(w, r, reqID)
	s.log.Debug("request", logRequestID, reqID, logAction, action, logStatus, status, logCode, code,
		logDuration, time.Since(start))
}

// serve handles one request and returns what it did, for the log.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, reqID string) (action string, status int, code string) {
	fail := func(e *APIError) (string, int, string) {
		s.writeError(w, reqID, e)
		return action, e.StatusCode, e.Code
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return fail(&APIError{
			Code:       CodeMethodNotAllowed,
			Message:    fmt.Sprintf("The method %s is not allowed: use GET or POST.", clip(r.Method)),
			StatusCode: http.StatusMethodNotAllowed,
		})
	}
	p, e := readParams(w, r)
	if e != nil {
		return fail(e)
	}
	action, ok := p.get("Action")
	if !ok || action == "" {
		return fail(apiErr(CodeMissingAction, "The request must contain the parameter Action."))
	}
	fn := s.actions[action]
	if fn == nil {
		return fail(apiErr(CodeInvalidAction, "The action %s is not valid for this web service.", clip(action)))
	}
	version, ok := p.get("Version")
	if !ok || version == "" {
		return fail(missingParam("Version"))
	}
	if version != APIVersion {
		return fail(apiErr(CodeNoSuchVersion, "The requested version (%s) of service AmazonEC2 does not exist.", clip(version)))
	}
	resp, err := fn(r.Context(), p)
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			s.log.Error("request failed", logRequestID, reqID, logAction, action, logErr, err)
			ae = errInternal()
		}
		return fail(ae)
	}
	resp.setRequestID(reqID)
	body, err := xml.Marshal(resp)
	if err != nil {
		s.log.Error("cannot encode the answer", logRequestID, reqID, logAction, action, logErr, err)
		return fail(errInternal())
	}
	writeXML(w, reqID, http.StatusOK, body)
	return action, http.StatusOK, ""
}

func (s *Server) writeError(w http.ResponseWriter, reqID string, e *APIError) {
	body, err := xml.Marshal(errorResponse{
		Errors:    []xmlError{{Code: e.Code, Message: e.Message}},
		RequestID: reqID,
	})
	if err != nil { // cannot happen: strings only
		s.log.Error("cannot encode an error answer", logRequestID, reqID, logErr, err)
		body = []byte("<Response><Errors><Error><Code>InternalError</Code></Error></Errors></Response>")
	}
	writeXML(w, reqID, e.StatusCode, body)
}

func writeXML(w http.ResponseWriter, reqID string, status int, body []byte) {
	var b bytes.Buffer
	b.Grow(len(xml.Header) + len(body))
	b.WriteString(xml.Header)
	b.Write(body)
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// backendErr translates an engine error: an *APIError for the client, or
// the error wrapped with op, to be logged and answered InternalError.
func backendErr(op string, err error, volumeID string) error {
	if ae, ok := backendError(err, volumeID); ok {
		return ae
	}
	return fmt.Errorf("%s: %w", op, err)
}
