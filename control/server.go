package control

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
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
	CopySnapshot(ctx context.Context, p cow.CopySnapshotParams) (cow.SnapshotInfo, error)
	// CheckVolumeEncryption and CheckCopySnapshot answer dry runs: the
	// error the real call would give for its encryption parameters (for
	// CopySnapshot, for all of them).
	CheckVolumeEncryption(ctx context.Context, p cow.CreateVolumeParams) error
	CheckCopySnapshot(ctx context.Context, p cow.CopySnapshotParams) error
	// OutpostArn is the ARN of the Outpost the daemon is, or "".
	OutpostArn() string
}

var _ Backend = (*cow.Engine)(nil)

// Defaults for Options.
const (
	DefaultAccountID = cow.DefaultAccountID
	DefaultRegion    = "us-east-1"
	// DefaultAvailabilityZone is the zone of a daemon in DefaultRegion:
	// a daemon's zone is its region and "a" (see ZoneName).
	DefaultAvailabilityZone = DefaultRegion + "a"
	// DefaultSocket is where the daemon listens unless told otherwise.
	DefaultSocket = "/run/cowvol/cowvol.sock"
)

// Options configure a Server.
type Options struct {
	// AccountID is the 12-digit owner of every resource (ownerId).
	// Empty means DefaultAccountID.
	AccountID string
	// AvailabilityZone is reported for every volume, and the only zone
	// CreateVolume accepts. Empty means ZoneName(Region).
	AvailabilityZone string
	// Region is the daemon's region: CopySnapshot copies within it only,
	// DescribeRegions answers it alone. Empty means DefaultRegion.
	Region string
	// Logger receives request logs (debug) and internal errors. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Policy says what peers of a unix socket may do.
	Policy Policy
	// AccessKeys may sign requests on a TCP listener (SigV4). A server
	// without them refuses to serve TCP.
	AccessKeys []AccessKey
	// Keys, if set, is the key manager the KMS API (X-Amz-Target:
	// TrentService.*) serves on the same listeners.
	Keys KeyBackend
	// Profiling serves Go's pprof profiles under /debug/pprof/ on the unix
	// socket, to callers with full access (for `go tool pprof`).
	Profiling bool
	// Metrics, if set, serves the Prometheus metrics at /metrics on the
	// unix socket, to callers with full or read-only access (metrics.go).
	Metrics http.Handler
	// Instance, if set, is this host as an EC2 instance: the volumes
	// CreateSnapshots' InstanceSpecification names (create_snapshots.go).
	// Unset, it is Host's: its instance ID and attached volumes.
	Instance InstanceVolumes
	// Host, if set, attaches volumes to this host's loop devices
	// (AttachVolume, DetachVolume) and refreshes their size after
	// ModifyVolume (host.go). Nil: attachment calls are refused.
	Host Host
	// Lifecycle, if set, keeps the lifecycle policies the DLM API
	// (service dlm, dlm.go) serves on the same listeners.
	Lifecycle LifecyclePolicies
	// ReadHeaderTimeout bounds how long a connection may take to send a
	// request's headers (a stuck or abandoned client is cut off after
	// it). Zero means 10 seconds.
	ReadHeaderTimeout time.Duration
}

// Server answers EC2 Query API requests with a Backend.
type Server struct {
	backend     Backend
	account     string
	zone        string
	zoneID      string
	region      string
	log         *slog.Logger
	policy      Policy
	sigv4       *sigV4Verifier // nil without access keys
	readTimeout time.Duration  // for headers
	profiling   bool
	metrics     http.Handler // nil: no /metrics
	keys        KeyBackend   // nil: no keyring
	ebs         *ebsState    // the EBS direct APIs' tokens and limits
	actions     map[string]action
	instance    InstanceVolumes   // nil: no instance (create_snapshots.go)
	host        Host              // nil: none (host.go)
	lifecycle   LifecyclePolicies // nil: no DLM API (dlm.go)
}

// action is one Action the server answers.
type action struct {
	fn actionFunc
	// readOnly actions change nothing: read-only callers may call them.
	readOnly bool
}

// actionFunc handles one Action. It returns the answer, an *APIError for
// the client, or any other error, which is logged and answered with
// InternalError.
type actionFunc func(ctx context.Context, p *params) (response, error)

// authenticator identifies the caller of a request whose body has been
// read: the transport's half of authorization.
type authenticator func(r *http.Request, body []byte) (Caller, *APIError)

// Log attribute keys.
const (
	logRequestID = "request_id"
	logAction    = "action"
	logStatus    = "status"
	logCode      = "code"
	logDuration  = "duration"
	logErr       = "err"
	logCaller    = "caller"
	logReason    = "reason"
)

