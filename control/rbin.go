package control

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// The Recycle Bin API (service rbin, REST + JSON, API version 2021-06-15)
// shares the listeners, the callers and the policy of the EC2 API, as the
// EBS direct APIs do; its requests are told apart by their paths, /rules
// and /list-rules, /rules/{id}/lock and /unlock (rbin_locks.go), and
// /tags/{a rule's ARN} (rbin_tags.go). GetRule and ListRules are
// read-only; the others need full access. Errors are the EBS APIs' form
// (X-Amzn-ErrorType, a JSON body with Message and Reason).
//
// Rule locks are AWS's (cow/recycle_rule_lock.go): a Region-level rule
// without exclusion tags can be locked (CreateRule's LockConfiguration,
// LockRule) with an unlock delay of 7 to 30 DAYS; a rule locked or pending
// unlock refuses UpdateRule and DeleteRule (ConflictException
// INVALID_RULE_STATE); UnlockRule starts the delay (LockEndTime), after
// which the rule is unlocked.
//
// Where the service's behaviour was open to choice, this server picks:
//   - only ResourceType EBS_SNAPSHOT; EC2_IMAGE and EBS_VOLUME are refused
//     (ValidationException INVALID_PARAMETER_VALUE);
//   - a rule never locked answers LockState unlocked (AWS: no LockState);
//   - LockRule of a tag-level rule, or one with exclusion tags, is
//     ConflictException INVALID_RULE_STATE; CreateRule of one with a
//     LockConfiguration is ValidationException INVALID_PARAMETER_VALUE;
//   - LockRule of a rule pending unlock keeps its unlock delay (AWS: the
//     delay cannot change after the lock): another delay is a conflict;
//   - a rule tag without a value matches the key with any value;
//   - a rule is available as soon as it is created;
//   - ListRules' ResourceTags and ExcludeResourceTags filters keep the
//     rules that have every tag given; NextToken is the last rule's ID.
const (
	rbinService        = "rbin" // the SigV4 scope of Recycle Bin requests
	rbinRulesPath      = "/rules"
	rbinListRulesPath  = "/list-rules"
	rbinMaxBody        = 64 << 10
	rbinQuotaExceeded  = "ServiceQuotaExceededException"
	reasonRuleNotFound = "RULE_NOT_FOUND"
	reasonQuota        = "SERVICE_QUOTA_EXCEEDED"
	maxListRules       = 1000
)

// isRbinRequest reports whether r is for the Recycle Bin API.
func isRbinRequest(r *http.Request) bool {
	p := r.URL.Path
	return p == rbinRulesPath || p == rbinListRulesPath || strings.HasPrefix(p, rbinRulesPath+"/") || isRbinTagsRequest(r)
}

// rbinOp is one Recycle Bin operation: its handler gets the rule ID of
// the path ("" for /rules and /list-rules) and the body.
type rbinOp struct {
	name     string
	fn       func(s *Server, q *rbinRequest) (status int, answer any, e error)
	readOnly bool
}

type rbinRequest struct {
	r    *http.Request
	id   string
	body []byte
	be   RecycleBinBackend
}

// rbinRoute finds the operation of a request; id is the rule of /rules/{id}.
func rbinRoute(method, path string) (op rbinOp, id string, ok bool) {
	rest, hasID := strings.CutPrefix(path, rbinRulesPath+"/")
	switch {
	case path == rbinRulesPath && method == http.MethodPost:
		return rbinOp{"CreateRule", (*Server).rbinCreateRule, false}, "", true
	case path == rbinListRulesPath && method == http.MethodPost:
		return rbinOp{"ListRules", (*Server).rbinListRules, true}, "", true
	case !hasID:
		return rbinOp{}, "", false
	}
	if lockOp, idPart, isLock := rbinLockRoute(method, rest); isLock {
		op, rest, ok = lockOp, idPart, true
	} else {
		op, ok = rbinRuleOp(method)
	}
	if !ok || strings.Contains(rest, "/") {
		return rbinOp{}, "", false
	}
	id, err := url.PathUnescape(rest)
	if err != nil {
		return rbinOp{}, "", false
	}
	return op, id, true
}

