package control

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// The EBS direct APIs (service ebs, REST + JSON, API version 2019-11-02)
// share the listeners, the callers and the policy of the EC2 API; they are
// told apart by their path, /snapshots..., where EC2's requests go to /.
// List* and GetSnapshotBlock are read-only; StartSnapshot, PutSnapshotBlock
// and CompleteSnapshot need full access. The data of an encrypted snapshot
// (GetSnapshotBlock) is decrypted for callers with full access only (to
// use a KMS key is a full-access privilege here, as creating a volume of
// it is), and only while its KMS key is enabled.
//
// Where EBS's behaviour was open to choice, this server picks:
//   - block and page tokens are HMACs under a key drawn at start-up: they
//     are valid for ebsTokenTTL and not across a restart of the daemon
//     (ValidationException INVALID_BLOCK_TOKEN or INVALID_PAGE_TOKEN);
//   - a snapshot of another account (a shared store's): AccessDeniedException
//     UNAUTHORIZED_ACCOUNT; one that is not completed, or (for writes) not
//     started with StartSnapshot: ValidationException INVALID_SNAPSHOT_ID;
//   - the aggregate checksum of CompleteSnapshot is accepted computed over
//     the blocks' checksums as bytes or as their base64 text;
//   - more than maxEBSInFlight requests at once: RequestThrottledException
//     ACCOUNT_THROTTLED, which the SDKs retry.
const (
	ebsService     = "ebs" // the SigV4 scope of EBS requests
	ebsPathPrefix  = "/snapshots"
	ebsContentType = "application/json"
	// maxEBSInFlight bounds the EBS requests served at once.
	maxEBSInFlight = 64
	// ebsTokenTTL is how long block and page tokens stay valid.
	ebsTokenTTL = 7 * 24 * time.Hour
)

// EBSBackend is what the EBS direct APIs need of the engine; *cow.Engine
// satisfies it. A Backend without it answers them with
// InternalServerException.
type EBSBackend interface {
	ListSnapshotBlocks(ctx context.Context, id string, start int64, limit int) ([]int64, int64, cow.SnapshotInfo, error)
	ListChangedBlocks(ctx context.Context, first, second string, start int64, limit int) ([]cow.ChangedBlock, int64, cow.SnapshotInfo, error)
	ReadSnapshotBlock(ctx context.Context, id string, idx int64, dst []byte) (cow.SnapshotInfo, error)
	StartSnapshot(ctx context.Context, p cow.StartSnapshotParams) (cow.SnapshotInfo, error)
	PutSnapshotBlock(ctx context.Context, id string, idx int64, data []byte, sum [32]byte) error
	CompleteSnapshot(ctx context.Context, id string, check func([]cow.WrittenBlock) error) (cow.SnapshotInfo, error)
	ParentOf(id string) string
}

var _ EBSBackend = (*cow.Engine)(nil)

// ebsState is the server's state for the EBS APIs.
type ebsState struct {
	key   [32]byte      // signs tokens
	slots chan struct{} // one per request in flight
	now   func() time.Time
}

