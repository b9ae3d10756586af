package cow

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cowvol/cowvol/meta"
)

// Recycle Bin retention rules (the rbin API's CreateRule, ListRules,
// GetRule, UpdateRule, DeleteRule) are records of this daemon's metadata
// store: a snapshot this daemon deletes goes to the recycle bin when one
// of its rules matches the snapshot's tags at that moment (see
// recycle_bin.go). The bin itself is in the snapshot stores, shared.

// RecycleRule is a retention rule; see meta.RecycleRule.
type RecycleRule = meta.RecycleRule

// RecycleRuleTag is a tag a rule selects (or excludes) snapshots by.
type RecycleRuleTag = meta.RecycleRuleTag

// Recycle Bin sentinel errors.
var (
	// ErrRecycleRuleNotFound: no rule has that identifier.
	ErrRecycleRuleNotFound = meta.ErrRecycleRuleNotFound
	// ErrInvalidRecycleRule: a rule's parameters are out of range.
	ErrInvalidRecycleRule = errors.New("invalid recycle bin rule")
	// ErrRecycleRuleQuota: as many rules as MaxRecycleRules exist.
	ErrRecycleRuleQuota = errors.New("recycle bin rule quota exceeded")
)

// Limits of Recycle Bin rules, as AWS's.
const (
	ResourceTypeEBSSnapshot = "EBS_SNAPSHOT"
	RetentionUnitDays       = "DAYS"
	MinRetentionDays        = 1
	MaxRetentionDays        = 3650
	MaxRecycleRules         = 250
	maxRuleDescription      = 255
	maxRuleResourceTags     = 50
	maxRuleExcludeTags      = 5
	maxRuleTagKey           = 128
	maxRuleTagValue         = 256
	recycleRuleIDLength     = 11
)

// DefaultRecycleBinDay is the length of a retention DAY. Only tests make
// it shorter (Options.RecycleBinDay).
const DefaultRecycleBinDay = 24 * time.Hour

// RecycleRuleUpdate changes a rule: nil fields stay as they are.
type RecycleRuleUpdate struct {
	ID             string
	Description    *string
	ResourceType   *string
	RetentionValue *int
	RetentionUnit  *string
	ResourceTags   *[]RecycleRuleTag
	ExcludeTags    *[]RecycleRuleTag
}

// recycleRules serialises changes of the rules.
type recycleRules struct {
	mu  sync.Mutex
	day time.Duration // the length of a retention DAY
}

func newRecycleRules(day time.Duration) *recycleRules {
	if day <= 0 {
		day = DefaultRecycleBinDay
	}
	return &recycleRules{day: day}
}

// ruleBook keeps the rules: it makes, reads, changes and deletes them under
// the rules' lock (recycleRules). Its fields are all it uses of the engine.
type ruleBook struct {
	*recycleRules
	records ruleRecords
	sync    func() error // makes the records' changes durable
	log     *slog.Logger
}

// ruleRecords is what the rules use of the metadata store.
type ruleRecords interface {
	RecycleRules() ([]RecycleRule, error)
	PutRecycleRule(RecycleRule) error
	DeleteRecycleRule(id string) error
}

// newRuleBook is the rule book of e's metadata store.
func newRuleBook(e *Engine, rules *recycleRules) ruleBook {
	return ruleBook{recycleRules: rules, records: e.meta, sync: e.metaSync.sync, log: e.log}
}

// CreateRecycleRule stores a new rule (its ID is drawn here) and returns it.
func (e *Engine) CreateRecycleRule(_ context.Context, r RecycleRule) (RecycleRule, error) {
	return e.rules.create(r)
}

// create stores a new rule (its ID is drawn here) and returns it.
func (rb ruleBook) create(r RecycleRule) (RecycleRule, error) {
	if err := validateRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	rules, err := rb.records.RecycleRules()
	if err != nil {
		return RecycleRule{}, err
	}
	if len(rules) >= MaxRecycleRules {
		return RecycleRule{}, fmt.Errorf("%w: %d rules exist", ErrRecycleRuleQuota, len(rules))
	}
	r.ID, r.Created = newRecycleRuleID(), time.Now().UTC()
	if err := rb.records.PutRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	if err := rb.sync(); err != nil {
		return RecycleRule{}, err
	}
	rb.log.Info("recycle bin rule created", "rule", r.ID, "retention_days", r.RetentionValue, "tags", len(r.ResourceTags))
	return r, nil
}

// RecycleRules returns every rule, in identifier order.
func (e *Engine) RecycleRules(context.Context) ([]RecycleRule, error) {
	return e.meta.RecycleRules()
}

// GetRecycleRule returns rule id (ErrRecycleRuleNotFound if none).
func (e *Engine) GetRecycleRule(_ context.Context, id string) (RecycleRule, error) {
	return e.rules.get(id)
}

// get returns rule id (ErrRecycleRuleNotFound if none).
func (rb ruleBook) get(id string) (RecycleRule, error) {
	rules, err := rb.records.RecycleRules()
	if err != nil {
		return RecycleRule{}, err
	}
	for _, r := range rules {
		if r.ID == id {
			return r, nil
		}
	}
	return RecycleRule{}, fmt.Errorf("%w: %s", ErrRecycleRuleNotFound, id)
}

// UpdateRecycleRule applies u to its rule and returns the rule as changed.
func (e *Engine) UpdateRecycleRule(_ context.Context, u RecycleRuleUpdate) (RecycleRule, error) {
	return e.rules.update(u)
}

