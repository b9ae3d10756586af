package control

import (
	"context"
	"net/url"
)

// TagRef names a tag for DeleteTags: by key, or by key and value (Value
// set: only a tag with that value).
type TagRef struct {
	Key   string
	Value *string
}

// CreateTags adds or overwrites tags on volumes and snapshots.
func (c *Client) CreateTags(ctx context.Context, resourceIDs []string, tags []Tag, dryRun bool) error {
	f := url.Values{}
	setList(f, "ResourceId", resourceIDs)
	for i, t := range tags {
		m := member("Tag", i+1)
		f.Set(m+".Key", t.Key)
		f.Set(m+".Value", t.Value)
	}
	setBool(f, "DryRun", dryRun)
	var out CreateTagsResponse
	return c.call(ctx, "CreateTags", f, &out)
}

// DeleteTags deletes tags from volumes and snapshots; no tags deletes
// every tag of them.
func (c *Client) DeleteTags(ctx context.Context, resourceIDs []string, tags []TagRef, dryRun bool) error {
	f := url.Values{}
	setList(f, "ResourceId", resourceIDs)
	for i, t := range tags {
		m := member("Tag", i+1)
		f.Set(m+".Key", t.Key)
		if t.Value != nil {
			f.Set(m+".Value", *t.Value)
		}
	}
	setBool(f, "DryRun", dryRun)
	var out DeleteTagsResponse
	return c.call(ctx, "DeleteTags", f, &out)
}

// DescribeTagsInput are the parameters of DescribeTags.
type DescribeTagsInput struct {
	Filters []Filter
	// MaxResults (at least 5; pages hold at most 1000) pages the answer; 0 means all at once.
	MaxResults int
	NextToken  string
	DryRun     bool
}

// DescribeTagsOutput is one page of DescribeTags.
type DescribeTagsOutput struct {
	Tags      []TagDescription
	NextToken string
}

// DescribeTags lists the tags of the account's volumes and snapshots.
func (c *Client) DescribeTags(ctx context.Context, in DescribeTagsInput) (DescribeTagsOutput, error) {
	f := url.Values{}
	setFilters(f, in.Filters)
	setInt(f, "MaxResults", int64(in.MaxResults))
	setString(f, "NextToken", in.NextToken)
	setBool(f, "DryRun", in.DryRun)
	var out DescribeTagsResponse
	if err := c.call(ctx, "DescribeTags", f, &out); err != nil {
		return DescribeTagsOutput{}, err
	}
	return DescribeTagsOutput{Tags: out.TagSet.Items, NextToken: out.NextToken}, nil
}
