package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
)

// TestTags: the SDK tags a volume and a snapshot, lists the tags with
// every filter and in pages, deletes them by key, by key and value, and
// all; bad input gets EC2's codes and changes nothing.
func TestTags(t *testing.T) {
	env := newTestEnv(t)
	c := sdkClientOf(env)
	ctx := context.Background()
	vol, err := env.engine.CreateVolume(ctx, cow.CreateVolumeParams{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := env.engine.CreateSnapshot(ctx, cow.CreateSnapshotParams{VolumeID: vol.ID})
	if err != nil {
		t.Fatal(err)
	}
	both := []string{vol.ID, snap.ID}
	tags := []types.Tag{{Key: aws.String("Name"), Value: aws.String("db")}, {Key: aws.String("env"), Value: aws.String("")}}
	if _, err := c.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: both, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	describe := func(filters ...types.Filter) []string {
		t.Helper()
		out, err := c.DescribeTags(ctx, &awsec2.DescribeTagsInput{Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range out.Tags {
			got = append(got, fmt.Sprintf("%s/%s/%s=%s", aws.ToString(d.ResourceId), d.ResourceType, aws.ToString(d.Key), aws.ToString(d.Value)))
		}
		return got
	}
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	for _, tc := range []struct {
		filters []types.Filter
		want    string
	}{
		{nil, fmt.Sprintf("[%[2]s/snapshot/Name=db %[2]s/snapshot/env= %[1]s/volume/Name=db %[1]s/volume/env=]", vol.ID, snap.ID)},
		{[]types.Filter{f("resource-type", "snapshot")}, fmt.Sprintf("[%[1]s/snapshot/Name=db %[1]s/snapshot/env=]", snap.ID)},
		{[]types.Filter{f("resource-id", vol.ID), f("key", "N*")}, fmt.Sprintf("[%s/volume/Name=db]", vol.ID)},
		{[]types.Filter{f("value", "d?")}, fmt.Sprintf("[%s/snapshot/Name=db %s/volume/Name=db]", snap.ID, vol.ID)},
		{[]types.Filter{f("resource-type", "instance")}, "[]"},
	} {
		if got := fmt.Sprint(describe(tc.filters...)); got != tc.want {
			t.Errorf("DescribeTags %v: %s, want %s", tc.filters, got, tc.want)
		}
	}
	// The resources show them too, and their tag filters select by them.
	dv, err := c.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{Filters: []types.Filter{f("tag:Name", "db"), f("tag-key", "env")}})
	if err != nil || len(dv.Volumes) != 1 || len(dv.Volumes[0].Tags) != 2 {
		t.Errorf("DescribeVolumes by tag: %+v, %v", dv, err)
	}
	// Pages of 5 (the smallest) through 12 tags.
	var more []types.Tag
	for i := range 10 {
		more = append(more, types.Tag{Key: aws.String(fmt.Sprintf("k%02d", i)), Value: aws.String("v")})
	}
	if _, err := c.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{vol.ID}, Tags: more}); err != nil {
		t.Fatal(err)
	}
	n, pages := 0, 0
	p := awsec2.NewDescribeTagsPaginator(c, &awsec2.DescribeTagsInput{MaxResults: aws.Int32(5), Filters: []types.Filter{f("resource-id", vol.ID)}})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, pages = n+len(out.Tags), pages+1
	}
	if n != 12 || pages != 3 {
		t.Errorf("paged: %d tags in %d pages, want 12 in 3", n, pages)
	}
	// Delete by key and value: a wrong value keeps the tag.
	if _, err := c.DeleteTags(ctx, &awsec2.DeleteTagsInput{Resources: both, Tags: []types.Tag{
		{Key: aws.String("Name"), Value: aws.String("other")}, {Key: aws.String("env"), Value: aws.String("")}}}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(describe(f("resource-id", snap.ID))); got != fmt.Sprintf("[%s/snapshot/Name=db]", snap.ID) {
		t.Errorf("after deleting env=\"\" and Name=other: %s", got)
	}
	if _, err := c.DeleteTags(ctx, &awsec2.DeleteTagsInput{Resources: []string{snap.ID}}); err != nil {
		t.Fatal(err)
	}
	if got := describe(f("resource-id", snap.ID)); len(got) != 0 {
		t.Errorf("after deleting all: %v", got)
	}

	// Bad input changes nothing.
	before := fmt.Sprint(describe())
	long := strings.Repeat("k", 129)
	var fifty []string
	for i := range 40 {
		fifty = append(fifty, fmt.Sprintf("Tag.%d.Key=x%d", i+1, i))
	}
	q := func(action, params string) string { return "Action=" + action + v + "&" + params }
	missing := "vol-00000000000000000"
	for _, tc := range []struct{ body, code, msg string }{
		{q("CreateTags", "ResourceId.1="+vol.ID+"&ResourceId.2="+missing+"&Tag.1.Key=a"), CodeInvalidVolumeNotFound, missing},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&ResourceId.2=snap-00000000000000000&Tag.1.Key=a"), CodeInvalidSnapshotNotFound, "snap-00000000000000000"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&ResourceId.2=i-0123&Tag.1.Key=a"), CodeInvalidID, "i-0123"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&Tag.1.Key=aws:x"), CodeInvalidParameterValue, "aws:"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&Tag.1.Key=AWS:x"), CodeInvalidParameterValue, "aws:"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&Tag.1.Key="+long), CodeInvalidParameterValue, "128"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&Tag.1.Key=k&Tag.1.Value="+strings.Repeat("v", 257)), CodeInvalidParameterValue, "256"},
		{q("CreateTags", "ResourceId.1="+snap.ID+"&ResourceId.2="+vol.ID+"&"+strings.Join(fifty, "&")), CodeTagLimitExceeded, vol.ID},
		{q("CreateTags", "ResourceId.1="+vol.ID), CodeMissingParameter, "Tag"},
		{q("CreateTags", "Tag.1.Key=a"), CodeMissingParameter, "ResourceId"},
		{q("CreateTags", "ResourceId.1="+vol.ID+"&Tag.1.Key=a&DryRun=true"), CodeDryRunOperation, ""},
		{q("DeleteTags", "ResourceId.1="+vol.ID+"&Tag.1.Key=aws:x"), CodeInvalidParameterValue, "aws:"},
		{q("DeleteTags", "ResourceId.1="+missing), CodeInvalidVolumeNotFound, missing},
		{q("DeleteTags", "ResourceId.1="+vol.ID+"&DryRun=true"), CodeDryRunOperation, ""},
		{q("DescribeTags", "Filter.1.Name=owner&Filter.1.Value.1=x"), CodeInvalidParameterValue, "owner"},
		{q("DescribeTags", "MaxResults=4"), CodeInvalidParameterValue, "maxResults"},
		{q("DescribeTags", "NextToken=garbage"), CodeInvalidPaginationToken, "garbage"},
		{q("DescribeTags", "DryRun=true"), CodeDryRunOperation, ""},
	} {
		resp, err := env.raw.Post("http://cowvol/", "application/x-www-form-urlencoded", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp)
		if !strings.Contains(b, "<Code>"+tc.code+"</Code>") || !strings.Contains(b, tc.msg) {
			t.Errorf("%s: %d %s, want %s saying %q", clip(tc.body), resp.StatusCode, b, tc.code, tc.msg)
		}
	}
	if after := fmt.Sprint(describe()); after != before {
		t.Errorf("bad input changed the tags: %s, was %s", after, before)
	}
	// 51 tags through the SDK: TagLimitExceeded.
	_, err = c.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: []string{snap.ID}, Tags: append(more, make51(41)...)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != CodeTagLimitExceeded {
		t.Errorf("51 tags: %v, want TagLimitExceeded", err)
	}
}

func make51(n int) []types.Tag {
	var out []types.Tag
	for i := range n {
		out = append(out, types.Tag{Key: aws.String(fmt.Sprintf("m%d", i)), Value: aws.String("")})
	}
	return out
}
