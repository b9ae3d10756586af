package cow

import (
	"errors"
	"fmt"
	"time"
)

// Snapshot locks, as EC2's LockSnapshot: a locked snapshot cannot be
// deleted by anyone (root on the socket included) until the lock expires
// or, in governance mode or in compliance mode's cooling-off period, is
// unlocked. The rules are here, as pure functions of the current lock, the
// request and the time; the lock is stored beside the snapshot's manifest
// (snapshot_lock_store.go) and the engine's calls are in
// snapshot_lock_api.go.

// LockMode is how a snapshot is locked.
type LockMode string

// Lock modes.
const (
	// LockGovernance: unlockable and changeable at any time.
	LockGovernance LockMode = "governance"
	// LockCompliance: unlockable and changeable only during the
	// cooling-off period; after it, the lock can only be extended.
	LockCompliance LockMode = "compliance"
)

// LockState is a lock's state at a given time, as DescribeLockedSnapshots
// reports it.
type LockState string

// Lock states.
const (
	LockStateComplianceCooloff LockState = "compliance-cooloff"
	LockStateGovernance        LockState = "governance"
	LockStateCompliance        LockState = "compliance"
	LockStateExpired           LockState = "expired"
)

// EC2's limits of LockSnapshot: LockDuration in days, CoolOffPeriod in
// hours; an ExpirationDate must lie within the same range of days from now.
const (
	MinLockDuration  = 1
	MaxLockDuration  = 36500
	MinCoolOffPeriod = 1
	MaxCoolOffPeriod = 72
)

// Lock errors (the control socket answers EC2's codes for them).
var (
	// ErrSnapshotLocked: the snapshot's lock forbids the operation
	// (deleting it, unlocking or weakening a compliance lock).
	ErrSnapshotLocked = errors.New("snapshot locked")
	// ErrLockParameterCombination: lock parameters that do not go
	// together (LockDuration and ExpirationDate, a cooling-off period in
	// governance mode).
	ErrLockParameterCombination = errors.New("invalid combination of lock parameters")
	// ErrLockParameterMissing: neither LockDuration nor ExpirationDate.
	ErrLockParameterMissing = errors.New("missing lock parameter")
	// ErrNotLocked: UnlockSnapshot of a snapshot without a lock in force.
	ErrNotLocked = errors.New("snapshot not locked")
	// ErrInvalidLockParameter: a lock parameter's value is out of range
	// (it is an ErrInvalidParameter).
	ErrInvalidLockParameter = fmt.Errorf("%w of a lock", ErrInvalidParameter)
)

// SnapshotLock is a snapshot's lock.
type SnapshotLock struct {
	SnapshotID string
	OwnerID    string
	Mode       LockMode
	// LockDuration is the duration asked for, in days; 0 when locked
	// until an ExpirationDate.
	LockDuration int
	// CoolOffPeriod is the cooling-off period asked for, in hours; 0:
	// none (always in governance mode).
	CoolOffPeriod int
	// CreatedOn: when the snapshot was first locked (kept while the lock
	// is changed); DurationStart: when the lock's duration started. A
	// lock made while its snapshot was pending starts its duration when
	// the snapshot completes, as EC2's: until then DurationStart is zero,
	// and so is ExpiresOn for a lock asked for a LockDuration (the lock
	// is in force meanwhile; see started).
	CreatedOn     time.Time
	DurationStart time.Time
	// CoolOffExpiresOn is the end of the cooling-off period; zero: none.
	CoolOffExpiresOn time.Time
	ExpiresOn        time.Time
}

// started is lock l of a snapshot that completed at done (zero: it has
// not): a lock whose duration awaited the completion starts then.
func (u lockUnits) started(l SnapshotLock, done time.Time) SnapshotLock {
	if !l.DurationStart.IsZero() || done.IsZero() {
		return l
	}
	l.DurationStart = done
	if l.LockDuration > 0 {
		l.ExpiresOn = done.Add(time.Duration(l.LockDuration) * u.day)
	}
	return l
}

