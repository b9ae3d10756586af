package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cowvol/cowvol/kms"
)

// KeyBackend is the key manager the KMS API serves; *kms.Local satisfies
// it. Errors wrap kms's sentinel errors.
type KeyBackend interface {
	CreateKey(description, alias string) (kms.KeyInfo, error)
	CreateAlias(alias, keyID string) error
	DescribeKey(keyID string) (kms.KeyInfo, error)
	ListKeys() []kms.KeyInfo
	SetEnabled(keyID string, enabled bool) (kms.KeyInfo, error)
}

var _ KeyBackend = (*kms.Local)(nil)

// The KMS API speaks AWS JSON 1.1: POST with X-Amz-Target:
// TrentService.<Operation> and a JSON body, so the AWS SDK's KMS client
// (and `aws kms`) manage the daemon's keys unmodified.
const (
	kmsTargetPrefix = "TrentService."
	kmsContentType  = "application/x-amz-json-1.1"
	kmsService      = "kms" // the SigV4 scope of KMS requests
)

// KMS error types (the __type of an error answer).
const (
	kmsAccessDenied       = "AccessDeniedException"
	kmsAlreadyExists      = "AlreadyExistsException"
	kmsDisabled           = "DisabledException"
	kmsInternal           = "KMSInternalException"
	kmsNotFound           = "NotFoundException"
	kmsSerialization      = "SerializationException"
	kmsUnknownOperation   = "UnknownOperationException"
	kmsUnsupportedService = "UnsupportedOperationException"
	kmsValidation         = "ValidationException"
)

type kmsError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
	status  int
	reason  string // for the daemon's log, as APIError's
}

func (e *kmsError) Error() string { return e.Type + ": " + e.Message }

func kmsErr(typ string, status int, format string, args ...any) *kmsError {
	return &kmsError{Type: typ, Message: fmt.Sprintf(format, args...), status: status}
}

// kmsAction is one KMS operation.
type kmsAction struct {
	fn       func(body []byte) (any, error)
	readOnly bool
}

func (s *Server) kmsActions() map[string]kmsAction {
	return map[string]kmsAction{
		"CreateKey":    {fn: s.kmsCreateKey},
		"CreateAlias":  {fn: s.kmsCreateAlias},
		"DescribeKey":  {fn: s.kmsDescribeKey, readOnly: true},
		"ListKeys":     {fn: s.kmsListKeys, readOnly: true},
		"ListAliases":  {fn: s.kmsListAliases, readOnly: true},
		"EnableKey":    {fn: func(b []byte) (any, error) { return s.kmsSetEnabled(b, true) }},
		"DisableKey":   {fn: func(b []byte) (any, error) { return s.kmsSetEnabled(b, false) }},
		"GetKeyPolicy": {fn: s.kmsGetKeyPolicy, readOnly: true},
	}
}

// isKMSRequest reports whether r is for the KMS API.
func isKMSRequest(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), kmsTargetPrefix)
}

// serveKMS answers a KMS API request, after the same authentication and
// authorization as the EC2 API's.
func (s *Server) serveKMS(w http.ResponseWriter, r *http.Request, reqID string, auth authenticator) outcome {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), kmsTargetPrefix)
	var caller Caller
	fail := func(e *kmsError) outcome {
		writeKMS(w, reqID, e.status, e)
		o := outcome{action: op, caller: caller, status: e.status, code: e.Type, reason: e.reason}
		if o.reason == "" && (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden) {
			o.reason = e.Message
		}
		return o
	}
	if r.Method != http.MethodPost {
		return fail(kmsErr(kmsValidation, http.StatusMethodNotAllowed, "KMS requests are POSTs."))
	}
	body, e := readBody(w, r)
	if e != nil {
		return fail(kmsErr(kmsSerialization, e.StatusCode, "%s", e.Message))
	}
	var ae *APIError
	if caller, ae = auth(r, body); ae != nil {
		return fail(&kmsError{Type: ae.Code, Message: ae.Message, status: ae.StatusCode, reason: ae.reason})
	}
	if s.keys == nil {
		return fail(kmsErr(kmsUnsupportedService, http.StatusBadRequest, "This daemon has no keyring."))
	}
	act, ok := s.kmsActions()[op]
	if !ok {
		return fail(kmsErr(kmsUnknownOperation, http.StatusBadRequest, "Operation %s is not supported.", clip(op)))
	}
	switch access := s.policy.access(caller); {
	case access == AccessFull, access == AccessReadOnly && act.readOnly:
	default:
		return fail(kmsErr(kmsAccessDenied, http.StatusForbidden, "%s is not authorized to perform kms:%s.", caller, op))
	}
	out, err := act.fn(body)
	if err != nil {
		var ke *kmsError
		if !errors.As(err, &ke) {
			ke = kmsBackendErr(err)
		}
		if ke.Type == kmsInternal {
			s.log.Error("KMS request failed", logRequestID, reqID, logAction, op, logErr, err)
		}
		return fail(ke)
	}
	writeKMS(w, reqID, http.StatusOK, out)
	return outcome{action: op, caller: caller, status: http.StatusOK}
}

