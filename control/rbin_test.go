package control

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrbin "github.com/aws/aws-sdk-go-v2/service/rbin"
	rbintypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"
)

// rbinClient is the AWS SDK's Recycle Bin client, unmodified, on env's socket.
func rbinClient(env *testEnv) *awsrbin.Client {
	return awsrbin.New(awsrbin.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
}

// rbinClientTCP is the SDK's Recycle Bin client on addr, signing with key.
func rbinClientTCP(addr string, key AccessKey) *awsrbin.Client {
	return awsrbin.New(awsrbin.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

// TestRbinRules: the SDK's client creates, gets, lists, updates and deletes
// rules on the socket; the answers carry what was asked.
func TestRbinRules(t *testing.T) {
	env := newTestEnv(t)
	c := rbinClient(env)
	ctx := context.Background()
	out, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{
		ResourceType:    rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(7), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays},
		Description:     aws.String("keep backups"),
		ResourceTags:    []rbintypes.ResourceTag{{ResourceTagKey: aws.String("backup"), ResourceTagValue: aws.String("yes")}},
		Tags:            []rbintypes.Tag{{Key: aws.String("team"), Value: aws.String("db")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Identifier)
	if len(id) != 11 || out.Status != rbintypes.RuleStatusAvailable || aws.ToInt32(out.RetentionPeriod.RetentionPeriodValue) != 7 ||
		len(out.ResourceTags) != 1 || aws.ToString(out.RuleArn) != "arn:aws:rbin:us-east-1:"+DefaultAccountID+":rule/"+id {
		t.Fatalf("CreateRule = %+v", out)
	}
	all, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(1), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: out.Identifier})
	if err != nil || aws.ToString(got.Description) != "keep backups" || aws.ToString(got.ResourceTags[0].ResourceTagValue) != "yes" ||
		got.LockState != rbintypes.LockStateUnlocked {
		t.Fatalf("GetRule = %+v, %v", got, err)
	}
	var listed []string
	p := awsrbin.NewListRulesPaginator(c, &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Rules {
			listed = append(listed, aws.ToString(r.Identifier))
		}
	}
	if len(listed) != 2 {
		t.Fatalf("ListRules paged %v", listed)
	}
	byTag, err := c.ListRules(ctx, &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot,
		ResourceTags: []rbintypes.ResourceTag{{ResourceTagKey: aws.String("backup"), ResourceTagValue: aws.String("yes")}}})
	if err != nil || len(byTag.Rules) != 1 || aws.ToString(byTag.Rules[0].Identifier) != id {
		t.Fatalf("ListRules by tag = %+v, %v", byTag, err)
	}
	up, err := c.UpdateRule(ctx, &awsrbin.UpdateRuleInput{Identifier: out.Identifier,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(30), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}})
	if err != nil || aws.ToInt32(up.RetentionPeriod.RetentionPeriodValue) != 30 || aws.ToString(up.Description) != "keep backups" || len(up.ResourceTags) != 1 {
		t.Fatalf("UpdateRule = %+v, %v", up, err)
	}
	if _, err := c.DeleteRule(ctx, &awsrbin.DeleteRuleInput{Identifier: all.Identifier}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: all.Identifier})
	var nf *rbintypes.ResourceNotFoundException
	if !errors.As(err, &nf) || nf.Reason != rbintypes.ResourceNotFoundExceptionReasonRuleNotFound {
		t.Fatalf("GetRule of a deleted rule: %v", err)
	}
}

// TestRbinBadInput: refused requests get ValidationException or
// ResourceNotFoundException and change nothing.
func TestRbinBadInput(t *testing.T) {
	env := newTestEnv(t)
	c := rbinClient(env)
	ctx := context.Background()
	days := func(n int32) *rbintypes.RetentionPeriod {
		return &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(n), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}
	}
	for _, tc := range []struct {
		name string
		in   awsrbin.CreateRuleInput
	}{
		{"zero days", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days(0)}},
		{"too many days", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days(3651)}},
		{"images", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEc2Image, RetentionPeriod: days(1)}},
		{"unlock delay of 6 days", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days(1),
			LockConfiguration: &rbintypes.LockConfiguration{UnlockDelay: &rbintypes.UnlockDelay{UnlockDelayValue: aws.Int32(6), UnlockDelayUnit: rbintypes.UnlockDelayUnitDays}}}},
		{"locked tag-level rule", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days(1),
			ResourceTags:      []rbintypes.ResourceTag{{ResourceTagKey: aws.String("a")}},
			LockConfiguration: &rbintypes.LockConfiguration{UnlockDelay: &rbintypes.UnlockDelay{UnlockDelayValue: aws.Int32(7), UnlockDelayUnit: rbintypes.UnlockDelayUnitDays}}}},
		{"exclusions and tags", awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days(1),
			ResourceTags:        []rbintypes.ResourceTag{{ResourceTagKey: aws.String("a")}},
			ExcludeResourceTags: []rbintypes.ResourceTag{{ResourceTagKey: aws.String("b")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateRule(ctx, &tc.in)
			var ve *rbintypes.ValidationException
			if !errors.As(err, &ve) || ve.Reason != rbintypes.ValidationExceptionReasonInvalidParameterValue {
				t.Fatalf("CreateRule: %v, want ValidationException", err)
			}
		})
	}
	if _, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: aws.String("abcdefghijk")}); sdkCode(err) != "ResourceNotFoundException" {
		t.Fatalf("GetRule of an unknown rule: %v", err)
	}
	if _, err := c.DeleteRule(ctx, &awsrbin.DeleteRuleInput{Identifier: aws.String("not-an-id")}); sdkCode(err) != "ValidationException" {
		t.Fatalf("DeleteRule of a malformed ID: %v", err)
	}
	if _, err := c.ListRules(ctx, &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, NextToken: aws.String("bogus")}); sdkCode(err) != "ValidationException" {
		t.Fatalf("ListRules with a bad token: %v", err)
	}
	if rules, _ := env.engine.RecycleRules(ctx); len(rules) != 0 {
		t.Fatalf("refused requests left rules: %+v", rules)
	}
}

