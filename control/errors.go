package control

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// EC2 error codes this package answers with.
const (
	CodeAuthFailure                 = "AuthFailure"
	CodeDryRunOperation             = "DryRunOperation"
	CodeIdempotentParameterMismatch = "IdempotentParameterMismatch"
	CodeIncompleteSignature         = "IncompleteSignature"
	CodeInsufficientVolumeCapacity  = "InsufficientVolumeCapacity"
	CodeInternalError               = "InternalError"
	CodeInvalidAction               = "InvalidAction"
	CodeInvalidPaginationToken      = "InvalidPaginationToken"
	CodeInvalidParameterCombination = "InvalidParameterCombination"
	CodeInvalidParameterValue       = "InvalidParameterValue"
	CodeInvalidSnapshotIDMalformed  = "InvalidSnapshotID.Malformed"
	CodeInvalidVolumeIDMalformed    = "InvalidVolumeID.Malformed"
	CodeInvalidVolumeNotFound       = "InvalidVolume.NotFound"
	CodeMalformedQueryString        = "MalformedQueryString"
	CodeMethodNotAllowed            = "MethodNotAllowed"
	CodeMissingAction               = "MissingAction"
	CodeMissingAuthenticationToken  = "MissingAuthenticationToken"
	CodeMissingParameter            = "MissingParameter"
	CodeNoSuchVersion               = "NoSuchVersion"
	CodeRequestEntityTooLarge       = "RequestEntityTooLarge"
	CodeRequestExpired              = "RequestExpired"
	CodeServiceUnavailable          = "ServiceUnavailable"
	CodeUnauthorizedOperation       = "UnauthorizedOperation"
	CodeUnknownParameter            = "UnknownParameter"
	CodeUnsupportedOperation        = "UnsupportedOperation"
	CodeVolumeInUse                 = "VolumeInUse"
	CodeInvalidSnapshotNotFound     = "InvalidSnapshot.NotFound"
	CodeIncorrectState              = "IncorrectState"
	CodeConcurrentSnapshotLimit     = "ConcurrentSnapshotLimitExceeded"
	CodeInvalidKMSKeyInvalidState   = "InvalidKMSKey.InvalidState"
	CodeInvalidKMSKeyNotFound       = "InvalidKMSKey.NotFound"
	CodeInvalidParameterDependency  = "InvalidParameterDependency"
)

// APIError is an EC2 error: the server answers with it and the Client
// returns it (as *APIError) for every error response of the daemon.
type APIError struct {
	Code       string // e.g. InvalidVolume.NotFound
	Message    string
	RequestID  string // set by the Client from the response
	StatusCode int    // HTTP status

	// reason, if set, says why the server refused the request, for its
	// log: more than the client is told (e.g. which check of a SigV4
	// signature failed). Never sent.
	reason string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// because sets the reason the server logs for e, and returns e.
func (e *APIError) because(reason string) *APIError {
	e.reason = reason
	return e
}

// apiErr makes a 400 error with a formatted message.
func apiErr(code, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...), StatusCode: http.StatusBadRequest}
}

func invalidValue(format string, args ...any) *APIError {
	return apiErr(CodeInvalidParameterValue, format, args...)
}

func missingParam(name string) *APIError {
	return apiErr(CodeMissingParameter, "The request must contain the parameter %s", name)
}

func errDryRun() *APIError {
	return &APIError{
		Code:       CodeDryRunOperation,
		Message:    "Request would have succeeded, but DryRun flag is set.",
		StatusCode: http.StatusPreconditionFailed,
	}
}

func errUnauthorized(c Caller, action string) *APIError {
	return &APIError{
		Code:       CodeUnauthorizedOperation,
		Message:    fmt.Sprintf("You are not authorized to perform this operation: %s may not call %s.", c, action),
		StatusCode: http.StatusForbidden,
	}
}

func errInternal() *APIError {
	return &APIError{
		Code:       CodeInternalError,
		Message:    "An internal error has occurred.",
		StatusCode: http.StatusInternalServerError,
	}
}

func malformedVolumeID(id string) *APIError {
	return apiErr(CodeInvalidVolumeIDMalformed, "Invalid id: %q (expecting \"vol-...\")", clip(id))
}

func malformedSnapshotID(id string) *APIError {
	return apiErr(CodeInvalidSnapshotIDMalformed, "Invalid id: %q (expecting \"snap-...\")", clip(id))
}

func snapshotNotFound(id string) *APIError {
	return apiErr(CodeInvalidSnapshotNotFound, "The snapshot '%s' does not exist.", id)
}

func volumeNotFound(id string) *APIError {
	return apiErr(CodeInvalidVolumeNotFound, "The volume '%s' does not exist.", id)
}

