package control

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdlm "github.com/aws/aws-sdk-go-v2/service/dlm"
	dlmtypes "github.com/aws/aws-sdk-go-v2/service/dlm/types"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/lifecycle"
)

// dlmEnv is a test env whose server keeps lifecycle policies.
func dlmEnv(t *testing.T, opts Options) (*testEnv, *lifecycle.Manager) {
	t.Helper()
	m, err := lifecycle.Open(t.TempDir(), lifecycle.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Lifecycle = m
	return newTestEnvWith(t, cow.Options{}, opts), m
}

// dlmClient is the AWS SDK's DLM client, unmodified, on env's socket.
func dlmClient(env *testEnv) *awsdlm.Client {
	return awsdlm.New(awsdlm.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
}

func dlmDetails() *dlmtypes.PolicyDetails {
	return &dlmtypes.PolicyDetails{
		PolicyType:    dlmtypes.PolicyTypeValuesEbsSnapshotManagement,
		ResourceTypes: []dlmtypes.ResourceTypeValues{dlmtypes.ResourceTypeValuesVolume},
		TargetTags:    []dlmtypes.Tag{{Key: aws.String("backup"), Value: aws.String("yes")}},
		Schedules: []dlmtypes.Schedule{{
			Name:       aws.String("every 12 hours"),
			CopyTags:   aws.Bool(true),
			TagsToAdd:  []dlmtypes.Tag{{Key: aws.String("made-by"), Value: aws.String("dlm")}},
			CreateRule: &dlmtypes.CreateRule{Interval: aws.Int32(12), IntervalUnit: dlmtypes.IntervalUnitValuesHours, Times: []string{"03:00"}},
			RetainRule: &dlmtypes.RetainRule{Count: aws.Int32(5)},
		}},
	}
}

func sdkCreateInput() *awsdlm.CreateLifecyclePolicyInput {
	return &awsdlm.CreateLifecyclePolicyInput{
		Description:      aws.String("twice a day"),
		ExecutionRoleArn: aws.String("arn:aws:iam::111122223333:role/AWSDataLifecycleManagerDefaultRole"),
		State:            dlmtypes.SettablePolicyStateValuesEnabled,
		PolicyDetails:    dlmDetails(),
		Tags:             map[string]string{"owner": "ops"},
	}
}

func TestDLMPolicyLifecycleWithSDK(t *testing.T) {
	env, _ := dlmEnv(t, Options{})
	c := dlmClient(env)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	out, err := c.CreateLifecyclePolicy(ctx, sdkCreateInput())
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.PolicyId)
	if !strings.HasPrefix(id, "policy-") {
		t.Fatalf("PolicyId %q", id)
	}
	got, err := c.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	p := got.Policy
	if aws.ToString(p.PolicyArn) != "arn:aws:dlm:us-east-1:"+DefaultAccountID+":policy/"+id || p.State != dlmtypes.GettablePolicyStateValuesEnabled ||
		aws.ToString(p.Description) != "twice a day" || p.Tags["owner"] != "ops" || p.DateCreated == nil || p.DateCreated.Before(before) {
		t.Fatalf("GetLifecyclePolicy: %+v", p)
	}
	s := p.PolicyDetails.Schedules[0]
	if aws.ToString(s.Name) != "every 12 hours" || aws.ToInt32(s.CreateRule.Interval) != 12 || s.CreateRule.Times[0] != "03:00" ||
		aws.ToInt32(s.RetainRule.Count) != 5 || !aws.ToBool(s.CopyTags) || aws.ToString(s.TagsToAdd[0].Value) != "dlm" {
		t.Fatalf("schedule as stored: %+v", s)
	}

	list, err := c.GetLifecyclePolicies(ctx, &awsdlm.GetLifecyclePoliciesInput{TargetTags: []string{"backup=yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Policies) != 1 || aws.ToString(list.Policies[0].PolicyId) != id || list.Policies[0].PolicyType != dlmtypes.PolicyTypeValuesEbsSnapshotManagement {
		t.Fatalf("GetLifecyclePolicies: %+v", list.Policies)
	}
	for _, in := range []*awsdlm.GetLifecyclePoliciesInput{
		{TargetTags: []string{"backup=no"}},
		{State: dlmtypes.GettablePolicyStateValuesDisabled},
		{PolicyIds: []string{"policy-00000000000000000"}},
	} {
		list, err := c.GetLifecyclePolicies(ctx, in)
		if err != nil || len(list.Policies) != 0 {
			t.Fatalf("filter %+v: %v, %+v", in, err, list)
		}
	}

	if _, err := c.UpdateLifecyclePolicy(ctx, &awsdlm.UpdateLifecyclePolicyInput{PolicyId: aws.String(id),
		State: dlmtypes.SettablePolicyStateValuesDisabled, Description: aws.String("paused")}); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Policy.State != dlmtypes.GettablePolicyStateValuesDisabled || aws.ToString(got.Policy.Description) != "paused" ||
		aws.ToInt32(got.Policy.PolicyDetails.Schedules[0].RetainRule.Count) != 5 {
		t.Fatalf("after update: %+v", got.Policy)
	}

	if _, err := c.DeleteLifecyclePolicy(ctx, &awsdlm.DeleteLifecyclePolicyInput{PolicyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: aws.String(id)})
	var nf *dlmtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("get after delete: %v, want ResourceNotFoundException", err)
	}
}

func TestDLMRefusals(t *testing.T) {
	env, m := dlmEnv(t, Options{})
	c := dlmClient(env)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(*awsdlm.CreateLifecyclePolicyInput)
		code   string
		msg    string
	}{
		{"archive rule", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.Schedules[0].ArchiveRule = &dlmtypes.ArchiveRule{RetainRule: &dlmtypes.ArchiveRetainRule{RetentionArchiveTier: &dlmtypes.RetentionArchiveTier{Count: aws.Int32(1)}}}
		}, "InvalidRequestException", "ArchiveRule"},
		{"cross-region copy", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.Schedules[0].CrossRegionCopyRules = []dlmtypes.CrossRegionCopyRule{{Encrypted: aws.Bool(false)}}
		}, "InvalidRequestException", "CrossRegionCopyRules"},
		{"default policy", func(in *awsdlm.CreateLifecyclePolicyInput) { in.DefaultPolicy = dlmtypes.DefaultPolicyTypeValuesVolume },
			"InvalidRequestException", "DefaultPolicy"},
		{"instances", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.ResourceTypes = []dlmtypes.ResourceTypeValues{dlmtypes.ResourceTypeValuesInstance}
		}, "InvalidRequestException", "INSTANCE"},
		{"interval 5", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.Schedules[0].CreateRule.Interval = aws.Int32(5)
		},
			"InvalidRequestException", "Interval 5"},
		{"minutes without the test flag", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.Schedules[0].CreateRule = &dlmtypes.CreateRule{Interval: aws.Int32(1), IntervalUnit: "MINUTES"}
		}, "InvalidRequestException", "MINUTES"},
		{"cron every 10 minutes", func(in *awsdlm.CreateLifecyclePolicyInput) {
			in.PolicyDetails.Schedules[0].CreateRule = &dlmtypes.CreateRule{CronExpression: aws.String("cron(0/10 * * * ? *)")}
		}, "InvalidRequestException", "1 hour"},
	} {
		in := sdkCreateInput()
		tc.change(in)
		_, err := c.CreateLifecyclePolicy(ctx, in)
		if sdkCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s about %s", tc.name, err, tc.code, tc.msg)
		}
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("refused requests left %d policies", n)
	}
	_, err := c.UpdateLifecyclePolicy(ctx, &awsdlm.UpdateLifecyclePolicyInput{PolicyId: aws.String("policy-00000000000000000"),
		State: dlmtypes.SettablePolicyStateValuesDisabled})
	if sdkCode(err) != "ResourceNotFoundException" {
		t.Fatalf("update of an unknown policy: %v", err)
	}
	_, err = c.DeleteLifecyclePolicy(ctx, &awsdlm.DeleteLifecyclePolicyInput{PolicyId: aws.String("policy-00000000000000000")})
	if sdkCode(err) != "ResourceNotFoundException" {
		t.Fatalf("delete of an unknown policy: %v", err)
	}
}