// update applies u to its rule and returns the rule as changed.
func (rb ruleBook) update(u RecycleRuleUpdate) (RecycleRule, error) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if err := rb.refuseLocked(u.ID); err != nil {
		return RecycleRule{}, err
	}
	r, err := rb.get(u.ID)
	if err != nil {
		return RecycleRule{}, err
	}
	r = u.apply(r)
	if err := validateRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	if err := rb.records.PutRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	if err := rb.sync(); err != nil {
		return RecycleRule{}, err
	}
	rb.log.Info("recycle bin rule updated", "rule", r.ID)
	return r, nil
}

func (u RecycleRuleUpdate) apply(r RecycleRule) RecycleRule {
	if u.Description != nil {
		r.Description = *u.Description
	}
	if u.ResourceType != nil {
		r.ResourceType = *u.ResourceType
	}
	if u.RetentionValue != nil {
		r.RetentionValue = *u.RetentionValue
	}
	if u.RetentionUnit != nil {
		r.RetentionUnit = *u.RetentionUnit
	}
	if u.ResourceTags != nil {
		r.ResourceTags = slices.Clone(*u.ResourceTags)
	}
	if u.ExcludeTags != nil {
		r.ExcludeTags = slices.Clone(*u.ExcludeTags)
	}
	return r
}

// DeleteRecycleRule removes rule id. Snapshots already in the bin stay
// there for the retention they entered with.
func (e *Engine) DeleteRecycleRule(_ context.Context, id string) error {
	return e.rules.delete(id)
}

// delete removes rule id. Snapshots already in the bin stay there for the
// retention they entered with.
func (rb ruleBook) delete(id string) error {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if err := rb.refuseLocked(id); err != nil {
		return err
	}
	if err := rb.records.DeleteRecycleRule(id); err != nil {
		return err
	}
	if err := rb.sync(); err != nil {
		return err
	}
	rb.log.Info("recycle bin rule deleted", "rule", id)
	return nil
}

// validateRecycleRule checks a rule's parameters against AWS's limits.
func validateRecycleRule(r RecycleRule) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRecycleRule, fmt.Sprintf(format, args...))
	}
	switch {
	case r.ResourceType != ResourceTypeEBSSnapshot:
		return bad("resource type %q is not supported: only %s", r.ResourceType, ResourceTypeEBSSnapshot)
	case r.RetentionUnit != RetentionUnitDays:
		return bad("retention period unit %q: only %s", r.RetentionUnit, RetentionUnitDays)
	case r.RetentionValue < MinRetentionDays || r.RetentionValue > MaxRetentionDays:
		return bad("retention period %d days: from %d to %d", r.RetentionValue, MinRetentionDays, MaxRetentionDays)
	case utf8.RuneCountInString(r.Description) > maxRuleDescription || !utf8.ValidString(r.Description):
		return bad("the description is longer than %d characters", maxRuleDescription)
	case len(r.ResourceTags) > maxRuleResourceTags:
		return bad("%d resource tags: at most %d", len(r.ResourceTags), maxRuleResourceTags)
	case len(r.ExcludeTags) > maxRuleExcludeTags:
		return bad("%d exclusion tags: at most %d", len(r.ExcludeTags), maxRuleExcludeTags)
	case len(r.ExcludeTags) > 0 && len(r.ResourceTags) > 0:
		return bad("exclusion tags apply to rules without resource tags only")
	}
	for _, t := range append(slices.Clone(r.ResourceTags), r.ExcludeTags...) {
		if n := utf8.RuneCountInString(t.Key); n == 0 || n > maxRuleTagKey || !utf8.ValidString(t.Key) {
			return bad("tag key %q: 1 to %d characters", t.Key, maxRuleTagKey)
		}
		if utf8.RuneCountInString(t.Value) > maxRuleTagValue || !utf8.ValidString(t.Value) {
			return bad("tag value of %q: at most %d characters", t.Key, maxRuleTagValue)
		}
	}
	return validateRuleLock(r)
}

// ValidRecycleRuleID reports whether id has the form of a rule identifier
// (11 letters and digits).
func ValidRecycleRuleID(id string) bool {
	if len(id) != recycleRuleIDLength {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// newRecycleRuleID draws a rule identifier: 11 lower-case letters and digits.
func newRecycleRuleID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, recycleRuleIDLength)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ruleMatches reports whether rule r retains a snapshot with tags: one of
// its resource tags (an empty value matches any value of the key); with
// none, every snapshot that has none of its exclusion tags.
func ruleMatches(r RecycleRule, tags []Tag) bool {
	if r.ResourceType != ResourceTypeEBSSnapshot {
		return false
	}
	has := func(rt RecycleRuleTag) bool {
		return slices.ContainsFunc(tags, func(t Tag) bool {
			return t.Key == rt.Key && (rt.Value == "" || t.Value == rt.Value)
		})
	}
	if len(r.ResourceTags) > 0 {
		return slices.ContainsFunc(r.ResourceTags, has)
	}
	return !slices.ContainsFunc(r.ExcludeTags, has)
}

// retainingRule is the rule that retains a snapshot with tags: of those
// that match, the one with the longest retention (as AWS does); ok is
// false when none matches.
func retainingRule(rules []RecycleRule, tags []Tag) (best RecycleRule, ok bool) {
	for _, r := range rules {
		if ruleMatches(r, tags) && (!ok || r.RetentionValue > best.RetentionValue) {
			best, ok = r, true
		}
	}
	return best, ok
}
