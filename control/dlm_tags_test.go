package control

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdlm "github.com/aws/aws-sdk-go-v2/service/dlm"
)

// TestDLMTagsWithSDK: the SDK's TagResource, ListTagsForResource and
// UntagResource on a policy's ARN (as Terraform and the aws CLI call them),
// and what they refuse, changing nothing.
func TestDLMTagsWithSDK(t *testing.T) {
	env, _ := dlmEnv(t, Options{})
	c := dlmClient(env)
	ctx := context.Background()
	out, err := c.CreateLifecyclePolicy(ctx, sdkCreateInput())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: out.PolicyId})
	if err != nil {
		t.Fatal(err)
	}
	arn := got.Policy.PolicyArn
	tagsNow := func() map[string]string {
		t.Helper()
		l, err := c.ListTagsForResource(ctx, &awsdlm.ListTagsForResourceInput{ResourceArn: arn})
		if err != nil {
			t.Fatal(err)
		}
		return l.Tags
	}
	if _, err := c.TagResource(ctx, &awsdlm.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"team": "storage", "owner": "dba"}}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"owner": "dba", "team": "storage"}; !maps.Equal(tagsNow(), want) {
		t.Fatalf("tags %v, want %v", tagsNow(), want)
	}
	if _, err := c.UntagResource(ctx, &awsdlm.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"owner", "absent"}}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"team": "storage"}; !maps.Equal(tagsNow(), want) {
		t.Fatalf("tags %v, want %v", tagsNow(), want)
	}
	after, err := c.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: out.PolicyId})
	if err != nil || !maps.Equal(after.Policy.Tags, map[string]string{"team": "storage"}) ||
		!aws.ToTime(after.Policy.DateModified).Equal(aws.ToTime(got.Policy.DateModified)) {
		t.Fatalf("GetLifecyclePolicy after tagging: %+v, %v (tags, and DateModified unchanged)", after.Policy, err)
	}

	other := "arn:aws:dlm:us-east-1:999999999999:policy/" + aws.ToString(out.PolicyId)
	missing := aws.ToString(arn)[:len(aws.ToString(arn))-len(aws.ToString(out.PolicyId))] + "policy-0123456789abcdef0"
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"reserved key", func() error {
			_, err := c.TagResource(ctx, &awsdlm.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"aws:x": "y"}})
			return err
		}, "InvalidRequestException"},
		{"no tags", func() error {
			_, err := c.TagResource(ctx, &awsdlm.TagResourceInput{ResourceArn: arn, Tags: map[string]string{}})
			return err
		}, "InvalidRequestException"},
		{"another account's ARN", func() error {
			_, err := c.ListTagsForResource(ctx, &awsdlm.ListTagsForResourceInput{ResourceArn: aws.String(other)})
			return err
		}, "InvalidRequestException"},
		{"no such policy", func() error {
			_, err := c.TagResource(ctx, &awsdlm.TagResourceInput{ResourceArn: aws.String(missing), Tags: map[string]string{"a": "b"}})
			return err
		}, "ResourceNotFoundException"},
	} {
		checkSDKErrorCode(t, tc.name, tc.call(), tc.want)
	}
	if want := map[string]string{"team": "storage"}; !maps.Equal(tagsNow(), want) {
		t.Fatalf("after the refusals: tags %v, want %v", tagsNow(), want)
	}
}

// checkSDKErrorCode fails the test unless err is an SDK API error with
// code want.
func checkSDKErrorCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	var api interface{ ErrorCode() string }
	if !errors.As(err, &api) || api.ErrorCode() != want {
		t.Errorf("%s: %v, want %s", what, err, want)
	}
}