// earliestEnd is the earliest l can expire, asked at now: its expiry, or
// for a duration not started yet, now plus the duration.
func (u lockUnits) earliestEnd(l SnapshotLock, now time.Time) time.Time {
	if l.ExpiresOn.IsZero() {
		return now.Add(time.Duration(l.LockDuration) * u.day)
	}
	return l.ExpiresOn
}

// State is the lock's state at now.
func (l SnapshotLock) State(now time.Time) LockState {
	switch {
	case !l.ExpiresOn.IsZero() && !now.Before(l.ExpiresOn):
		return LockStateExpired
	case l.Mode == LockGovernance:
		return LockStateGovernance
	case !l.CoolOffExpiresOn.IsZero() && now.Before(l.CoolOffExpiresOn):
		return LockStateComplianceCooloff
	}
	return LockStateCompliance
}

// LockRequest are the parameters of LockSnapshot; nil: not given.
type LockRequest struct {
	Mode           LockMode
	LockDuration   *int // days
	CoolOffPeriod  *int // hours
	ExpirationDate *time.Time
}

// lockUnits are the lengths of a lock's day and of a cooling-off hour:
// EC2's, or shorter in tests (Options.LockDay).
type lockUnits struct{ day, hour time.Duration }

func newLockUnits(day time.Duration) lockUnits {
	if day <= 0 {
		day = 24 * time.Hour
	}
	return lockUnits{day: day, hour: day / 24}
}

// checkLockRequest refuses a request that is wrong whatever the snapshot's
// current lock.
func (u lockUnits) checkLockRequest(r LockRequest, now time.Time) error {
	switch {
	case r.Mode != LockGovernance && r.Mode != LockCompliance:
		return fmt.Errorf("%w: LockMode %q: expecting governance or compliance", ErrInvalidLockParameter, r.Mode)
	case r.LockDuration != nil && r.ExpirationDate != nil:
		return fmt.Errorf("%w: LockDuration and ExpirationDate cannot both be given", ErrLockParameterCombination)
	case r.LockDuration == nil && r.ExpirationDate == nil:
		return fmt.Errorf("%w: either LockDuration or ExpirationDate must be given", ErrLockParameterMissing)
	case r.CoolOffPeriod != nil && r.Mode == LockGovernance:
		return fmt.Errorf("%w: CoolOffPeriod applies to compliance mode only", ErrLockParameterCombination)
	case r.CoolOffPeriod != nil && (*r.CoolOffPeriod < MinCoolOffPeriod || *r.CoolOffPeriod > MaxCoolOffPeriod):
		return fmt.Errorf("%w: CoolOffPeriod %d: expecting %d to %d hours", ErrInvalidLockParameter, *r.CoolOffPeriod, MinCoolOffPeriod, MaxCoolOffPeriod)
	case r.LockDuration != nil && (*r.LockDuration < MinLockDuration || *r.LockDuration > MaxLockDuration):
		return fmt.Errorf("%w: LockDuration %d: expecting %d to %d days", ErrInvalidLockParameter, *r.LockDuration, MinLockDuration, MaxLockDuration)
	}
	if r.ExpirationDate != nil {
		min, max := now.Add(MinLockDuration*u.day), now.Add(MaxLockDuration*u.day)
		if r.ExpirationDate.Before(min) || r.ExpirationDate.After(max) {
			return fmt.Errorf("%w: ExpirationDate %s: expecting a time from %d to %d days from now", ErrInvalidLockParameter,
				r.ExpirationDate.UTC().Format(time.RFC3339), MinLockDuration, MaxLockDuration)
		}
	}
	return nil
}

// nextLock is the lock that request r makes of completed snapshot id's
// current lock cur (nil: none) at now, or why it may not be made.
func (u lockUnits) nextLock(cur *SnapshotLock, id, owner string, r LockRequest, now time.Time) (SnapshotLock, error) {
	return u.nextLockFrom(cur, id, owner, r, now, now)
}

