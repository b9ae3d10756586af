package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Access is what a caller may do.
type Access int

const (
	// AccessNone: every request is refused with UnauthorizedOperation.
	AccessNone Access = iota
	// AccessReadOnly: Describe* only.
	AccessReadOnly
	// AccessFull: every operation.
	AccessFull
)

func (a Access) String() string {
	switch a {
	case AccessNone:
		return "none"
	case AccessReadOnly:
		return "read-only"
	case AccessFull:
		return "full"
	}
	return "Access(" + strconv.Itoa(int(a)) + ")"
}

// ParseAccess parses "full" or "read-only".
func ParseAccess(s string) (Access, error) {
	switch s {
	case "full":
		return AccessFull, nil
	case "read-only":
		return AccessReadOnly, nil
	}
	return AccessNone, fmt.Errorf("access %q: want full or read-only", s)
}

// Caller is who sent a request, as its transport proved it: the kernel's
// word for a unix socket peer, a valid SigV4 signature for TCP.
type Caller struct {
	// Unix socket peers (Unix is true): credentials from SO_PEERCRED and
	// SO_PEERGROUPS, taken when the peer connected.
	Unix     bool
	PID      int32
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	// SigV4 callers: the access key that signed the request, and the
	// access its credentials file entry grants.
	AccessKeyID string
	KeyAccess   Access
}

// String names the caller for logs and error messages.
func (c Caller) String() string {
	if c.Unix {
		return fmt.Sprintf("uid %d gid %d (pid %d)", c.UID, c.GID, c.PID)
	}
	if c.AccessKeyID != "" {
		return "access key " + c.AccessKeyID
	}
	return "an unidentified caller"
}

// Policy decides what unix socket peers may do. Root and the daemon's own
// user have full access; so do the listed users and the members (primary
// or supplementary) of the listed groups. Members of ReadOnlyGIDs may call
// Describe* only. Everyone else is refused.
type Policy struct {
	AllowUIDs    []uint32
	AllowGIDs    []uint32
	ReadOnlyGIDs []uint32
}

// access is what the policy grants c.
func (p Policy) access(c Caller) Access {
	if !c.Unix {
		return c.KeyAccess
	}
	if c.UID == 0 || c.UID == uint32(os.Geteuid()) || slices.Contains(p.AllowUIDs, c.UID) {
		return AccessFull
	}
	if c.memberOfAny(p.AllowGIDs) {
		return AccessFull
	}
	if c.memberOfAny(p.ReadOnlyGIDs) {
		return AccessReadOnly
	}
	return AccessNone
}

func (c Caller) memberOfAny(gids []uint32) bool {
	for _, g := range gids {
		if c.GID == g || slices.Contains(c.Groups, g) {
			return true
		}
	}
	return false
}

// String describes the policy for the daemon's start-up log.
func (p Policy) String() string {
	ids := func(v []uint32) string {
		s := make([]string, len(v))
		for i, id := range v {
			s[i] = strconv.FormatUint(uint64(id), 10)
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	return fmt.Sprintf("root and uid %d; uids %s; gids %s; read-only gids %s",
		os.Geteuid(), ids(p.AllowUIDs), ids(p.AllowGIDs), ids(p.ReadOnlyGIDs))
}

type callerKey struct{}

// withCaller returns ctx carrying the caller (or the error that kept the
// transport from identifying it).
func withCaller(ctx context.Context, c Caller, err error) context.Context {
	return context.WithValue(ctx, callerKey{}, callerOrErr{c, err})
}

type callerOrErr struct {
	c   Caller
	err error
}

// callerFrom returns the caller ctx carries, or the error that kept the
// transport from identifying it. A context without either is a bug of
// the server's set-up, reported as an error too.
func callerFrom(ctx context.Context) (Caller, error) {
	v, ok := ctx.Value(callerKey{}).(callerOrErr)
	if !ok {
		return Caller{}, errNoCaller
	}
	return v.c, v.err
}

var errNoCaller = errors.New("the request came by no transport that identifies callers")