// rbinRuleOp is the operation of a method on /rules/{id}.
func rbinRuleOp(method string) (rbinOp, bool) {
	switch method {
	case http.MethodGet:
		return rbinOp{"GetRule", (*Server).rbinGetRule, true}, true
	case http.MethodPatch:
		return rbinOp{"UpdateRule", (*Server).rbinUpdateRule, false}, true
	case http.MethodDelete:
		return rbinOp{"DeleteRule", (*Server).rbinDeleteRule, false}, true
	}
	return rbinOp{}, false
}

// rbinREST is the Recycle Bin API among the REST + JSON services.
var rbinREST = &restService{
	name:    "Recycle Bin",
	scope:   rbinService,
	maxBody: rbinMaxBody,
	tooBig:  fmt.Sprintf("The request body cannot be read or is larger than %d bytes.", rbinMaxBody),
	invalid: func(format string, args ...any) *ebsError { return invalid(reasonParameter, format, args...) },
}

// serveRbin answers a Recycle Bin request, after the same authentication
// and authorization as the EC2 API's.
func (s *Server) serveRbin(w http.ResponseWriter, r *http.Request, reqID string, auth authenticator) outcome {
	op, id, ok := rbinRoute(r.Method, r.URL.Path)
	if isRbinTagsRequest(r) {
		op, id, ok = rbinTagsRoute(r.Method, r.URL.Path)
	}
	x := &restExchange{w: w, reqID: reqID, action: op.name}
	body, e := rbinREST.admit(s, x, r, auth, ok, op.readOnly)
	if e != nil {
		return x.fail(e)
	}
	be, ok := s.backend.(RecycleBinBackend)
	if !ok {
		return x.fail(ebsErr(ebsInternal, "", "This daemon does not serve the Recycle Bin."))
	}
	status, answer, err := op.fn(s, &rbinRequest{r: r, id: id, body: body, be: be})
	if err != nil {
		var ee *ebsError
		if !errors.As(err, &ee) {
			if ee = rbinBackendErr(err); ee == nil {
				ee = s.restInternalError(rbinREST, x, err)
			}
		}
		return x.fail(ee)
	}
	if answer == nil {
		w.Header().Set("X-Amzn-RequestId", reqID)
		w.WriteHeader(status)
	} else {
		writeEBSJSON(w, reqID, status, answer)
	}
	return x.done(status)
}

// rbinBackendErr translates the engine's errors the client can act on;
// nil for any other.
func rbinBackendErr(err error) *ebsError {
	switch {
	case errors.Is(err, cow.ErrRecycleRuleNotFound):
		return ebsErr(ebsNotFound, reasonRuleNotFound, "The retention rule does not exist.")
	case errors.Is(err, cow.ErrInvalidRecycleRule):
		return invalid(reasonParameter, "%s", sentence(detail(err, cow.ErrInvalidRecycleRule)))
	case errors.Is(err, cow.ErrRecycleRuleLockConflict):
		return ebsErr(ebsConflict, reasonRuleState, "%s", sentence(detail(err, cow.ErrRecycleRuleLockConflict)))
	case errors.Is(err, cow.ErrRecycleRuleQuota):
		return &ebsError{Type: rbinQuotaExceeded, Reason: reasonQuota, status: http.StatusPaymentRequired,
			Message: fmt.Sprintf("You have reached the maximum number of retention rules (%d) in this Region.", cow.MaxRecycleRules)}
	}
	return nil
}

// decodeRbin decodes a request body into v, refusing unknown fields.
func decodeRbin(body []byte, v any) error {
	if err := decodeJSONBody(body, v); err != nil {
		return invalid(reasonParameter, "The request body is not valid: %s.", clip(err.Error()))
	}
	return nil
}

// ruleID checks the identifier of /rules/{id}.
func (q *rbinRequest) ruleID() error {
	if !cow.ValidRecycleRuleID(q.id) {
		return invalid(reasonParameter, "The identifier %q is not valid: 11 letters and digits.", clip(q.id))
	}
	return nil
}

// ruleArn is rule id's ARN.
func (s *Server) ruleArn(id string) string {
	return "arn:aws:rbin:" + s.region + ":" + s.account + ":rule/" + id
}

// matchesTags reports whether have contains every tag of want.
func matchesTags(have, want []cow.RecycleRuleTag) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