// NewServer returns a server for b.
func NewServer(b Backend, opts Options) *Server {
	s := &Server{
		backend:     b,
		account:     opts.AccountID,
		zone:        opts.AvailabilityZone,
		region:      cmp.Or(opts.Region, DefaultRegion),
		log:         opts.Logger,
		policy:      opts.Policy,
		readTimeout: opts.ReadHeaderTimeout,
		profiling:   opts.Profiling,
		metrics:     opts.Metrics,
		keys:        opts.Keys,
		instance:    opts.Instance,
		host:        opts.Host,
		lifecycle:   opts.Lifecycle,
		ebs:         newEBSState(),
	}
	if s.instance == nil && s.host != nil {
		s.instance = hostInstance{s.host}
	}
	if len(opts.AccessKeys) > 0 {
		s.sigv4 = newSigV4Verifier(opts.AccessKeys)
	}
	if s.readTimeout <= 0 {
		s.readTimeout = readHeaderTimeout
	}
	if s.account == "" {
		s.account = DefaultAccountID
	}
	if s.zone == "" {
		s.zone = ZoneName(s.region)
	}
	s.zoneID = ZoneID(s.region)
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "control")
	s.actions = map[string]action{
		"CreateVolume":    {fn: s.createVolume},
		"DescribeVolumes": {fn: s.describeVolumes, readOnly: true},
		"DeleteVolume":    {fn: s.deleteVolume},

		"DescribeVolumeStatus": {fn: s.describeVolumeStatus, readOnly: true},

		"CreateSnapshot":    {fn: s.createSnapshot},
		"DescribeSnapshots": {fn: s.describeSnapshots, readOnly: true},
		"DeleteSnapshot":    {fn: s.deleteSnapshot},
		"CopySnapshot":      {fn: s.copySnapshot},
		"CreateSnapshots":   {fn: s.createSnapshots},

		"ListSnapshotsInRecycleBin":     {fn: s.listSnapshotsInRecycleBin, readOnly: true},
		"RestoreSnapshotFromRecycleBin": {fn: s.restoreSnapshotFromRecycleBin},
		"ModifySnapshotTier":            {fn: s.modifySnapshotTier},
		"RestoreSnapshotTier":           {fn: s.restoreSnapshotTier},
		"DescribeSnapshotTierStatus":    {fn: s.describeSnapshotTierStatus, readOnly: true},

		"DescribeVolumeAttribute":   {fn: s.describeVolumeAttribute, readOnly: true},
		"DescribeSnapshotAttribute": {fn: s.describeSnapshotAttribute, readOnly: true},
		"ModifySnapshotAttribute":   {fn: s.modifySnapshotAttribute},

		"LockSnapshot":            {fn: s.lockSnapshot},
		"UnlockSnapshot":          {fn: s.unlockSnapshot},
		"DescribeLockedSnapshots": {fn: s.describeLockedSnapshots, readOnly: true},

		"CreateTags":                   {fn: s.createTags},
		"DeleteTags":                   {fn: s.deleteTags},
		"DescribeTags":                 {fn: s.describeTags, readOnly: true},
		"ModifyVolume":                 {fn: s.modifyVolume},
		"DescribeVolumesModifications": {fn: s.describeVolumesModifications, readOnly: true},
		"AttachVolume":                 {fn: s.attachVolume},
		"DetachVolume":                 {fn: s.detachVolume},

		"DescribeAvailabilityZones": {fn: s.describeAvailabilityZones, readOnly: true},
		"DescribeRegions":           {fn: s.describeRegions, readOnly: true},

		"EnableFastSnapshotRestores":   {fn: s.enableFastSnapshotRestores},
		"DisableFastSnapshotRestores":  {fn: s.disableFastSnapshotRestores},
		"DescribeFastSnapshotRestores": {fn: s.describeFastSnapshotRestores, readOnly: true},
	}
	return s
}

// peerAuth identifies a unix socket peer by the credentials peerContext
// put in the connection's context.
func peerAuth(r *http.Request, _ []byte) (Caller, *APIError) {
	c, err := callerFrom(r.Context())
	if err != nil {
		// Not the client's doing; logged by the caller of the authenticator.
		e := &APIError{Code: CodeAuthFailure, StatusCode: http.StatusUnauthorized,
			Message: "The daemon cannot tell who you are: " + err.Error()}
		return Caller{}, e.because("the peer's credentials (SO_PEERCRED) cannot be read: " + err.Error())
	}
	return c, nil
}

// sigV4Auth verifies the request's signature.
func (s *Server) sigV4Auth(r *http.Request, body []byte) (Caller, *APIError) {
	return s.sigv4.verify(r.Context(), r, body)
}

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
//
// On a unix socket the caller is who the kernel says (SO_PEERCRED) and the
// Policy decides; on TCP every request must carry a valid SigV4 signature
// by one of the AccessKeys, and a server without keys refuses to serve.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		ReadHeaderTimeout: s.readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	switch ln.Addr().Network() {
	case "unix":
		srv.Handler = s.handler(peerAuth)
		srv.ConnContext = peerContext
	case "tcp":
		if s.sigv4 == nil {
			ln.Close()
			return fmt.Errorf("control listener %s: TCP needs access keys (a credentials file) to verify SigV4 signatures", ln.Addr())
		}
		srv.Handler = s.handler(s.sigV4Auth)
	default:
		ln.Close()
		return fmt.Errorf("control listener %s: unsupported network %q", ln.Addr(), ln.Addr().Network())
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

