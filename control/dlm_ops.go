package control

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/cowvol/cowvol/lifecycle"
)

// The DLM operations' requests and answers (dlm.go routes them).

// dlmCreateInput is CreateLifecyclePolicy's body, as far as cowvol
// supports it.
type dlmCreateInput struct {
	Description      string                   `json:"Description"`
	State            string                   `json:"State"`
	ExecutionRoleArn string                   `json:"ExecutionRoleArn"`
	PolicyDetails    *lifecycle.PolicyDetails `json:"PolicyDetails"`
	Tags             map[string]string        `json:"Tags"`
}

// dlmUpdateInput is UpdateLifecyclePolicy's body.
type dlmUpdateInput struct {
	Description      *string                  `json:"Description"`
	State            *string                  `json:"State"`
	ExecutionRoleArn *string                  `json:"ExecutionRoleArn"`
	PolicyDetails    *lifecycle.PolicyDetails `json:"PolicyDetails"`
}

// dlmPolicy is a policy as GetLifecyclePolicy answers it.
type dlmPolicy struct {
	PolicyID         string                  `json:"PolicyId"`
	PolicyArn        string                  `json:"PolicyArn"`
	Description      string                  `json:"Description"`
	State            string                  `json:"State"`
	StatusMessage    string                  `json:"StatusMessage"`
	ExecutionRoleArn string                  `json:"ExecutionRoleArn"`
	DateCreated      string                  `json:"DateCreated"`
	DateModified     string                  `json:"DateModified"`
	PolicyDetails    lifecycle.PolicyDetails `json:"PolicyDetails"`
	Tags             map[string]string       `json:"Tags,omitempty"`
	DefaultPolicy    bool                    `json:"DefaultPolicy"`
}

// dlmSummary is a policy as GetLifecyclePolicies answers it.
type dlmSummary struct {
	PolicyID      string            `json:"PolicyId"`
	Description   string            `json:"Description"`
	State         string            `json:"State"`
	PolicyType    string            `json:"PolicyType"`
	Tags          map[string]string `json:"Tags,omitempty"`
	DefaultPolicy bool              `json:"DefaultPolicy"`
}

// dlmTime is a timestamp as DLM's answers have it (ISO 8601).
func dlmTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) dlmCreate(lp LifecyclePolicies, _ string, _ url.Values, body []byte) (any, error) {
	var in dlmCreateInput
	if err := decodeDLM(body, &in); err != nil {
		return nil, err
	}
	p, err := lp.Create(lifecycle.CreateParams{Description: in.Description, State: in.State,
		ExecutionRoleArn: in.ExecutionRoleArn, Details: in.PolicyDetails, Tags: in.Tags})
	if err != nil {
		return nil, err
	}
	return map[string]string{"PolicyId": p.ID}, nil
}

func (s *Server) dlmGet(lp LifecyclePolicies, id string, _ url.Values, _ []byte) (any, error) {
	p, err := lp.Get(id)
	if err != nil {
		return nil, err
	}
	return map[string]dlmPolicy{"Policy": {
		PolicyID: p.ID, PolicyArn: s.policyArn(p.ID), Description: p.Description, State: p.State,
		StatusMessage: p.State, ExecutionRoleArn: p.ExecutionRoleArn, DateCreated: dlmTime(p.Created),
		DateModified: dlmTime(p.Modified), PolicyDetails: p.Details, Tags: p.Tags,
	}}, nil
}

// policyArn is a policy's ARN: arn:aws:dlm:region:account:policy/id.
func (s *Server) policyArn(id string) string {
	return "arn:aws:dlm:" + s.region + ":" + s.account + ":policy/" + id
}

func (s *Server) dlmList(lp LifecyclePolicies, _ string, q url.Values, _ []byte) (any, error) {
	for k := range q {
		if !slices.Contains([]string{"policyIds", "state", "resourceTypes", "targetTags", "tagsToAdd", "defaultPolicyType"}, k) {
			return nil, dlmErr(dlmInvalidRequest, http.StatusBadRequest, "The parameter %s is not supported.", clip(k))
		}
	}
	out := []dlmSummary{}
	if q.Get("defaultPolicyType") != "" {
		// cowvol has no default policies.
		return map[string][]dlmSummary{"Policies": out}, nil
	}
	for _, p := range lp.List() {
		if !dlmMatches(p, q) {
			continue
		}
		out = append(out, dlmSummary{PolicyID: p.ID, Description: p.Description, State: p.State,
			PolicyType: p.Details.PolicyType, Tags: p.Tags})
	}
	return map[string][]dlmSummary{"Policies": out}, nil
}

// dlmMatches reports whether p passes GetLifecyclePolicies' filters.
func dlmMatches(p lifecycle.Policy, q url.Values) bool {
	if ids := q["policyIds"]; len(ids) > 0 && !slices.Contains(ids, p.ID) {
		return false
	}
	if st := q.Get("state"); st != "" && st != p.State {
		return false
	}
	if rts := q["resourceTypes"]; len(rts) > 0 && !slices.ContainsFunc(rts, func(t string) bool {
		return slices.Contains(p.Details.ResourceTypes, t)
	}) {
		return false
	}
	if tt := q["targetTags"]; len(tt) > 0 && !slices.ContainsFunc(tt, func(kv string) bool {
		return slices.ContainsFunc(p.Details.TargetTags, func(t lifecycle.Tag) bool { return t.Key+"="+t.Value == kv })
	}) {
		return false
	}
	if ta := q["tagsToAdd"]; len(ta) > 0 && !slices.ContainsFunc(ta, func(kv string) bool {
		return slices.ContainsFunc(p.Details.Schedules, func(s lifecycle.Schedule) bool {
			return slices.ContainsFunc(s.TagsToAdd, func(t lifecycle.Tag) bool { return t.Key+"="+t.Value == kv })
		})
	}) {
		return false
	}
	return true
}

func (s *Server) dlmUpdate(lp LifecyclePolicies, id string, _ url.Values, body []byte) (any, error) {
	var in dlmUpdateInput
	if err := decodeDLM(body, &in); err != nil {
		return nil, err
	}
	_, err := lp.Update(id, lifecycle.UpdateParams{Description: in.Description, State: in.State,
		ExecutionRoleArn: in.ExecutionRoleArn, Details: in.PolicyDetails})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) dlmDelete(lp LifecyclePolicies, id string, _ url.Values, _ []byte) (any, error) {
	if err := lp.Delete(id); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
