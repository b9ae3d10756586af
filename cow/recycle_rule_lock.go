package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// Recycle Bin rule locks (the rbin API's LockRule, UnlockRule and
// CreateRule's LockConfiguration), as AWS's: a locked rule cannot be
// updated or deleted, so whoever gets the API's credentials cannot drop
// the rule and then the snapshots it would keep.
//
//   - Only Region-level rules (no resource tags) without exclusion tags
//     can be locked.
//   - A lock has an unlock delay of 7 to 30 DAYS. UnlockRule starts it:
//     the rule is pending_unlock until the delay ends (its LockEndTime),
//     then unlocked. Nothing shortens the delay.
//   - A rule locked or pending unlock refuses UpdateRule and DeleteRule
//     (ErrRecycleRuleLockConflict); its own tags can still change.
//   - A rule pending unlock can be locked again, with the delay it has
//     (AWS: the delay cannot change after the lock); once unlocked, a new
//     lock may have another delay.
//   - A rule once locked never goes back to "never locked": it is
//     unlocked. A rule never locked answers unlocked too.
//
// The lock is stored with the rule (meta.RecycleRuleLock), durably, like
// the rule's other changes. A DAY is the rules' retention DAY
// (Options.RecycleBinDay, shorter only in tests).

// RecycleRuleLock is a rule's lock; see meta.RecycleRuleLock.
type RecycleRuleLock = meta.RecycleRuleLock

// Rule lock states, as the rbin API's LockState.
const (
	RuleLocked        = meta.RuleLocked
	RulePendingUnlock = meta.RulePendingUnlock
	RuleUnlocked      = meta.RuleUnlocked
)

// Limits of a rule lock's unlock delay, as AWS's.
const (
	UnlockDelayUnitDays = "DAYS"
	MinUnlockDelayDays  = 7
	MaxUnlockDelayDays  = 30
)

// ErrRecycleRuleLockConflict: the rule's lock state forbids the change (a
// locked rule updated, deleted or locked again; an unlocked one unlocked;
// a tag-level rule locked).
var ErrRecycleRuleLockConflict = errors.New("recycle bin rule lock state forbids it")

// RecycleRuleLockState returns rule r's lock state at now and, while it is
// pending unlock, when its unlock delay ends (zero otherwise).
func RecycleRuleLockState(r RecycleRule, now time.Time) (state string, end time.Time) {
	switch {
	case r.Lock == nil, r.Lock.State == RuleUnlocked:
		return RuleUnlocked, time.Time{}
	case r.Lock.State == RulePendingUnlock && !now.Before(r.Lock.UnlockAt):
		return RuleUnlocked, time.Time{}
	case r.Lock.State == RulePendingUnlock:
		return RulePendingUnlock, r.Lock.UnlockAt
	}
	return RuleLocked, time.Time{}
}

// NewRecycleRuleLock checks an unlock delay (ErrInvalidRecycleRule) and
// returns a lock, locked, with it: CreateRule's LockConfiguration.
func NewRecycleRuleLock(value int, unit string) (*RecycleRuleLock, error) {
	switch {
	case unit != UnlockDelayUnitDays:
		return nil, fmt.Errorf("%w: unlock delay unit %q: only %s", ErrInvalidRecycleRule, unit, UnlockDelayUnitDays)
	case value < MinUnlockDelayDays || value > MaxUnlockDelayDays:
		return nil, fmt.Errorf("%w: unlock delay %d days: from %d to %d", ErrInvalidRecycleRule, value, MinUnlockDelayDays, MaxUnlockDelayDays)
	}
	return &RecycleRuleLock{State: RuleLocked, UnlockDelayValue: value, UnlockDelayUnit: unit}, nil
}

// validateRuleLock checks rule r's lock: a rule locked or pending unlock
// has a valid unlock delay and is Region-level without exclusion tags
// (ErrInvalidRecycleRule).
func validateRuleLock(r RecycleRule) error {
	if state, _ := RecycleRuleLockState(r, time.Now()); state == RuleUnlocked {
		return nil
	}
	if _, err := NewRecycleRuleLock(r.Lock.UnlockDelayValue, r.Lock.UnlockDelayUnit); err != nil {
		return err
	}
	if len(r.ResourceTags) > 0 || len(r.ExcludeTags) > 0 {
		return fmt.Errorf("%w: only Region-level rules without exclusion tags can be locked", ErrInvalidRecycleRule)
	}
	return nil
}