// handler serves the API, identifying callers with auth.
func (s *Server) handler(auth authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.profiling && strings.HasPrefix(r.URL.Path, pprofPrefix) {
			s.profilingHandler(w, r)
			return
		}
		if s.metrics != nil && r.URL.Path == metricsPath && r.Method == http.MethodGet {
			s.metricsHandler(w, r)
			return
		}
		s.serveHTTP(w, r, auth)
	})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, auth authenticator) {
	start := time.Now()
	reqID := uuid.NewString()
	var out outcome
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic while handling a request", logRequestID, reqID, logAction, out.action,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.writeError(w, reqID, errInternal())
		}
	}()
	out = s.serve(w, r, reqID, auth)
	level := slog.LevelDebug
	attrs := []any{logRequestID, reqID, logAction, out.action, logCaller, out.caller.String(),
		logStatus, out.status, logCode, out.code, logDuration, time.Since(start)}
	if out.reason != "" {
		level = slog.LevelInfo // refused callers are worth an operator's eye, with the reason
		attrs = append(attrs, logReason, out.reason)
	}
	s.log.Log(r.Context(), level, "request", attrs...)
}

// outcome is what the server did with one request, for its log line.
type outcome struct {
	action string
	caller Caller
	status int
	code   string
	// reason says why the caller was refused (authentication or
	// authorization): the error's reason if it has one, else its
	// message. Empty for any other answer.
	reason string
}

// failed is the outcome of answering e.
func failed(action string, caller Caller, e *APIError) outcome {
	o := outcome{action: action, caller: caller, status: e.StatusCode, code: e.Code, reason: e.reason}
	if o.reason == "" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden) {
		o.reason = e.Message
	}
	return o
}

// serve handles one request and returns what it did, for the log.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, reqID string, auth authenticator) outcome {
	if isKMSRequest(r) {
		return s.serveKMS(w, r, reqID, auth)
	}
	if isEBSRequest(r) {
		return s.serveEBS(w, r, reqID, auth)
	}
	if isRbinRequest(r) {
		return s.serveRbin(w, r, reqID, auth)
	}
	if isDLMRequest(r) {
		return s.serveDLM(w, r, reqID, auth)
	}
	var (
		action string
		caller Caller
		e      *APIError
	)
	fail := func(e *APIError) outcome {
		s.writeError(w, reqID, e)
		return failed(action, caller, e)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return fail(&APIError{
			Code:       CodeMethodNotAllowed,
			Message:    fmt.Sprintf("The method %s is not allowed: use GET or POST.", clip(r.Method)),
			StatusCode: http.StatusMethodNotAllowed,
		})
	}
	body, e := readBody(w, r)
	if e != nil {
		return fail(e)
	}
	if caller, e = auth(r, body); e != nil {
		return fail(e)
	}
	p, e := parseParams(r, body)
	if e != nil {
		return fail(e)
	}
	action, ok := p.get("Action")
	if !ok || action == "" {
		return fail(apiErr(CodeMissingAction, "The request must contain the parameter Action."))
	}
	act, ok := s.actions[action]
	if !ok {
		return fail(apiErr(CodeInvalidAction, "The action %s is not valid for this web service.", clip(action)))
	}
	version, ok := p.get("Version")
	if !ok || version == "" {
		return fail(missingParam("Version"))
	}
	if version != APIVersion {
		return fail(apiErr(CodeNoSuchVersion, "The requested version (%s) of service AmazonEC2 does not exist.", clip(version)))
	}
	// Authorization before anything else of the request is looked at:
	// a refused caller learns nothing and changes nothing, DryRun or not.
	switch s.policy.access(caller) {
	case AccessFull:
	case AccessReadOnly:
		if !act.readOnly {
			return fail(errUnauthorized(caller, action))
		}
	default:
		return fail(errUnauthorized(caller, action))
	}
	resp, err := act.fn(withRequestHost(r.Context(), r.Host), p)
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			s.log.Error("request failed", logRequestID, reqID, logAction, action, logErr, err)
			ae = errInternal()
		}
		return fail(ae)
	}
	resp.setRequestID(reqID)
	out, err := xml.Marshal(resp)
	if err != nil {
		s.log.Error("cannot encode the answer", logRequestID, reqID, logAction, action, logErr, err)
		return fail(errInternal())
	}
	writeXML(w, reqID, http.StatusOK, out)
	return outcome{action: action, caller: caller, status: http.StatusOK}
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

// optionalBackend returns the server's backend as T, the interface of an
// optional feature (named by feature); a backend without it answers
// UnsupportedOperation, the same for every feature.
func optionalBackend[T any](s *Server, feature string) (T, *APIError) {
	b, ok := s.backend.(T)
	if !ok {
		return b, apiErr(CodeUnsupportedOperation, "This daemon does not support %s.", feature)
	}
	return b, nil
}
