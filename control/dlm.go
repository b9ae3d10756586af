package control

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cowvol/cowvol/lifecycle"
)

// The Data Lifecycle Manager API (service dlm, REST + JSON, API version
// 2018-01-12) shares the listeners, the callers and the policy of the EC2
// API; its requests are told apart by their path, /policies...:
//
//	POST   /policies       CreateLifecyclePolicy
//	GET    /policies       GetLifecyclePolicies (read-only)
//	GET    /policies/{id}  GetLifecyclePolicy (read-only)
//	PATCH  /policies/{id}  UpdateLifecyclePolicy
//	DELETE /policies/{id}  DeleteLifecyclePolicy
//	.../tags/{arn}         TagResource, UntagResource, ListTagsForResource (dlm_tags.go)
//
// The lifecycle package validates and keeps the policies; this file
// decodes requests and encodes answers. A request naming a field cowvol
// does not support (cross-Region copies, archive, fast snapshot restore,
// sharing, scripts, default policies, ...) is refused with
// InvalidRequestException naming the field, and nothing changes.
const (
	dlmService    = "dlm" // the SigV4 scope of DLM requests
	dlmPathPrefix = "/policies"
	maxDLMBody    = 64 << 10
)

// LifecyclePolicies is what the DLM API needs; *lifecycle.Manager
// satisfies it. A server without it answers DLM requests with
// InternalServerException.
type LifecyclePolicies interface {
	Create(p lifecycle.CreateParams) (lifecycle.Policy, error)
	Get(id string) (lifecycle.Policy, error)
	List() []lifecycle.Policy
	Update(id string, u lifecycle.UpdateParams) (lifecycle.Policy, error)
	Delete(id string) error
	TagPolicy(id string, tags map[string]string) (lifecycle.Policy, error)
	UntagPolicy(id string, keys []string) (lifecycle.Policy, error)
}

var _ LifecyclePolicies = (*lifecycle.Manager)(nil)

// isDLMRequest reports whether r is for the DLM API.
func isDLMRequest(r *http.Request) bool {
	return r.URL.Path == dlmPathPrefix || strings.HasPrefix(r.URL.Path, dlmPathPrefix+"/") || isDLMTagsRequest(r)
}

// DLM's exceptions besides the EBS ones of the same name.
const (
	dlmInvalidRequest = "InvalidRequestException"
	dlmLimitExceeded  = "LimitExceededException"
)

func dlmErr(typ string, status int, format string, args ...any) *ebsError {
	return &ebsError{Type: typ, Message: fmt.Sprintf(format, args...), status: status}
}

// dlmOp is one DLM operation: its name, whether read-only callers may
// call it, and its handler (id: the policy ID of the path, if any).
type dlmOp struct {
	name     string
	readOnly bool
	fn       func(s *Server, lp LifecyclePolicies, id string, q url.Values, body []byte) (any, error)
}

// dlmRoute finds the operation of a method and the path after /policies.
func dlmRoute(method, rest string) (dlmOp, string, bool) {
	id := strings.Trim(rest, "/")
	if strings.Contains(id, "/") {
		return dlmOp{}, "", false
	}
	switch {
	case id == "" && method == http.MethodPost:
		return dlmOp{"CreateLifecyclePolicy", false, (*Server).dlmCreate}, "", true
	case id == "" && method == http.MethodGet:
		return dlmOp{"GetLifecyclePolicies", true, (*Server).dlmList}, "", true
	case id != "" && method == http.MethodGet:
		return dlmOp{"GetLifecyclePolicy", true, (*Server).dlmGet}, id, true
	case id != "" && method == http.MethodPatch:
		return dlmOp{"UpdateLifecyclePolicy", false, (*Server).dlmUpdate}, id, true
	case id != "" && method == http.MethodDelete:
		return dlmOp{"DeleteLifecyclePolicy", false, (*Server).dlmDelete}, id, true
	}
	return dlmOp{}, "", false
}

// dlmREST is the DLM API among the REST + JSON services.
var dlmREST = &restService{
	name:    "DLM",
	scope:   dlmService,
	maxBody: maxDLMBody,
	tooBig:  fmt.Sprintf("The request body cannot be read or is larger than %d bytes.", maxDLMBody),
	invalid: func(format string, args ...any) *ebsError {
		return dlmErr(dlmInvalidRequest, http.StatusBadRequest, format, args...)
	},
}

// serveDLM answers a DLM request, after the same authentication and
// authorization as the EC2 API's.
func (s *Server) serveDLM(w http.ResponseWriter, r *http.Request, reqID string, auth authenticator) outcome {
	op, id, ok := dlmRoute(r.Method, strings.TrimPrefix(r.URL.Path, dlmPathPrefix))
	if arn, tags := strings.CutPrefix(r.URL.Path, "/tags/"); tags {
		op, id, ok = dlmTagsRoute(r.Method, arn)
	}
	x := &restExchange{w: w, reqID: reqID, action: op.name}
	body, e := dlmREST.admit(s, x, r, auth, ok, op.readOnly)
	if e != nil {
		return x.fail(e)
	}
	if s.lifecycle == nil {
		return x.fail(dlmErr(ebsInternal, http.StatusInternalServerError, "This daemon does not serve lifecycle policies."))
	}
	out, err := op.fn(s, s.lifecycle, id, r.URL.Query(), body)
	if err != nil {
		return x.fail(s.dlmError(x, err))
	}
	writeEBSJSON(w, reqID, http.StatusOK, out)
	return x.done(http.StatusOK)
}

// dlmError is the answer for err: the lifecycle package's kinds map to
// DLM's exceptions, anything else is logged and answered
// InternalServerException.
func (s *Server) dlmError(x *restExchange, err error) *ebsError {
	var ee *ebsError
	if errors.As(err, &ee) {
		return ee
	}
	var le *lifecycle.Error
	if errors.As(err, &le) {
		switch {
		case errors.Is(err, lifecycle.ErrNotFound):
			return dlmErr(ebsNotFound, http.StatusNotFound, "%s", err.Error())
		case errors.Is(err, lifecycle.ErrLimitExceeded):
			return dlmErr(dlmLimitExceeded, http.StatusTooManyRequests, "%s", err.Error())
		default:
			return dlmErr(dlmInvalidRequest, http.StatusBadRequest, "%s", err.Error())
		}
	}
	return s.restInternalError(dlmREST, x, err)
}

// decodeDLM decodes a request body into v, refusing fields v does not
// have: cowvol does not support them.
func decodeDLM(body []byte, v any) error {
	if err := decodeJSONBody(body, v); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return dlmErr(dlmInvalidRequest, http.StatusBadRequest, "The parameter %s is not supported by cowvol.", clip(f))
		}
		return dlmErr(dlmInvalidRequest, http.StatusBadRequest, "The request body is not valid: %s", clip(msg))
	}
	return nil
}