func writeKMS(w http.ResponseWriter, reqID string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: plain structs
		b, status = []byte(`{"__type":"KMSInternalException","message":"cannot encode the answer"}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", kmsContentType)
	h.Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(status)
	w.Write(b)
}

// kmsBackendErr translates a key manager error.
func kmsBackendErr(err error) *kmsError {
	msg := sentence(err.Error())
	switch {
	case errors.Is(err, kms.ErrKeyNotFound):
		return kmsErr(kmsNotFound, http.StatusBadRequest, "%s", msg)
	case errors.Is(err, kms.ErrKeyDisabled):
		return kmsErr(kmsDisabled, http.StatusBadRequest, "%s", msg)
	case errors.Is(err, kms.ErrAliasExists):
		return kmsErr(kmsAlreadyExists, http.StatusBadRequest, "%s", msg)
	case errors.Is(err, kms.ErrInvalidKeyID):
		return kmsErr(kmsValidation, http.StatusBadRequest, "%s", msg)
	}
	return kmsErr(kmsInternal, http.StatusInternalServerError, "An internal error has occurred.")
}

// decodeKMS decodes a request body strictly: unknown fields are refused
// (but the SDK's optional fields that change nothing here are allowed by
// the request types).
func decodeKMS(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return kmsErr(kmsSerialization, http.StatusBadRequest, "The request body is not valid for this operation: %s.", clip(err.Error()))
	}
	return nil
}

// keyMetadata is KMS's KeyMetadata.
type keyMetadata struct {
	AWSAccountID          string   `json:"AWSAccountId"`
	KeyID                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          float64  `json:"CreationDate"` // epoch seconds
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	Origin                string   `json:"Origin"`
	KeyManager            string   `json:"KeyManager"`
	KeySpec               string   `json:"KeySpec"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

func (s *Server) keyMetadata(k kms.KeyInfo) keyMetadata {
	manager := "CUSTOMER"
	for _, a := range k.Aliases {
		if a == kms.DefaultAlias {
			manager = "AWS"
		}
	}
	return keyMetadata{
		AWSAccountID:          s.account,
		KeyID:                 k.KeyID,
		Arn:                   k.ARN,
		CreationDate:          float64(k.CreatedAt.UnixMilli()) / 1000,
		Enabled:               k.State == kms.StateEnabled,
		Description:           k.Description,
		KeyUsage:              "ENCRYPT_DECRYPT",
		KeyState:              k.State,
		Origin:                "AWS_KMS",
		KeyManager:            manager,
		KeySpec:               "SYMMETRIC_DEFAULT",
		CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
		EncryptionAlgorithms:  []string{"SYMMETRIC_DEFAULT"},
	}
}

type kmsTag struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

func (s *Server) kmsCreateKey(body []byte) (any, error) {
	var in struct {
		Description string   `json:"Description"`
		KeyUsage    string   `json:"KeyUsage"`
		KeySpec     string   `json:"KeySpec"`
		Origin      string   `json:"Origin"`
		MultiRegion *bool    `json:"MultiRegion"`
		Tags        []kmsTag `json:"Tags"`
	}
	if err := decodeKMS(body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.KeyUsage != "" && in.KeyUsage != "ENCRYPT_DECRYPT":
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "KeyUsage %s is not supported: keys here wrap volume data keys (ENCRYPT_DECRYPT).", clip(in.KeyUsage))
	case in.KeySpec != "" && in.KeySpec != "SYMMETRIC_DEFAULT":
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "KeySpec %s is not supported (SYMMETRIC_DEFAULT only).", clip(in.KeySpec))
	case in.Origin != "" && in.Origin != "AWS_KMS":
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "Origin %s is not supported (AWS_KMS only).", clip(in.Origin))
	case in.MultiRegion != nil && *in.MultiRegion:
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "Multi-Region keys are not supported.")
	case len(in.Tags) > 0:
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "Key tags are not supported.")
	}
	k, err := s.keys.CreateKey(in.Description, "")
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyMetadata": s.keyMetadata(k)}, nil
}

func (s *Server) kmsCreateAlias(body []byte) (any, error) {
	var in struct {
		AliasName   string `json:"AliasName"`
		TargetKeyID string `json:"TargetKeyId"`
	}
	if err := decodeKMS(body, &in); err != nil {
		return nil, err
	}
	if in.AliasName == "" || in.TargetKeyID == "" {
		return nil, kmsErr(kmsValidation, http.StatusBadRequest, "AliasName and TargetKeyId are required.")
	}
	return struct{}{}, s.keys.CreateAlias(in.AliasName, in.TargetKeyID)
}

