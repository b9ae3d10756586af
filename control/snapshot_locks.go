package control

import (
	"context"
	"encoding/xml"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// Snapshot locks: LockSnapshot, UnlockSnapshot and DescribeLockedSnapshots,
// as EC2 has them (the rules are the engine's, cow/snapshot_lock.go).

// CodeSnapshotLocked is the error of an operation a snapshot's lock
// forbids: DeleteSnapshot of a locked snapshot, UnlockSnapshot or a
// weakening LockSnapshot of one locked in compliance mode after its
// cooling-off period.
const CodeSnapshotLocked = "SnapshotLocked"

// snapshotLocker is what the lock actions need of the backend; *cow.Engine
// has it.
type snapshotLocker interface {
	LockSnapshot(ctx context.Context, id string, r cow.LockRequest) (cow.SnapshotLock, error)
	UnlockSnapshot(ctx context.Context, id string) error
	DescribeLockedSnapshots(ctx context.Context, ids []string) ([]cow.SnapshotLock, error)
}

var _ snapshotLocker = (*cow.Engine)(nil)

// LockedSnapshot is a snapshot's lock on the wire (LockSnapshot's answer
// and an <item> of DescribeLockedSnapshots' <snapshotSet>).
type LockedSnapshot struct {
	OwnerID                string     `xml:"ownerId,omitempty"`
	SnapshotID             string     `xml:"snapshotId"`
	LockState              string     `xml:"lockState"`
	LockDuration           int        `xml:"lockDuration,omitempty"`
	CoolOffPeriod          int        `xml:"coolOffPeriod,omitempty"`
	CoolOffPeriodExpiresOn *Timestamp `xml:"coolOffPeriodExpiresOn,omitempty"`
	LockCreatedOn          Timestamp  `xml:"lockCreatedOn"`
	// Absent while a lock made on a pending snapshot waits for its
	// completion to start (LockExpiresOn too when it is a duration).
	LockDurationStartTime *Timestamp `xml:"lockDurationStartTime,omitempty"`
	LockExpiresOn         *Timestamp `xml:"lockExpiresOn,omitempty"`
}

// LockSnapshotResponse answers LockSnapshot.
type LockSnapshotResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ LockSnapshotResponse"`
	ResponseMetadata
	LockedSnapshot
}

// UnlockSnapshotResponse answers UnlockSnapshot.
type UnlockSnapshotResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ UnlockSnapshotResponse"`
	ResponseMetadata
	SnapshotID string `xml:"snapshotId"`
}

// DescribeLockedSnapshotsResponse answers DescribeLockedSnapshots.
type DescribeLockedSnapshotsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeLockedSnapshotsResponse"`
	ResponseMetadata
	SnapshotSet LockedSnapshotSet `xml:"snapshotSet"`
	NextToken   string            `xml:"nextToken,omitempty"`
}

// LockedSnapshotSet is the <snapshotSet> of DescribeLockedSnapshots.
type LockedSnapshotSet struct {
	Items []LockedSnapshot `xml:"item"`
}

func wireLock(l cow.SnapshotLock, now time.Time) LockedSnapshot {
	w := LockedSnapshot{OwnerID: l.OwnerID, SnapshotID: l.SnapshotID, LockState: string(l.State(now)),
		LockDuration: l.LockDuration, CoolOffPeriod: l.CoolOffPeriod, LockCreatedOn: Timestamp{l.CreatedOn},
		LockDurationStartTime: optionalTime(l.DurationStart), LockExpiresOn: optionalTime(l.ExpiresOn),
		CoolOffPeriodExpiresOn: optionalTime(l.CoolOffExpiresOn)}
	return w
}

// locker is the backend's lock calls, or the error for a backend without
// them.
func (s *Server) locker() (snapshotLocker, *APIError) {
	return optionalBackend[snapshotLocker](s, "snapshot locks")
}

// readLockRequest reads LockSnapshot's LockMode, LockDuration,
// CoolOffPeriod and ExpirationDate; the engine checks their values.
func readLockRequest(p *params) (cow.LockRequest, *APIError) {
	var r cow.LockRequest
	mode, _ := p.get("LockMode")
	if mode == "" {
		return r, missingParam("LockMode")
	}
	r.Mode = cow.LockMode(mode)
	for _, f := range []struct {
		name string
		dst  **int
	}{{"LockDuration", &r.LockDuration}, {"CoolOffPeriod", &r.CoolOffPeriod}} {
		n, given, e := p.integer(f.name)
		if e != nil {
			return r, e
		}
		if given {
			if n > math.MaxInt32 { // beyond any valid value; the engine checks the rest
				return r, invalidValue("Value (%d) for parameter %s is invalid: it is out of range.", n, f.name)
			}
			v := int(n)
			*f.dst = &v
		}
	}
	if v, ok := p.get("ExpirationDate"); ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return r, invalidValue("Value (%s) for parameter ExpirationDate is invalid. Expected a UTC time as YYYY-MM-DDThh:mm:ss.sssZ.", clip(v))
		}
		r.ExpirationDate = &t
	}
	return r, nil
}

