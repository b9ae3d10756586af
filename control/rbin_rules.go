package control

import (
	"net/http"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// The Recycle Bin's rule operations: their JSON and handlers.

// RuleTag is one of a rule's own tags.
type RuleTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// ResourceTag is a tag a rule selects (or excludes) snapshots by.
type ResourceTag struct {
	ResourceTagKey   string `json:"ResourceTagKey"`
	ResourceTagValue string `json:"ResourceTagValue,omitempty"`
}

// RetentionPeriod is a rule's retention.
type RetentionPeriod struct {
	RetentionPeriodValue *int   `json:"RetentionPeriodValue"`
	RetentionPeriodUnit  string `json:"RetentionPeriodUnit"`
}

// RecycleRuleAnswer is a rule as CreateRule, GetRule and UpdateRule answer it.
type RecycleRuleAnswer struct {
	Identifier          string          `json:"Identifier"`
	RuleArn             string          `json:"RuleArn"`
	Description         string          `json:"Description,omitempty"`
	ResourceType        string          `json:"ResourceType"`
	RetentionPeriod     RetentionPeriod `json:"RetentionPeriod"`
	ResourceTags        []ResourceTag   `json:"ResourceTags"`
	ExcludeResourceTags []ResourceTag   `json:"ExcludeResourceTags"`
	Tags                []RuleTag       `json:"Tags,omitempty"`
	Status              string          `json:"Status"`
	LockState           string          `json:"LockState"`
	// LockEndTime (epoch seconds) is set while the rule is pending unlock.
	LockEndTime       *float64           `json:"LockEndTime,omitempty"`
	LockConfiguration *LockConfiguration `json:"LockConfiguration,omitempty"`
}

// RecycleRuleSummary is a rule as ListRules answers it.
type RecycleRuleSummary struct {
	Identifier      string          `json:"Identifier"`
	RuleArn         string          `json:"RuleArn"`
	Description     string          `json:"Description,omitempty"`
	RetentionPeriod RetentionPeriod `json:"RetentionPeriod"`
	LockState       string          `json:"LockState"`
}

// CreateRuleInput is CreateRule's request.
type CreateRuleInput struct {
	Description         string             `json:"Description,omitempty"`
	ResourceType        string             `json:"ResourceType,omitempty"`
	RetentionPeriod     *RetentionPeriod   `json:"RetentionPeriod,omitempty"`
	ResourceTags        []ResourceTag      `json:"ResourceTags,omitempty"`
	ExcludeResourceTags []ResourceTag      `json:"ExcludeResourceTags,omitempty"`
	Tags                []RuleTag          `json:"Tags,omitempty"`
	LockConfiguration   *LockConfiguration `json:"LockConfiguration,omitempty"`
}

// UpdateRuleInput is UpdateRule's request (the rule is in the path).
type UpdateRuleInput struct {
	Description         *string          `json:"Description,omitempty"`
	ResourceType        *string          `json:"ResourceType,omitempty"`
	RetentionPeriod     *RetentionPeriod `json:"RetentionPeriod,omitempty"`
	ResourceTags        *[]ResourceTag   `json:"ResourceTags,omitempty"`
	ExcludeResourceTags *[]ResourceTag   `json:"ExcludeResourceTags,omitempty"`
}

// ListRulesInput is ListRules' request.
type ListRulesInput struct {
	ResourceType        string        `json:"ResourceType,omitempty"`
	MaxResults          *int          `json:"MaxResults,omitempty"`
	NextToken           string        `json:"NextToken,omitempty"`
	ResourceTags        []ResourceTag `json:"ResourceTags,omitempty"`
	ExcludeResourceTags []ResourceTag `json:"ExcludeResourceTags,omitempty"`
	LockState           string        `json:"LockState,omitempty"`
}

// ListRulesAnswer is ListRules' answer.
type ListRulesAnswer struct {
	Rules     []RecycleRuleSummary `json:"Rules"`
	NextToken string               `json:"NextToken,omitempty"`
}

// ruleAvailable is every rule's Status: available as soon as created.
const ruleAvailable = "available"

func toRuleTags(ts []ResourceTag) []cow.RecycleRuleTag {
	out := []cow.RecycleRuleTag{}
	for _, t := range ts {
		out = append(out, cow.RecycleRuleTag{Key: t.ResourceTagKey, Value: t.ResourceTagValue})
	}
	return out
}

func fromRuleTags(ts []cow.RecycleRuleTag) []ResourceTag {
	out := []ResourceTag{}
	for _, t := range ts {
		out = append(out, ResourceTag{ResourceTagKey: t.Key, ResourceTagValue: t.Value})
	}
	return out
}

func (s *Server) wireRule(r cow.RecycleRule) RecycleRuleAnswer {
	days := r.RetentionValue
	w := RecycleRuleAnswer{Identifier: r.ID, RuleArn: s.ruleArn(r.ID), Description: r.Description, ResourceType: r.ResourceType,
		RetentionPeriod: RetentionPeriod{RetentionPeriodValue: &days, RetentionPeriodUnit: r.RetentionUnit},
		ResourceTags:    fromRuleTags(r.ResourceTags), ExcludeResourceTags: fromRuleTags(r.ExcludeTags),
		Status: ruleAvailable}
	wireRuleLock(&w, r, time.Now())
	for _, t := range r.Tags {
		w.Tags = append(w.Tags, RuleTag{Key: t.Key, Value: t.Value})
	}
	return w
}

func (s *Server) rbinCreateRule(q *rbinRequest) (int, any, error) {
	var in CreateRuleInput
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.ResourceType == "":
		return 0, nil, invalid(reasonParameter, "The request must contain ResourceType.")
	case in.RetentionPeriod == nil || in.RetentionPeriod.RetentionPeriodValue == nil:
		return 0, nil, invalid(reasonParameter, "The request must contain RetentionPeriod with RetentionPeriodValue and RetentionPeriodUnit.")
	}
	r := cow.RecycleRule{Description: in.Description, ResourceType: in.ResourceType,
		RetentionValue: *in.RetentionPeriod.RetentionPeriodValue, RetentionUnit: in.RetentionPeriod.RetentionPeriodUnit,
		ResourceTags: toRuleTags(in.ResourceTags), ExcludeTags: toRuleTags(in.ExcludeResourceTags)}
	if in.LockConfiguration != nil {
		var err error
		if r.Lock, err = newLock(in.LockConfiguration); err != nil {
			return 0, nil, err
		}
	}
	var tags []cow.Tag
	for _, t := range in.Tags {
		tags = append(tags, cow.Tag{Key: t.Key, Value: t.Value})
		r.Tags = append(r.Tags, cow.RecycleRuleTag{Key: t.Key, Value: t.Value})
	}
	if err := cow.ValidateTags(tags); err != nil {
		return 0, nil, invalid(reasonParameter, "%s", sentence(err.Error()))
	}
	created, err := q.be.CreateRecycleRule(q.r.Context(), r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.wireRule(created), nil
}

func (s *Server) rbinGetRule(q *rbinRequest) (int, any, error) {
	if err := q.ruleID(); err != nil {
		return 0, nil, err
	}
	r, err := q.be.GetRecycleRule(q.r.Context(), q.id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.wireRule(r), nil
}

func (s *Server) rbinUpdateRule(q *rbinRequest) (int, any, error) {
	if err := q.ruleID(); err != nil {
		return 0, nil, err
	}
	var in UpdateRuleInput
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	u := cow.RecycleRuleUpdate{ID: q.id, Description: in.Description, ResourceType: in.ResourceType}
	if rp := in.RetentionPeriod; rp != nil {
		if rp.RetentionPeriodValue == nil {
			return 0, nil, invalid(reasonParameter, "RetentionPeriod must contain RetentionPeriodValue.")
		}
		u.RetentionValue, u.RetentionUnit = rp.RetentionPeriodValue, &rp.RetentionPeriodUnit
	}
	if in.ResourceTags != nil {
		ts := toRuleTags(*in.ResourceTags)
		u.ResourceTags = &ts
	}
	if in.ExcludeResourceTags != nil {
		ts := toRuleTags(*in.ExcludeResourceTags)
		u.ExcludeTags = &ts
	}
	r, err := q.be.UpdateRecycleRule(q.r.Context(), u)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.wireRule(r), nil
}

func (s *Server) rbinDeleteRule(q *rbinRequest) (int, any, error) {
	if err := q.ruleID(); err != nil {
		return 0, nil, err
	}
	if err := q.be.DeleteRecycleRule(q.r.Context(), q.id); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) rbinListRules(q *rbinRequest) (int, any, error) {
	var in ListRulesInput
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	limit := maxListRules
	switch {
	case in.ResourceType == "":
		return 0, nil, invalid(reasonParameter, "The request must contain ResourceType.")
	case in.MaxResults != nil && (*in.MaxResults < 1 || *in.MaxResults > maxListRules):
		return 0, nil, invalid(reasonParameter, "MaxResults must be from 1 to %d.", maxListRules)
	case in.NextToken != "" && !cow.ValidRecycleRuleID(in.NextToken):
		return 0, nil, invalid(reasonPageToken, "The page token is not valid.")
	case in.LockState != "" && in.LockState != cow.RuleUnlocked && in.LockState != cow.RuleLocked && in.LockState != cow.RulePendingUnlock:
		return 0, nil, invalid(reasonParameter, "LockState %q: locked, pending_unlock or unlocked.", clip(in.LockState))
	}
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	rules, err := q.be.RecycleRules(q.r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := ListRulesAnswer{Rules: []RecycleRuleSummary{}}
	want, exclude := toRuleTags(in.ResourceTags), toRuleTags(in.ExcludeResourceTags)
	now := time.Now()
	for _, r := range rules {
		state, _ := cow.RecycleRuleLockState(r, now)
		if r.ID <= in.NextToken || r.ResourceType != in.ResourceType || (in.LockState != "" && in.LockState != state) ||
			!matchesTags(r.ResourceTags, want) || !matchesTags(r.ExcludeTags, exclude) {
			continue
		}
		if len(out.Rules) == limit {
			out.NextToken = out.Rules[len(out.Rules)-1].Identifier
			break
		}
		days := r.RetentionValue
		out.Rules = append(out.Rules, RecycleRuleSummary{Identifier: r.ID, RuleArn: s.ruleArn(r.ID), Description: r.Description,
			RetentionPeriod: RetentionPeriod{RetentionPeriodValue: &days, RetentionPeriodUnit: r.RetentionUnit}, LockState: state})
	}
	return http.StatusOK, out, nil
}
