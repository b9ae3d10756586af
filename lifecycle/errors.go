package lifecycle

import (
	"errors"
	"fmt"
)

// Kinds of errors the API's callers tell apart (errors.Is); each is DLM's
// exception of the same name.
var (
	ErrInvalidRequest = errors.New("InvalidRequestException")
	ErrNotFound       = errors.New("ResourceNotFoundException")
	ErrLimitExceeded  = errors.New("LimitExceededException")
)

// Error is an error for the API's caller: its kind and a message for the
// client.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func invalidf(format string, args ...any) error {
	return &Error{Kind: ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}
}
