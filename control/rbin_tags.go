package control

import (
	"errors"
	"net/http"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// The Recycle Bin's tagging of rules, on the paths /tags/{ResourceArn} (a
// rule's ARN, path-escaped by the clients), which DLM shares (dlm_tags.go:
// a request is the Recycle Bin's when its ARN is):
//
//	POST   /tags/{arn}              TagResource ({"Tags": [{"Key", "Value"}]})
//	GET    /tags/{arn}              ListTagsForResource (read-only)
//	DELETE /tags/{arn}?tagKeys=K... UntagResource
const rbinTagsPrefix = "/tags/arn:aws:rbin:"

// isRbinTagsRequest reports whether r tags a Recycle Bin resource.
func isRbinTagsRequest(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, rbinTagsPrefix)
}

// rbinTagsRoute finds the tagging operation of a method; the "id" it
// returns is the path's ARN.
func rbinTagsRoute(method, path string) (rbinOp, string, bool) {
	name, readOnly, ok := tagsOperation(method)
	handlers := map[string]func(*Server, *rbinRequest) (int, any, error){
		"TagResource": (*Server).rbinTag, "ListTagsForResource": (*Server).rbinListTags, "UntagResource": (*Server).rbinUntag,
	}
	return rbinOp{name, handlers[name], readOnly}, strings.TrimPrefix(path, "/tags/"), ok
}

// ruleOfArn is the rule ID of the request's ARN, one of this daemon's
// rule ARNs.
func (s *Server) ruleOfArn(q *rbinRequest) (string, error) {
	id, ok := strings.CutPrefix(q.id, s.ruleArn(""))
	if !ok || !cow.ValidRecycleRuleID(id) {
		return "", invalid(reasonParameter, "The ResourceArn %s is not a retention rule ARN of this account and Region (%s).",
			clip(q.id), s.ruleArn("IDENTIFIER"))
	}
	return id, nil
}

// rbinTagsErr answers a refused tag set as ValidationException.
func rbinTagsErr(err error) error {
	if errors.Is(err, cow.ErrInvalidParameter) || errors.Is(err, cow.ErrTagLimitExceeded) {
		return invalid(reasonParameter, "%s", sentence(err.Error()))
	}
	return err
}

type rbinTagInput struct {
	Tags []RuleTag `json:"Tags"`
}

func (s *Server) rbinTag(q *rbinRequest) (int, any, error) {
	id, err := s.ruleOfArn(q)
	if err != nil {
		return 0, nil, err
	}
	var in rbinTagInput
	if err := decodeRbin(q.body, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Tags) == 0 {
		return 0, nil, invalid(reasonParameter, "The request must contain Tags with at least one tag.")
	}
	add := make([]cow.RecycleRuleTag, len(in.Tags))
	for i, t := range in.Tags {
		add[i] = cow.RecycleRuleTag{Key: t.Key, Value: t.Value}
	}
	if _, err := q.be.RetagRecycleRule(q.r.Context(), id, add, nil); err != nil {
		return 0, nil, rbinTagsErr(err)
	}
	return http.StatusOK, struct{}{}, nil
}

func (s *Server) rbinUntag(q *rbinRequest) (int, any, error) {
	id, err := s.ruleOfArn(q)
	if err != nil {
		return 0, nil, err
	}
	query := q.r.URL.Query()
	for k := range query {
		if k != "tagKeys" {
			return 0, nil, invalid(reasonParameter, "The parameter %s is not supported.", clip(k))
		}
	}
	if len(query["tagKeys"]) == 0 {
		return 0, nil, invalid(reasonParameter, "The request must contain TagKeys.")
	}
	if _, err := q.be.RetagRecycleRule(q.r.Context(), id, nil, query["tagKeys"]); err != nil {
		return 0, nil, rbinTagsErr(err)
	}
	return http.StatusOK, struct{}{}, nil
}

func (s *Server) rbinListTags(q *rbinRequest) (int, any, error) {
	id, err := s.ruleOfArn(q)
	if err != nil {
		return 0, nil, err
	}
	r, err := q.be.GetRecycleRule(q.r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	tags := []RuleTag{}
	for _, t := range r.Tags {
		tags = append(tags, RuleTag{Key: t.Key, Value: t.Value})
	}
	return http.StatusOK, map[string][]RuleTag{"Tags": tags}, nil
}