func TestDLMOverTCPWithSigV4(t *testing.T) {
	m, err := lifecycle.Open(t.TempDir(), lifecycle.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(env.engine, Options{Logger: quietLogger(), AccessKeys: []AccessKey{adminKey, readerKey}, Lifecycle: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	client := func(key AccessKey) *awsdlm.Client {
		return awsdlm.New(awsdlm.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String("http://" + ln.Addr().String()),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, nil
			}),
			RetryMaxAttempts: 1,
		})
	}
	out, err := client(adminKey).CreateLifecyclePolicy(ctx, sdkCreateInput())
	if err != nil {
		t.Fatal(err)
	}
	reader := client(readerKey)
	if _, err := reader.GetLifecyclePolicy(ctx, &awsdlm.GetLifecyclePolicyInput{PolicyId: out.PolicyId}); err != nil {
		t.Fatalf("read-only key may read: %v", err)
	}
	if _, err := reader.DeleteLifecyclePolicy(ctx, &awsdlm.DeleteLifecyclePolicyInput{PolicyId: out.PolicyId}); sdkCode(err) != "AccessDeniedException" {
		t.Fatalf("read-only key deleting: %v, want AccessDeniedException", err)
	}
	if _, err := m.Get(aws.ToString(out.PolicyId)); err != nil {
		t.Fatalf("refused delete removed the policy: %v", err)
	}
}
