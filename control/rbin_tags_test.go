package control

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrbin "github.com/aws/aws-sdk-go-v2/service/rbin"
	rbintypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
)

// TestRbinTagsWithSDK: the SDK's TagResource, ListTagsForResource and
// UntagResource on a rule's ARN; refusals change nothing; a DLM ARN on
// the same paths is not the Recycle Bin's.
func TestRbinTagsWithSDK(t *testing.T) {
	env := newTestEnv(t)
	c := rbinClient(env)
	ctx := context.Background()
	out, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{
		ResourceType:    rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(7), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays},
		Tags:            []rbintypes.Tag{{Key: aws.String("team"), Value: aws.String("db")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := out.RuleArn
	tagsNow := func() string {
		t.Helper()
		l, err := c.ListTagsForResource(ctx, &awsrbin.ListTagsForResourceInput{ResourceArn: arn})
		if err != nil {
			t.Fatal(err)
		}
		var kv []string
		for _, tg := range l.Tags {
			kv = append(kv, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
		}
		return strings.Join(kv, ",")
	}
	tag := func(k, v string) rbintypes.Tag { return rbintypes.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := c.TagResource(ctx, &awsrbin.TagResourceInput{ResourceArn: arn, Tags: []rbintypes.Tag{tag("team", "storage"), tag("env", "prod")}}); err != nil {
		t.Fatal(err)
	}
	if got := tagsNow(); got != "team=storage,env=prod" {
		t.Fatalf("tags %s after TagResource", got)
	}
	if _, err := c.UntagResource(ctx, &awsrbin.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"team", "absent"}}); err != nil {
		t.Fatal(err)
	}
	if got := tagsNow(); got != "env=prod" {
		t.Fatalf("tags %s after UntagResource", got)
	}
	rule, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: out.Identifier})
	if err != nil || len(rule.ResourceTags) != 0 || aws.ToInt32(rule.RetentionPeriod.RetentionPeriodValue) != 7 {
		t.Fatalf("GetRule after tagging: %+v, %v", rule, err)
	}
	many := make([]rbintypes.Tag, 60)
	for i := range many {
		many[i] = tag(strings.Repeat("k", i+1), "v")
	}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"reserved key", func() error {
			_, err := c.TagResource(ctx, &awsrbin.TagResourceInput{ResourceArn: arn, Tags: []rbintypes.Tag{tag("aws:x", "y")}})
			return err
		}, "ValidationException"},
		{"over 50 tags", func() error {
			_, err := c.TagResource(ctx, &awsrbin.TagResourceInput{ResourceArn: arn, Tags: many})
			return err
		}, "ValidationException"},
		{"a DLM policy's ARN", func() error {
			_, err := c.ListTagsForResource(ctx, &awsrbin.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:dlm:us-east-1:" + DefaultAccountID + ":policy/policy-0123456789abcdef0")})
			return err
		}, "InternalServerException"}, // no DLM on this server
		{"no such rule", func() error {
			_, err := c.TagResource(ctx, &awsrbin.TagResourceInput{ResourceArn: aws.String("arn:aws:rbin:us-east-1:" + DefaultAccountID + ":rule/abcdefghijk"),
				Tags: []rbintypes.Tag{tag("a", "b")}})
			return err
		}, "ResourceNotFoundException"},
	} {
		checkSDKErrorCode(t, tc.name, tc.call(), tc.want)
	}
	if got := tagsNow(); got != "env=prod" {
		t.Fatalf("tags %s after the refusals", got)
	}
}