func (s *Server) kmsKeyID(body []byte) (string, error) {
	var in struct {
		KeyID       string   `json:"KeyId"`
		GrantTokens []string `json:"GrantTokens"`
	}
	if err := decodeKMS(body, &in); err != nil {
		return "", err
	}
	if in.KeyID == "" {
		return "", kmsErr(kmsValidation, http.StatusBadRequest, "KeyId is required.")
	}
	return in.KeyID, nil
}

func (s *Server) kmsDescribeKey(body []byte) (any, error) {
	id, err := s.kmsKeyID(body)
	if err != nil {
		return nil, err
	}
	k, err := s.keys.DescribeKey(id)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyMetadata": s.keyMetadata(k)}, nil
}

func (s *Server) kmsSetEnabled(body []byte, enabled bool) (any, error) {
	id, err := s.kmsKeyID(body)
	if err != nil {
		return nil, err
	}
	_, err = s.keys.SetEnabled(id, enabled)
	return struct{}{}, err
}

func (s *Server) kmsGetKeyPolicy(body []byte) (any, error) {
	var in struct {
		KeyID      string `json:"KeyId"`
		PolicyName string `json:"PolicyName"`
	}
	if err := decodeKMS(body, &in); err != nil {
		return nil, err
	}
	k, err := s.keys.DescribeKey(in.KeyID)
	if err != nil {
		return nil, err
	}
	// Who may use a key is the daemon's Policy, the same for every key.
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Id":"cowvol","Statement":[{"Sid":"daemon policy","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":%q}]}`, s.account, k.ARN)
	return map[string]any{"Policy": policy, "PolicyName": "default"}, nil
}

// kmsListRequest is the body of ListKeys and ListAliases (KeyId filters
// aliases; ListKeys refuses it).
type kmsListRequest struct {
	Limit  *int   `json:"Limit"`
	Marker string `json:"Marker"`
	KeyID  string `json:"KeyId"`
}

// kmsPage reads a list request and its page size.
func kmsPage(body []byte) (in kmsListRequest, limit int, err error) {
	if err := decodeKMS(body, &in); err != nil {
		return in, 0, err
	}
	limit = 100
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 1000 {
			return in, 0, kmsErr(kmsValidation, http.StatusBadRequest, "Limit must be between 1 and 1000.")
		}
		limit = *in.Limit
	}
	return in, limit, nil
}

// page returns items[marker:marker+limit] and the next marker ("" at the end).
func page[T any](items []T, limit int, marker string) ([]T, string, error) {
	start := 0
	if marker != "" {
		if _, err := fmt.Sscanf(marker, "%d", &start); err != nil || start < 0 || start > len(items) || fmt.Sprint(start) != marker {
			return nil, "", kmsErr(kmsValidation, http.StatusBadRequest, "Marker %q is not valid.", clip(marker))
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = fmt.Sprint(end)
	}
	return items[start:end], next, nil
}

func (s *Server) kmsListKeys(body []byte) (any, error) {
	in, limit, err := kmsPage(body)
	if err != nil {
		return nil, err
	}
	if in.KeyID != "" {
		return nil, kmsErr(kmsSerialization, http.StatusBadRequest, "ListKeys takes no KeyId.")
	}
	type entry struct {
		KeyID  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}
	var all []entry
	for _, k := range s.keys.ListKeys() {
		all = append(all, entry{k.KeyID, k.ARN})
	}
	keys, next, err := page(all, limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"Keys": keys, "Truncated": next != ""}
	if next != "" {
		out["NextMarker"] = next
	}
	return out, nil
}

func (s *Server) kmsListAliases(body []byte) (any, error) {
	in, limit, err := kmsPage(body)
	if err != nil {
		return nil, err
	}
	keys := s.keys.ListKeys()
	if in.KeyID != "" {
		k, err := s.keys.DescribeKey(in.KeyID)
		if err != nil {
			return nil, err
		}
		keys = []kms.KeyInfo{k}
	}
	type entry struct {
		AliasName       string  `json:"AliasName"`
		AliasArn        string  `json:"AliasArn"`
		TargetKeyID     string  `json:"TargetKeyId"`
		CreationDate    float64 `json:"CreationDate"`
		LastUpdatedDate float64 `json:"LastUpdatedDate"`
	}
	var all []entry
	for _, k := range keys {
		for _, a := range k.Aliases {
			arn := strings.TrimSuffix(k.ARN, "key/"+k.KeyID) + a
			t := float64(k.CreatedAt.UnixMilli()) / 1000
			all = append(all, entry{a, arn, k.KeyID, t, t})
		}
	}
	aliases, next, err := page(all, limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"Aliases": aliases, "Truncated": next != ""}
	if next != "" {
		out["NextMarker"] = next
	}
	return out, nil
}
