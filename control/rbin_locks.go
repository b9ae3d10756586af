package control

import (
	"net/http"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// The Recycle Bin's rule locks (cow/recycle_rule_lock.go has the rules):
//
//	PATCH /rules/{id}/lock    LockRule ({"LockConfiguration": {"UnlockDelay": {...}}})
//	PATCH /rules/{id}/unlock  UnlockRule (no body)
//
// and CreateRule's LockConfiguration. A change a rule's lock state forbids
// is ConflictException INVALID_RULE_STATE (HTTP 409), as AWS answers
// DeleteRule, UpdateRule, LockRule and UnlockRule.

// Paths of LockRule and UnlockRule after /rules/{id}.
const (
	rbinLockSuffix    = "/lock"
	rbinUnlockSuffix  = "/unlock"
	reasonRuleState   = "INVALID_RULE_STATE"
	lockConfigMissing = "The request must contain LockConfiguration with UnlockDelay (UnlockDelayValue and UnlockDelayUnit)."
)

// LockConfiguration is a rule's lock configuration.
type LockConfiguration struct {
	UnlockDelay *UnlockDelay `json:"UnlockDelay"`
}

// UnlockDelay is how long an unlocked rule stays pending unlock.
type UnlockDelay struct {
	UnlockDelayValue *int   `json:"UnlockDelayValue"`
	UnlockDelayUnit  string `json:"UnlockDelayUnit"`
}

// LockRuleInput is LockRule's request (the rule is in the path).
type LockRuleInput struct {
	LockConfiguration *LockConfiguration `json:"LockConfiguration"`
}

// rbinLockRoute finds LockRule or UnlockRule in rest (the path after
// /rules/); ok is false for any other path.
func rbinLockRoute(method, rest string) (op rbinOp, id string, ok bool) {
	if method != http.MethodPatch {
		return rbinOp{}, "", false
	}
	if id, ok := strings.CutSuffix(rest, rbinLockSuffix); ok {
		return rbinOp{"LockRule", (*Server).rbinLockRule, false}, id, true
	}
	if id, ok := strings.CutSuffix(rest, rbinUnlockSuffix); ok {
		return rbinOp{"UnlockRule", (*Server).rbinUnlockRule, false}, id, true
	}
	return rbinOp{}, "", false
}

// newLock checks a request's LockConfiguration and returns the lock it
// asks for (ValidationException when it is incomplete or out of range).
func newLock(lc *LockConfiguration) (*cow.RecycleRuleLock, error) {
	if lc == nil || lc.UnlockDelay == nil || lc.UnlockDelay.UnlockDelayValue == nil {
		return nil, invalid(reasonParameter, lockConfigMissing)
	}
	return cow.NewRecycleRuleLock(*lc.UnlockDelay.UnlockDelayValue, lc.UnlockDelay.UnlockDelayUnit)
}

// wireRuleLock sets an answer's lock fields from rule r at now: LockState
// (unlocked for a rule never locked), LockEndTime while it is pending
// unlock, LockConfiguration once it has been locked.
func wireRuleLock(w *RecycleRuleAnswer, r cow.RecycleRule, now time.Time) {
	state, end := cow.RecycleRuleLockState(r, now)
	w.LockState = state
	if state == cow.RulePendingUnlock {
		t := epochSeconds(end)
		w.LockEndTime = &t
	}
	if l := r.Lock; l != nil {
		days := l.UnlockDelayValue
		w.LockConfiguration = &LockConfiguration{UnlockDelay: &UnlockDelay{UnlockDelayValue: &days, UnlockDelayUnit: l.UnlockDelayUnit}}
	}
}

func (s *Server) rbinLockRule(q *rbinRequest) (int, any, error) {
	if err := q.ruleID(); err != nil {
		return 0, nil, err
	}
	var in LockRuleInput
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	lock, err := newLock(in.LockConfiguration)
	if err != nil {
		return 0, nil, err
	}
	r, err := q.be.LockRecycleRule(q.r.Context(), q.id, lock.UnlockDelayValue, lock.UnlockDelayUnit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.wireRule(r), nil
}

func (s *Server) rbinUnlockRule(q *rbinRequest) (int, any, error) {
	if err := q.ruleID(); err != nil {
		return 0, nil, err
	}
	var in struct{}
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	r, err := q.be.UnlockRecycleRule(q.r.Context(), q.id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.wireRule(r), nil
}
