package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// prefixRecycleRule: rb/<rule-id> -> RecycleRule (JSON). Two bytes, so no
// other one-letter prefix can overlap it.
const prefixRecycleRule = "rb/"

// RecycleRuleKey is the key of a Recycle Bin retention rule.
func RecycleRuleKey(id string) []byte { return []byte(prefixRecycleRule + id) }

// ErrRecycleRuleNotFound: no rule has that identifier.
var ErrRecycleRuleNotFound = errors.New("recycle bin rule not found")

// RecycleRule is a Recycle Bin retention rule: snapshots deleted while it
// matches them (by tag, or all when it has no tags and they carry none of
// its exclusion tags) are kept in the recycle bin for its retention period.
type RecycleRule struct {
	ID           string `json:"id"`
	Description  string `json:"description,omitempty"`
	ResourceType string `json:"resource_type"`
	// RetentionValue is in RetentionUnit (DAYS).
	RetentionValue int    `json:"retention_value"`
	RetentionUnit  string `json:"retention_unit"`
	// ResourceTags: a snapshot with any of them matches; none: every
	// snapshot matches, but those with any of ExcludeTags.
	ResourceTags []RecycleRuleTag `json:"resource_tags,omitempty"`
	ExcludeTags  []RecycleRuleTag `json:"exclude_tags,omitempty"`
	// Tags are the rule's own tags.
	Tags    []RecycleRuleTag `json:"tags,omitempty"`
	Created time.Time        `json:"created"`
	// Lock is the rule's lock (LockRule, UnlockRule); nil: never locked.
	// Records written before rule locks have none.
	Lock *RecycleRuleLock `json:"lock,omitempty"`
}

// Stored states of a rule's lock, as the rbin API's LockState.
const (
	RuleLocked        = "locked"
	RulePendingUnlock = "pending_unlock"
	RuleUnlocked      = "unlocked"
)

// RecycleRuleLock is a rule's lock: its state, its unlock delay (in
// days) and, once unlocked, when the delay ends (LockEndTime).
type RecycleRuleLock struct {
	State            string    `json:"state"`
	UnlockDelayValue int       `json:"unlock_delay_value"`
	UnlockDelayUnit  string    `json:"unlock_delay_unit"`
	UnlockAt         time.Time `json:"unlock_at,omitzero"`
}

// RecycleRuleTag is a tag a rule selects by; an empty Value matches any
// value of Key.
type RecycleRuleTag struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// PutRecycleRule writes a rule.
func (s *Store) PutRecycleRule(r RecycleRule) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(RecycleRuleKey(r.ID), v) }); err != nil {
		return fmt.Errorf("meta: put recycle bin rule %s: %w", r.ID, err)
	}
	return nil
}

// DeleteRecycleRule removes a rule (ErrRecycleRuleNotFound if there is none).
func (s *Store) DeleteRecycleRule(id string) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(RecycleRuleKey(id)); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return ErrRecycleRuleNotFound
			}
			return err
		}
		return txn.Delete(RecycleRuleKey(id))
	})
	if err != nil {
		return fmt.Errorf("meta: delete recycle bin rule %s: %w", id, err)
	}
	return nil
}

// RecycleRules returns every rule in identifier order.
func (s *Store) RecycleRules() ([]RecycleRule, error) {
	var out []RecycleRule
	err := s.scan([]byte(prefixRecycleRule), func(key, val []byte) error {
		r, err := DecodeRecycleRule(val)
		if err != nil {
			return fmt.Errorf("meta: decode recycle bin rule %q: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// DecodeRecycleRule decodes a stored rule: records written before rule
// locks (no "lock") decode with a nil Lock; a lock in an unknown state, or
// pending an unlock with no end, is refused.
func DecodeRecycleRule(b []byte) (RecycleRule, error) {
	var r RecycleRule
	if err := json.Unmarshal(b, &r); err != nil {
		return RecycleRule{}, err
	}
	if l := r.Lock; l != nil {
		switch {
		case l.State != RuleLocked && l.State != RulePendingUnlock && l.State != RuleUnlocked:
			return RecycleRule{}, fmt.Errorf("lock state %q", l.State)
		case l.State == RulePendingUnlock && l.UnlockAt.IsZero():
			return RecycleRule{}, errors.New("lock pending unlock without an end")
		}
	}
	return r, nil
}
