package control

import (
	"net/http"
	"net/url"
	"strings"
)

// DLM's tagging of policies, on the paths /tags/{ResourceArn} (the ARN of a
// policy, path-escaped by the clients):
//
//	POST   /tags/{arn}              TagResource ({"Tags": {...}})
//	GET    /tags/{arn}              ListTagsForResource (read-only)
//	DELETE /tags/{arn}?tagKeys=K... UntagResource
//
// The Recycle Bin has the same paths; a request is DLM's when its ARN is.
const dlmTagsPrefix = "/tags/arn:aws:dlm:"

// isDLMTagsRequest reports whether r tags a DLM resource.
func isDLMTagsRequest(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, dlmTagsPrefix)
}

// tagsOperation names the tagging operation of a method on /tags/{arn},
// the same in DLM and the Recycle Bin; ok is false for other methods.
func tagsOperation(method string) (name string, readOnly, ok bool) {
	switch method {
	case http.MethodPost:
		return "TagResource", false, true
	case http.MethodGet:
		return "ListTagsForResource", true, true
	case http.MethodDelete:
		return "UntagResource", false, true
	}
	return "", false, false
}

// dlmTagsRoute finds the tagging operation of a method; arn is the path's.
func dlmTagsRoute(method, arn string) (dlmOp, string, bool) {
	name, readOnly, ok := tagsOperation(method)
	handlers := map[string]func(*Server, LifecyclePolicies, string, url.Values, []byte) (any, error){
		"TagResource": (*Server).dlmTag, "ListTagsForResource": (*Server).dlmListTags, "UntagResource": (*Server).dlmUntag,
	}
	return dlmOp{name, readOnly, handlers[name]}, arn, ok
}

// policyOfArn is the policy ID of arn, one of this daemon's policy ARNs.
func (s *Server) policyOfArn(arn string) (string, error) {
	id, ok := strings.CutPrefix(arn, s.policyArn(""))
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", dlmErr(dlmInvalidRequest, http.StatusBadRequest,
			"The ResourceArn %s is not a lifecycle policy ARN of this account and Region (%s).", clip(arn), s.policyArn("policy-ID"))
	}
	return id, nil
}

type dlmTagInput struct {
	Tags map[string]string `json:"Tags"`
}

func (s *Server) dlmTag(lp LifecyclePolicies, arn string, _ url.Values, body []byte) (any, error) {
	id, err := s.policyOfArn(arn)
	if err != nil {
		return nil, err
	}
	var in dlmTagInput
	if err := decodeDLM(body, &in); err != nil {
		return nil, err
	}
	if _, err := lp.TagPolicy(id, in.Tags); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) dlmUntag(lp LifecyclePolicies, arn string, q url.Values, _ []byte) (any, error) {
	id, err := s.policyOfArn(arn)
	if err != nil {
		return nil, err
	}
	for k := range q {
		if k != "tagKeys" {
			return nil, dlmErr(dlmInvalidRequest, http.StatusBadRequest, "The parameter %s is not supported.", clip(k))
		}
	}
	if _, err := lp.UntagPolicy(id, q["tagKeys"]); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) dlmListTags(lp LifecyclePolicies, arn string, _ url.Values, _ []byte) (any, error) {
	id, err := s.policyOfArn(arn)
	if err != nil {
		return nil, err
	}
	p, err := lp.Get(id)
	if err != nil {
		return nil, err
	}
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]map[string]string{"Tags": tags}, nil
}