// lockCall is what LockSnapshot and UnlockSnapshot read alike: DryRun,
// the snapshot, and the backend's lock calls.
type lockCall struct {
	id     string
	dryRun bool
	locker snapshotLocker
}

// readLockCall reads DryRun and SnapshotId, then the call's own parameters
// (readOwn, if any), refuses any other, and finds the backend's lock calls.
func (s *Server) readLockCall(p *params, readOwn func() *APIError) (lockCall, *APIError) {
	var c lockCall
	var e *APIError
	if c.dryRun, e = p.boolean("DryRun"); e != nil {
		return c, e
	}
	if c.id, e = snapshotIDParam(p); e != nil {
		return c, e
	}
	if readOwn != nil {
		if e := readOwn(); e != nil {
			return c, e
		}
	}
	if e := p.unknown(); e != nil {
		return c, e
	}
	c.locker, e = s.locker()
	return c, e
}

// lockSnapshot: SnapshotId, LockMode, LockDuration | ExpirationDate,
// CoolOffPeriod, DryRun.
func (s *Server) lockSnapshot(ctx context.Context, p *params) (response, error) {
	var r cow.LockRequest
	c, e := s.readLockCall(p, func() (e *APIError) {
		r, e = readLockRequest(p)
		return e
	})
	if e != nil {
		return nil, e
	}
	if c.dryRun {
		return nil, s.dryRunOnSnapshot(c.id)
	}
	lock, err := c.locker.LockSnapshot(ctx, c.id, r)
	if err != nil {
		return nil, backendErr("lock snapshot", err, c.id)
	}
	w := wireLock(lock, time.Now())
	w.OwnerID = "" // LockSnapshot's answer has no ownerId
	return &LockSnapshotResponse{LockedSnapshot: w}, nil
}

// unlockSnapshot: SnapshotId, DryRun.
func (s *Server) unlockSnapshot(ctx context.Context, p *params) (response, error) {
	c, e := s.readLockCall(p, nil)
	if e != nil {
		return nil, e
	}
	if c.dryRun {
		return nil, s.dryRunOnSnapshot(c.id)
	}
	if err := c.locker.UnlockSnapshot(ctx, c.id); err != nil {
		return nil, backendErr("unlock snapshot", err, c.id)
	}
	return &UnlockSnapshotResponse{SnapshotID: c.id}, nil
}

// lockedSnapshotKind describes locks to the shared Describe machinery.
var lockedSnapshotKind = &describeKind[LockedSnapshot]{
	idParam:   "SnapshotId",
	setName:   "snapshotSet",
	noun:      "snapshot",
	maxLimit:  maxDescribeSnapshots,
	validID:   cow.ValidSnapshotID,
	malformed: malformedSnapshotID,
	notFound:  snapshotNotFound,
	id:        func(l *LockedSnapshot) string { return l.SnapshotID },
	attrs: map[string]func(l *LockedSnapshot) string{
		"lock-state": func(l *LockedSnapshot) string { return l.LockState },
	},
}

// describeLockedSnapshots: SnapshotId.N, Filter.N (lock-state),
// MaxResults, NextToken, DryRun. A named snapshot without a lock is left
// out of the answer.
func (s *Server) describeLockedSnapshots(ctx context.Context, p *params) (response, error) {
	r, e := lockedSnapshotKind.read(p)
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	l, e := s.locker()
	if e != nil {
		return nil, e
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	locks, err := l.DescribeLockedSnapshots(ctx, r.ids)
	if err != nil {
		id := ""
		if len(r.ids) == 1 {
			id = r.ids[0]
		}
		return nil, backendErr("describe locked snapshots", err, id)
	}
	now := time.Now()
	all := make([]LockedSnapshot, 0, len(locks))
	for _, lk := range locks {
		all = append(all, wireLock(lk, now))
	}
	r.ids = nil // checked by the engine; those without a lock are left out
	page, next, e := lockedSnapshotKind.answer(all, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeLockedSnapshotsResponse{SnapshotSet: LockedSnapshotSet{Items: page}, NextToken: next}, nil
}

// lockError is the EC2 error for the engine's lock errors.
func lockError(err error) (*APIError, bool) {
	switch {
	case errors.Is(err, cow.ErrSnapshotLocked):
		return &APIError{Code: CodeSnapshotLocked, Message: sentence(detail(err, cow.ErrSnapshotLocked)), StatusCode: http.StatusBadRequest}, true
	case errors.Is(err, cow.ErrLockParameterCombination):
		return apiErr(CodeInvalidParameterCombination, "%s", sentence(detail(err, cow.ErrLockParameterCombination))), true
	case errors.Is(err, cow.ErrLockParameterMissing):
		return apiErr(CodeMissingParameter, "%s", sentence(detail(err, cow.ErrLockParameterMissing))), true
	case errors.Is(err, cow.ErrInvalidLockParameter):
		return invalidValue("%s", sentence(detail(err, cow.ErrInvalidLockParameter))), true
	case errors.Is(err, cow.ErrNotLocked):
		return apiErr(CodeIncorrectState, "%s", sentence(detail(err, cow.ErrNotLocked))), true
	}
	return nil, false
}
