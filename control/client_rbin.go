package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Recycle Bin calls of the Client: the rbin service's rules (REST + JSON)
// and EC2's ListSnapshotsInRecycleBin and RestoreSnapshotFromRecycleBin.
// Errors come back as *APIError, as the EBS calls' do.

// rbinCall sends a Recycle Bin request with in as its JSON body (nil: none)
// and decodes the answer into out (nil: none).
func (c *Client) rbinCall(ctx context.Context, op, method, path string, in, out any, ok int) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	h := http.Header{"Content-Type": {"application/json"}}
	b, _, err := c.ebsCall(ctx, op, method, path, nil, h, body, ok)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

// CreateRule creates a Recycle Bin retention rule.
func (c *Client) CreateRule(ctx context.Context, in CreateRuleInput) (RecycleRuleAnswer, error) {
	var out RecycleRuleAnswer
	err := c.rbinCall(ctx, "CreateRule", http.MethodPost, rbinRulesPath, in, &out, http.StatusCreated)
	return out, err
}

// GetRule describes rule id.
func (c *Client) GetRule(ctx context.Context, id string) (RecycleRuleAnswer, error) {
	var out RecycleRuleAnswer
	err := c.rbinCall(ctx, "GetRule", http.MethodGet, rbinRulesPath+"/"+url.PathEscape(id), nil, &out, http.StatusOK)
	return out, err
}

// UpdateRule changes rule id.
func (c *Client) UpdateRule(ctx context.Context, id string, in UpdateRuleInput) (RecycleRuleAnswer, error) {
	var out RecycleRuleAnswer
	err := c.rbinCall(ctx, "UpdateRule", http.MethodPatch, rbinRulesPath+"/"+url.PathEscape(id), in, &out, http.StatusOK)
	return out, err
}

// DeleteRule deletes rule id.
func (c *Client) DeleteRule(ctx context.Context, id string) error {
	return c.rbinCall(ctx, "DeleteRule", http.MethodDelete, rbinRulesPath+"/"+url.PathEscape(id), nil, nil, http.StatusNoContent)
}

// LockRule locks rule id with the unlock delay of lc.
func (c *Client) LockRule(ctx context.Context, id string, lc LockConfiguration) (RecycleRuleAnswer, error) {
	var out RecycleRuleAnswer
	err := c.rbinCall(ctx, "LockRule", http.MethodPatch, rbinRulesPath+"/"+url.PathEscape(id)+rbinLockSuffix,
		LockRuleInput{LockConfiguration: &lc}, &out, http.StatusOK)
	return out, err
}

// UnlockRule starts rule id's unlock delay.
func (c *Client) UnlockRule(ctx context.Context, id string) (RecycleRuleAnswer, error) {
	var out RecycleRuleAnswer
	err := c.rbinCall(ctx, "UnlockRule", http.MethodPatch, rbinRulesPath+"/"+url.PathEscape(id)+rbinUnlockSuffix, nil, &out, http.StatusOK)
	return out, err
}

// ListRules lists one page of rules.
func (c *Client) ListRules(ctx context.Context, in ListRulesInput) (ListRulesAnswer, error) {
	var out ListRulesAnswer
	err := c.rbinCall(ctx, "ListRules", http.MethodPost, rbinListRulesPath, in, &out, http.StatusOK)
	return out, err
}

// ListSnapshotsInRecycleBin lists one page of the snapshots in the recycle
// bin: ids (none: all), maxResults (0: the server's default), nextToken.
func (c *Client) ListSnapshotsInRecycleBin(ctx context.Context, ids []string, maxResults int, nextToken string, dryRun bool) (ListSnapshotsInRecycleBinResponse, error) {
	f := url.Values{}
	for i, id := range ids {
		f.Set("SnapshotId."+strconv.Itoa(i+1), id)
	}
	if maxResults > 0 {
		f.Set("MaxResults", strconv.Itoa(maxResults))
	}
	if nextToken != "" {
		f.Set("NextToken", nextToken)
	}
	setBool(f, "DryRun", dryRun)
	var out ListSnapshotsInRecycleBinResponse
	err := c.call(ctx, "ListSnapshotsInRecycleBin", f, &out)
	return out, err
}

// RestoreSnapshotFromRecycleBin restores snapshot id from the recycle bin.
func (c *Client) RestoreSnapshotFromRecycleBin(ctx context.Context, id string, dryRun bool) (RestoreSnapshotFromRecycleBinResponse, error) {
	f := url.Values{}
	f.Set("SnapshotId", id)
	setBool(f, "DryRun", dryRun)
	var out RestoreSnapshotFromRecycleBinResponse
	err := c.call(ctx, "RestoreSnapshotFromRecycleBin", f, &out)
	return out, err
}

// TagRule adds tags to the rule with ARN arn (rbin TagResource).
func (c *Client) TagRule(ctx context.Context, arn string, tags []RuleTag) error {
	return c.rbinCall(ctx, "TagResource", http.MethodPost, "/tags/"+url.PathEscape(arn), rbinTagInput{Tags: tags}, nil, http.StatusOK)
}

// UntagRule removes the tags with keys from the rule with ARN arn (rbin
// UntagResource).
func (c *Client) UntagRule(ctx context.Context, arn string, keys []string) error {
	h := http.Header{"Content-Type": {"application/json"}}
	_, _, err := c.ebsCall(ctx, "UntagResource", http.MethodDelete, "/tags/"+url.PathEscape(arn), url.Values{"tagKeys": keys}, h, nil, http.StatusOK)
	return err
}

// RuleTags returns the tags of the rule with ARN arn (rbin
// ListTagsForResource).
func (c *Client) RuleTags(ctx context.Context, arn string) ([]RuleTag, error) {
	var out struct{ Tags []RuleTag }
	err := c.rbinCall(ctx, "ListTagsForResource", http.MethodGet, "/tags/"+url.PathEscape(arn), nil, &out, http.StatusOK)
	return out.Tags, err
}