// TestRbinOverTCP: on --listen, requests signed for service rbin by a
// full-access key may change rules; a read-only key may only read them.
func TestRbinOverTCP(t *testing.T) {
	env := newTestEnv(t)
	addr, _ := env.listenTCP(t)
	admin, reader := rbinClientTCP(addr, adminKey), rbinClientTCP(addr, readerKey)
	ctx := context.Background()
	in := &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(2), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}}
	out, err := admin.CreateRule(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: out.Identifier}); err != nil {
		t.Fatalf("read-only GetRule: %v", err)
	}
	if _, err := reader.ListRules(ctx, &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot}); err != nil {
		t.Fatalf("read-only ListRules: %v", err)
	}
	if _, err := reader.CreateRule(ctx, in); sdkCode(err) != "AccessDeniedException" {
		t.Fatalf("read-only CreateRule: %v", err)
	}
	if _, err := reader.DeleteRule(ctx, &awsrbin.DeleteRuleInput{Identifier: out.Identifier}); sdkCode(err) != "AccessDeniedException" {
		t.Fatalf("read-only DeleteRule: %v", err)
	}
	if rules, _ := env.engine.RecycleRules(ctx); len(rules) != 1 {
		t.Fatalf("rules after the refused calls: %d", len(rules))
	}
}

// TestRecycleBinActions: the EC2 query actions list a deleted snapshot a
// rule retains and restore it with its ID; bad input is refused.
func TestRecycleBinActions(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.client.CreateRule(ctx, CreateRuleInput{ResourceType: "EBS_SNAPSHOT",
		RetentionPeriod: &RetentionPeriod{RetentionPeriodValue: aws.Int(1), RetentionPeriodUnit: "DAYS"}}); err != nil {
		t.Fatal(err)
	}
	vol := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	env.writeRandom(t, vol, 0, blk)
	snap := env.snapshotOf(t, vol)
	if err := env.client.DeleteSnapshot(ctx, snap, false); err != nil {
		t.Fatal(err)
	}
	list, err := env.client.ListSnapshotsInRecycleBin(ctx, nil, 0, "", false)
	if err != nil || len(list.Snapshots) != 1 || list.Snapshots[0].SnapshotID != snap || list.Snapshots[0].VolumeID != vol ||
		!list.Snapshots[0].RecycleBinExitTime.After(list.Snapshots[0].RecycleBinEnterTime.Time) {
		t.Fatalf("ListSnapshotsInRecycleBin = %+v, %v", list, err)
	}
	var ae *APIError
	if _, err := env.client.RestoreSnapshotFromRecycleBin(ctx, snap, true); !errors.As(err, &ae) || ae.Code != CodeDryRunOperation {
		t.Fatalf("dry run: %v", err)
	}
	for _, id := range []string{"snap-0000000000000000f", "bogus"} {
		if _, err := env.client.RestoreSnapshotFromRecycleBin(ctx, id, false); !errors.As(err, &ae) ||
			(ae.Code != CodeInvalidSnapshotNotFound && ae.Code != CodeInvalidSnapshotIDMalformed) {
			t.Fatalf("restoring %s: %v", id, err)
		}
	}
	out, err := env.client.RestoreSnapshotFromRecycleBin(ctx, snap, false)
	if err != nil || out.SnapshotID != snap || out.Status != "completed" || out.VolumeID != vol {
		t.Fatalf("RestoreSnapshotFromRecycleBin = %+v, %v", out, err)
	}
	if list, _ := env.client.ListSnapshotsInRecycleBin(ctx, nil, 0, "", false); len(list.Snapshots) != 0 {
		t.Fatalf("bin after the restore: %+v", list.Snapshots)
	}
	if _, err := env.engine.SnapshotInfo(snap); err != nil {
		t.Fatalf("the restored snapshot: %v", err)
	}
}