// refuseLocked refuses (ErrRecycleRuleLockConflict) to change rule id
// while it is locked or pending unlock; ErrRecycleRuleNotFound if there
// is no such rule. The caller holds rb.mu.
func (rb ruleBook) refuseLocked(id string) error {
	r, err := rb.get(id)
	if err != nil {
		return err
	}
	if state, end := RecycleRuleLockState(r, time.Now()); state != RuleUnlocked {
		return lockConflict(r.ID, state, end)
	}
	return nil
}

func lockConflict(id, state string, end time.Time) error {
	if state == RulePendingUnlock {
		return fmt.Errorf("%w: rule %s is pending unlock until %s", ErrRecycleRuleLockConflict, id, end.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%w: rule %s is %s", ErrRecycleRuleLockConflict, id, state)
}

// LockRecycleRule locks rule id with an unlock delay of value DAYS: a rule
// unlocked (or never locked), or pending unlock with that same delay.
func (e *Engine) LockRecycleRule(_ context.Context, id string, value int, unit string) (RecycleRule, error) {
	return e.rules.lock(id, value, unit)
}

// lock locks rule id with an unlock delay of value DAYS (see LockRecycleRule).
func (rb ruleBook) lock(id string, value int, unit string) (RecycleRule, error) {
	lock, err := NewRecycleRuleLock(value, unit)
	if err != nil {
		return RecycleRule{}, err
	}
	return rb.changeLock(id, "locked", func(r RecycleRule, state string, end time.Time) (*RecycleRuleLock, error) {
		switch {
		case len(r.ResourceTags) > 0 || len(r.ExcludeTags) > 0:
			return nil, fmt.Errorf("%w: rule %s has resource or exclusion tags: only Region-level rules without exclusion tags can be locked",
				ErrRecycleRuleLockConflict, r.ID)
		case state == RuleLocked:
			return nil, lockConflict(r.ID, state, end)
		case state == RulePendingUnlock && r.Lock.UnlockDelayValue != value:
			return nil, fmt.Errorf("%w: rule %s is pending unlock with an unlock delay of %d days, which cannot change until it ends at %s",
				ErrRecycleRuleLockConflict, r.ID, r.Lock.UnlockDelayValue, end.UTC().Format(time.RFC3339))
		}
		return lock, nil
	})
}

// UnlockRecycleRule starts rule id's unlock delay: the rule, locked, is
// pending unlock until the delay ends, then unlocked.
func (e *Engine) UnlockRecycleRule(_ context.Context, id string) (RecycleRule, error) {
	return e.rules.unlock(id)
}

// unlock starts rule id's unlock delay (see UnlockRecycleRule).
func (rb ruleBook) unlock(id string) (RecycleRule, error) {
	return rb.changeLock(id, "unlocking", func(r RecycleRule, state string, end time.Time) (*RecycleRuleLock, error) {
		if state != RuleLocked {
			return nil, lockConflict(r.ID, state, end)
		}
		l := *r.Lock
		l.State = RulePendingUnlock
		l.UnlockAt = time.Now().UTC().Add(time.Duration(l.UnlockDelayValue) * rb.day)
		return &l, nil
	})
}

// changeLock gives rule id the lock next returns (from the rule and its
// lock state now), durably, and returns the rule.
func (rb ruleBook) changeLock(id, what string,
	next func(r RecycleRule, state string, end time.Time) (*RecycleRuleLock, error)) (RecycleRule, error) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	r, err := rb.get(id)
	if err != nil {
		return RecycleRule{}, err
	}
	state, end := RecycleRuleLockState(r, time.Now())
	lock, err := next(r, state, end)
	if err != nil {
		return RecycleRule{}, err
	}
	r.Lock = lock
	if err := rb.records.PutRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	if err := rb.sync(); err != nil {
		return RecycleRule{}, err
	}
	rb.log.Info("recycle bin rule "+what, "rule", r.ID, "unlock_delay_days", lock.UnlockDelayValue, "unlock_at", lock.UnlockAt)
	return r, nil
}