func newEBSState() *ebsState {
	st := &ebsState{slots: make(chan struct{}, maxEBSInFlight), now: time.Now}
	if _, err := rand.Read(st.key[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return st
}

// isEBSRequest reports whether r is for the EBS direct APIs.
func isEBSRequest(r *http.Request) bool {
	return r.URL.Path == ebsPathPrefix || strings.HasPrefix(r.URL.Path, ebsPathPrefix+"/")
}

// ebsError is an EBS error answer: its type (the X-Amzn-ErrorType
// header), status, message and reason.
type ebsError struct {
	Type    string `json:"-"`
	Message string `json:"Message"`
	Reason  string `json:"Reason,omitempty"`
	status  int
	logWhy  string // for the daemon's log, as APIError's reason
}

func (e *ebsError) Error() string { return e.Type + ": " + e.Message }

// EBS error types and reasons.
const (
	ebsValidation      = "ValidationException"
	ebsNotFound        = "ResourceNotFoundException"
	ebsAccessDenied    = "AccessDeniedException"
	ebsConflict        = "ConflictException"
	ebsThrottled       = "RequestThrottledException"
	ebsInternal        = "InternalServerException"
	reasonPageToken    = "INVALID_PAGE_TOKEN"
	reasonBlockToken   = "INVALID_BLOCK_TOKEN"
	reasonSnapshotID   = "INVALID_SNAPSHOT_ID"
	reasonUnrelated    = "UNRELATED_SNAPSHOTS"
	reasonBlock        = "INVALID_BLOCK"
	reasonEncoding     = "INVALID_CONTENT_ENCODING"
	reasonTag          = "INVALID_TAG"
	reasonParameter    = "INVALID_PARAMETER_VALUE"
	reasonVolumeSize   = "INVALID_VOLUME_SIZE"
	reasonConflict     = "CONFLICTING_BLOCK_UPDATE"
	reasonCustomerKey  = "INVALID_CUSTOMER_KEY"
	reasonSnapNotFound = "SNAPSHOT_NOT_FOUND"
	reasonAccount      = "UNAUTHORIZED_ACCOUNT"
	reasonDependency   = "DEPENDENCY_ACCESS_DENIED"
	reasonThrottled    = "ACCOUNT_THROTTLED"
)

var ebsStatus = map[string]int{
	ebsValidation:   http.StatusBadRequest,
	ebsNotFound:     http.StatusNotFound,
	ebsAccessDenied: http.StatusForbidden,
	ebsConflict:     http.StatusConflict,
	ebsThrottled:    http.StatusBadRequest,
	ebsInternal:     http.StatusInternalServerError,
}

func ebsErr(typ, reason, format string, args ...any) *ebsError {
	return &ebsError{Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...), status: ebsStatus[typ]}
}

func invalid(reason, format string, args ...any) *ebsError {
	return ebsErr(ebsValidation, reason, format, args...)
}

// ebsRequest is one EBS request being served.
type ebsRequest struct {
	reqID  string
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	caller Caller
	access Access
	be     EBSBackend
	parts  []string // the path after /snapshots, split at /
}

// ebsOp is one EBS operation.
type ebsOp struct {
	name     string
	fn       func(s *Server, q *ebsRequest) error
	readOnly bool
}

// route finds the operation of a method and path (the parts after
// /snapshots).
func route(method string, parts []string) (ebsOp, bool) {
	switch {
	case method == http.MethodPost && len(parts) == 0:
		return ebsOp{"StartSnapshot", (*Server).ebsStartSnapshot, false}, true
	case method == http.MethodPost && len(parts) == 2 && parts[0] == "completion":
		return ebsOp{"CompleteSnapshot", (*Server).ebsCompleteSnapshot, false}, true
	case method == http.MethodGet && len(parts) == 2 && parts[1] == "blocks":
		return ebsOp{"ListSnapshotBlocks", (*Server).ebsListSnapshotBlocks, true}, true
	case method == http.MethodGet && len(parts) == 2 && parts[1] == "changedblocks":
		return ebsOp{"ListChangedBlocks", (*Server).ebsListChangedBlocks, true}, true
	case method == http.MethodGet && len(parts) == 3 && parts[1] == "blocks":
		return ebsOp{"GetSnapshotBlock", (*Server).ebsGetSnapshotBlock, true}, true
	case method == http.MethodPut && len(parts) == 3 && parts[1] == "blocks":
		return ebsOp{"PutSnapshotBlock", (*Server).ebsPutSnapshotBlock, false}, true
	}
	return ebsOp{}, false
}

// maxEBSBody bounds an EBS request body: a block, or StartSnapshot's JSON.
const maxEBSBody = cow.DirectBlockSize + 1

// ebsREST is the EBS direct APIs among the REST + JSON services.
var ebsREST = &restService{
	name:         "EBS",
	scope:        ebsService,
	maxBody:      maxEBSBody,
	tooBig:       fmt.Sprintf("The request body cannot be read or is larger than a block (%d bytes).", cow.DirectBlockSize),
	invalid:      func(format string, args ...any) *ebsError { return invalid(reasonParameter, format, args...) },
	deniedReason: reasonAccount,
}

// serveEBS answers an EBS direct API request, after the same
// authentication and authorization as the EC2 API's.
func (s *Server) serveEBS(w http.ResponseWriter, r *http.Request, reqID string, auth authenticator) outcome {
	q := &ebsRequest{reqID: reqID, w: w, r: r}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, ebsPathPrefix), "/")
	if rest != "" {
		q.parts = strings.Split(rest, "/")
	}
	op, ok := route(r.Method, q.parts)
	x := &restExchange{w: w, reqID: reqID, action: op.name}
	select {
	case s.ebs.slots <- struct{}{}:
		defer func() { <-s.ebs.slots }()
	default:
		return x.fail(ebsErr(ebsThrottled, reasonThrottled, "Too many requests are in flight (%d); retry.", maxEBSInFlight))
	}
	body, e := ebsREST.admit(s, x, r, auth, ok, op.readOnly)
	if e != nil {
		return x.fail(e)
	}
	q.body, q.caller, q.access = body, x.caller, x.access
	if q.be, ok = s.backend.(EBSBackend); !ok {
		return x.fail(ebsErr(ebsInternal, "", "This daemon does not serve the EBS direct APIs."))
	}
	if err := op.fn(s, q); err != nil {
		var ee *ebsError
		if !errors.As(err, &ee) {
			ee = s.restInternalError(ebsREST, x, err)
		}
		return x.fail(ee)
	}
	return x.done(http.StatusOK)
}

func writeEBSError(w http.ResponseWriter, reqID string, e *ebsError) {
	w.Header().Set("X-Amzn-ErrorType", e.Type)
	writeEBSJSON(w, reqID, e.status, e)
}

func writeEBSJSON(w http.ResponseWriter, reqID string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: plain structs
		b, status = []byte(`{"Message":"cannot encode the answer"}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ebsContentType)
	h.Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(status)
	w.Write(b)
}

// epochSeconds is a timestamp as restJson1 sends it.
func epochSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