// nextLockFrom is nextLock for a lock whose duration starts at start: now,
// or zero while the snapshot is pending (it starts when it completes).
func (u lockUnits) nextLockFrom(cur *SnapshotLock, id, owner string, r LockRequest, now, start time.Time) (SnapshotLock, error) {
	if err := u.checkLockRequest(r, now); err != nil {
		return SnapshotLock{}, err
	}
	n := SnapshotLock{SnapshotID: id, OwnerID: owner, Mode: r.Mode, CreatedOn: now, DurationStart: start}
	state := LockStateExpired
	if cur != nil {
		state = cur.State(now)
	}
	if state != LockStateExpired {
		// A change: the lock keeps its creation and its duration's start.
		n.CreatedOn, n.DurationStart = cur.CreatedOn, cur.DurationStart
	}
	if r.LockDuration != nil {
		n.LockDuration = *r.LockDuration
		if !n.DurationStart.IsZero() {
			n.ExpiresOn = n.DurationStart.Add(time.Duration(n.LockDuration) * u.day)
		}
	} else {
		n.ExpiresOn = *r.ExpirationDate
	}
	if r.CoolOffPeriod != nil {
		n.CoolOffPeriod = *r.CoolOffPeriod
		n.CoolOffExpiresOn = now.Add(time.Duration(n.CoolOffPeriod) * u.hour)
	}
	if state != LockStateCompliance {
		if !n.ExpiresOn.IsZero() && !n.ExpiresOn.After(now) {
			return SnapshotLock{}, fmt.Errorf("%w: the lock would expire at once (its duration started %s)", ErrInvalidLockParameter,
				n.DurationStart.UTC().Format(time.RFC3339))
		}
		return n, nil
	}
	// Compliance mode after the cooling-off period: extend only.
	switch {
	case r.Mode != LockCompliance:
		return SnapshotLock{}, fmt.Errorf("%w: snapshot %s is locked in compliance mode and its cooling-off period has ended: its lock mode cannot change", ErrSnapshotLocked, id)
	case r.CoolOffPeriod != nil:
		return SnapshotLock{}, fmt.Errorf("%w: snapshot %s is locked in compliance mode and its cooling-off period has ended: omit CoolOffPeriod", ErrSnapshotLocked, id)
	case u.earliestEnd(n, now).Before(u.earliestEnd(*cur, now)):
		return SnapshotLock{}, fmt.Errorf("%w: snapshot %s is locked in compliance mode %s and its cooling-off period has ended: the lock can only be extended",
			ErrSnapshotLocked, id, cur.until())
	}
	n.CoolOffPeriod, n.CoolOffExpiresOn = cur.CoolOffPeriod, cur.CoolOffExpiresOn
	return n, nil
}

// checkUnlock says whether lock cur (nil: none) may be removed at now.
func checkUnlock(cur *SnapshotLock, id string, now time.Time) error {
	state := LockStateExpired
	if cur != nil {
		state = cur.State(now)
	}
	switch state {
	case LockStateExpired:
		return fmt.Errorf("%w: snapshot %s is not locked", ErrNotLocked, id)
	case LockStateCompliance:
		return fmt.Errorf("%w: snapshot %s is locked in compliance mode %s and its cooling-off period has ended: it cannot be unlocked",
			ErrSnapshotLocked, id, cur.until())
	}
	return nil
}

// checkDelete says whether a snapshot with lock cur (nil: none) may be
// deleted at now: only once the lock has expired.
func checkDelete(cur *SnapshotLock, id string, now time.Time) error {
	if cur == nil {
		return nil
	}
	switch st := cur.State(now); st {
	case LockStateExpired:
		return nil
	case LockStateCompliance:
		return fmt.Errorf("%w: snapshot %s is locked in compliance mode %s", ErrSnapshotLocked, id, cur.until())
	default:
		return fmt.Errorf("%w: snapshot %s is locked (%s) %s; unlock it first", ErrSnapshotLocked, id, st, cur.until())
	}
}

// until says in words how long l lasts, for messages.
func (l SnapshotLock) until() string {
	if l.ExpiresOn.IsZero() {
		return fmt.Sprintf("for %d days from the snapshot's completion", l.LockDuration)
	}
	return "until " + l.ExpiresOn.UTC().Format(time.RFC3339)
}
