package control

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// What the REST + JSON services (the EBS direct APIs, the Recycle Bin, the
// Data Lifecycle Manager) share in serving a request: reading its body,
// authenticating and authorizing its caller as the EC2 API does, writing
// error answers (the EBS form: X-Amzn-ErrorType and a JSON body) and the
// outcome the request log gets.

// restService is what differs between the REST + JSON services.
type restService struct {
	name    string // "Recycle Bin": in messages and the log
	scope   string // "rbin": the prefix of its actions in access-denied messages
	maxBody int64
	tooBig  string // the message for a body that cannot be read or is larger than maxBody
	// invalid is the service's error for a request it cannot take.
	invalid      func(format string, args ...any) *ebsError
	deniedReason string // the Reason of its AccessDeniedException, if any
}

// restExchange is one REST + JSON request being served: where its answer
// goes and what is logged of it.
type restExchange struct {
	w      http.ResponseWriter
	reqID  string
	action string // the operation, "" if the request names none
	caller Caller
	access Access
}

// fail writes e as the answer and returns the outcome to log.
func (x *restExchange) fail(e *ebsError) outcome {
	writeEBSError(x.w, x.reqID, e)
	o := outcome{action: x.action, caller: x.caller, status: e.status, code: e.Type, reason: e.logWhy}
	if o.reason == "" && (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden) {
		o.reason = e.Message
	}
	return o
}

// done is the outcome of a successful answer with status.
func (x *restExchange) done(status int) outcome {
	return outcome{action: x.action, caller: x.caller, status: status}
}

// admit reads r's body and checks its caller: authenticated, asking for an
// operation of the service (found) and allowed it (readOnly: callers with
// read-only access may call it). It sets x.caller and x.access.
func (svc *restService) admit(s *Server, x *restExchange, r *http.Request, auth authenticator, found, readOnly bool) ([]byte, *ebsError) {
	body, err := io.ReadAll(http.MaxBytesReader(x.w, r.Body, svc.maxBody))
	if err != nil {
		return nil, svc.invalid("%s", svc.tooBig)
	}
	var ae *APIError
	if x.caller, ae = auth(r, body); ae != nil {
		return nil, &ebsError{Type: ae.Code, Message: ae.Message, status: ae.StatusCode, logWhy: ae.reason}
	}
	if !found {
		return nil, svc.invalid("No %s operation is %s %s.", svc.name, clip(r.Method), clip(r.URL.Path))
	}
	x.access = s.policy.access(x.caller)
	if x.access != AccessFull && (x.access != AccessReadOnly || !readOnly) {
		return nil, ebsErr(ebsAccessDenied, svc.deniedReason, "%s is not authorized to perform %s:%s.", x.caller, svc.scope, x.action)
	}
	return body, nil
}

// restInternalError is the answer for err, a failure of the server's own: it
// is logged and answered InternalServerException.
func (s *Server) restInternalError(svc *restService, x *restExchange, err error) *ebsError {
	s.log.Error(svc.name+" request failed", logRequestID, x.reqID, logAction, x.action, logErr, err)
	return ebsErr(ebsInternal, "", "An internal error has occurred.")
}

// decodeJSONBody decodes a request body into v, refusing fields v does not
// have; an empty body is an empty object. The error is encoding/json's,
// for the service to word.
func decodeJSONBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