// backendError translates an engine error into the EC2 error to answer;
// id names the volume or snapshot the request is about. ok is false for
// errors that are not the client's doing: the caller logs those and
// answers InternalError.
func backendError(err error, id string) (*APIError, bool) {
	volumeID := id
	if e, ok := lockError(err); ok { // snapshot_locks.go
		return e, true
	}
	switch {
	case errors.Is(err, cow.ErrSnapshotNotFound):
		return snapshotNotFound(id), true
	case errors.Is(err, cow.ErrConcurrentSnapshotLimit):
		return apiErr(CodeConcurrentSnapshotLimit,
			"The volume %s has %d pending snapshots, the most allowed; wait for one to complete.", id, cow.MaxPendingSnapshots), true
	case errors.Is(err, cow.ErrOutpostMismatch):
		// The sentinel's text is the message EC2 gives; the engine
		// adds which ARN it refused.
		return invalidValue("%s", sentence(err.Error())), true
	case errors.Is(err, cow.ErrIncorrectState):
		// E.g. DeleteVolume of a volume with pending snapshots: the
		// engine's explanation, without the sentinel's "incorrect state: ".
		return apiErr(CodeIncorrectState, "%s", sentence(detail(err, cow.ErrIncorrectState))), true
	case errors.Is(err, cow.ErrVolumeNotFound):
		return volumeNotFound(volumeID), true
	case errors.Is(err, cow.ErrVolumeInUse):
		return apiErr(CodeVolumeInUse,
			"Volume %s is currently attached to a process (its volume file is open, e.g. by a loop device).", volumeID), true
	case errors.Is(err, cow.ErrInvalidSize), errors.Is(err, cow.ErrInvalidBlockSize), errors.Is(err, cow.ErrInvalidParameter):
		return invalidValue("%s", err.Error()), true
	case errors.Is(err, cow.ErrIdempotentMismatch):
		return apiErr(CodeIdempotentParameterMismatch,
			"The client token you have provided is associated with a resource that is already created with different parameters."), true
	case errors.Is(err, cow.ErrTagLimitExceeded):
		return apiErr(CodeTagLimitExceeded, "The maximum number of Tags for a resource has been reached (%d).", cow.MaxTags), true
	case errors.Is(err, cow.ErrNoCreateVolumePermission):
		// As EC2: another account's snapshot not shared with this one
		// does not exist for it.
		return snapshotNotFound(id), true
	case errors.Is(err, cow.ErrNotOwner):
		return &APIError{
			Code:       CodeUnauthorizedOperation,
			Message:    fmt.Sprintf("You are not authorized to perform this operation: snapshot %s belongs to another account.", id),
			StatusCode: http.StatusForbidden,
		}, true
	case errors.Is(err, cow.ErrNoSpace):
		return &APIError{
			Code:       CodeInsufficientVolumeCapacity,
			Message:    "There is not enough free space in the daemon's data directory.",
			StatusCode: http.StatusInternalServerError,
		}, true
	case errors.Is(err, cow.ErrStoreFull):
		return &APIError{
			Code:       CodeInsufficientVolumeCapacity,
			Message:    sentence(err.Error()),
			StatusCode: http.StatusInternalServerError,
		}, true
	case errors.Is(err, kms.ErrKeyDisabled):
		return apiErr(CodeInvalidKMSKeyInvalidState, "The KMS key provided is in an incorrect state: %s", sentence(err.Error())), true
	case errors.Is(err, kms.ErrKeyNotFound):
		return apiErr(CodeInvalidKMSKeyNotFound, "The KMS key provided does not exist: %s", sentence(err.Error())), true
	case errors.Is(err, kms.ErrInvalidKeyID):
		return invalidValue("Invalid KmsKeyId: %s (expecting a key ID, key ARN, alias/NAME or alias ARN).", sentence(err.Error())), true
	case errors.Is(err, cow.ErrParameterDependency):
		return apiErr(CodeInvalidParameterDependency, "The parameter KmsKeyId requires the parameter Encrypted to be set."), true
	case errors.Is(err, cow.ErrNoKeyManager):
		return invalidValue("%s", sentence(err.Error())), true
	case errors.Is(err, cow.ErrClosed):
		return &APIError{
			Code:       CodeServiceUnavailable,
			Message:    "The daemon is shutting down.",
			StatusCode: http.StatusServiceUnavailable,
		}, true
	}
	return nil, false
}

// detail is err's message after the text of sentinel (which it wraps as
// "sentinel: detail"), or the whole message if it has no such form.
func detail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, sentinel.Error()+": "); i >= 0 {
		return msg[i+len(sentinel.Error())+2:]
	}
	return msg
}

// sentence makes an engine message read as EC2's do: capitalized, with a
// final period.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// snapshotNotCompleted is EC2's answer to using a snapshot that is not
// completed yet (or failed).
func snapshotNotCompleted(id string) *APIError {
	return apiErr(CodeIncorrectState, "Snapshot '%s' is not 'completed'.", id)
}

// errorResponse is the body of every EC2 error answer.
type errorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []xmlError `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type xmlError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// clip shortens user input echoed in error messages.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary: input has been checked to be UTF-8.
	n := max
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
