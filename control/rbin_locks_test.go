package control

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrbin "github.com/aws/aws-sdk-go-v2/service/rbin"
	rbintypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"

	"github.com/cowvol/cowvol/cow"
)

// lockConfig is a LockConfiguration of days DAYS.
func lockConfig(days int32) *rbintypes.LockConfiguration {
	return &rbintypes.LockConfiguration{UnlockDelay: &rbintypes.UnlockDelay{UnlockDelayValue: aws.Int32(days), UnlockDelayUnit: rbintypes.UnlockDelayUnitDays}}
}

// checkRuleConflict fails t unless err is ConflictException INVALID_RULE_STATE.
func checkRuleConflict(t *testing.T, what string, err error) {
	t.Helper()
	var ce *rbintypes.ConflictException
	if !errors.As(err, &ce) || ce.Reason != rbintypes.ConflictExceptionReasonInvalidRuleState {
		t.Fatalf("%s: %v, want ConflictException INVALID_RULE_STATE", what, err)
	}
}

// listedByLockState lists the rules in state with the SDK's client.
func listedByLockState(t *testing.T, c *awsrbin.Client, state rbintypes.LockState) []string {
	t.Helper()
	out, err := c.ListRules(context.Background(), &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, LockState: state})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Rules {
		if r.LockState != state {
			t.Fatalf("ListRules LockState %s listed %s in %s", state, aws.ToString(r.Identifier), r.LockState)
		}
		ids = append(ids, aws.ToString(r.Identifier))
	}
	return ids
}

// TestRbinRuleLocks: with the SDK's client, a rule created locked refuses
// UpdateRule (even of its description) and DeleteRule, but takes tags;
// UnlockRule makes it pending_unlock with a LockEndTime an unlock delay
// away, still refusing; it can be locked again with its delay only;
// ListRules filters by lock state; tag-level rules cannot be locked.
func TestRbinRuleLocks(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{RecycleBinDay: time.Hour}, Options{})
	c := rbinClient(env)
	ctx := context.Background()
	days := &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(3), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}
	created, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days,
		LockConfiguration: lockConfig(7)})
	if err != nil || created.LockState != rbintypes.LockStateLocked || aws.ToInt32(created.LockConfiguration.UnlockDelay.UnlockDelayValue) != 7 {
		t.Fatalf("CreateRule locked = %+v, %v", created, err)
	}
	id := created.Identifier
	tagged, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, RetentionPeriod: days,
		ResourceTags: []rbintypes.ResourceTag{{ResourceTagKey: aws.String("backup")}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: tagged.Identifier, LockConfiguration: lockConfig(7)})
	checkRuleConflict(t, "LockRule of a tag-level rule", err)
	_, err = c.UnlockRule(ctx, &awsrbin.UnlockRuleInput{Identifier: tagged.Identifier})
	checkRuleConflict(t, "UnlockRule of a rule never locked", err)
	if _, err := c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: aws.String("abcdefghijk"), LockConfiguration: lockConfig(7)}); sdkCode(err) != "ResourceNotFoundException" {
		t.Fatalf("LockRule of an unknown rule: %v", err)
	}
	refused := func(when string) {
		t.Helper()
		_, err := c.UpdateRule(ctx, &awsrbin.UpdateRuleInput{Identifier: id, Description: aws.String("changed")})
		checkRuleConflict(t, when+": UpdateRule of the description", err)
		_, err = c.UpdateRule(ctx, &awsrbin.UpdateRuleInput{Identifier: id, RetentionPeriod: &rbintypes.RetentionPeriod{
			RetentionPeriodValue: aws.Int32(1), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}})
		checkRuleConflict(t, when+": UpdateRule of the retention", err)
		_, err = c.UpdateRule(ctx, &awsrbin.UpdateRuleInput{Identifier: id, ExcludeResourceTags: []rbintypes.ResourceTag{{ResourceTagKey: aws.String("x")}}})
		checkRuleConflict(t, when+": UpdateRule of the exclusions", err)
		_, err = c.DeleteRule(ctx, &awsrbin.DeleteRuleInput{Identifier: id})
		checkRuleConflict(t, when+": DeleteRule", err)
	}
	refused("locked")
	if _, err := c.TagResource(ctx, &awsrbin.TagResourceInput{ResourceArn: created.RuleArn, Tags: []rbintypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatalf("TagResource of a locked rule: %v", err)
	}
	_, err = c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: id, LockConfiguration: lockConfig(7)})
	checkRuleConflict(t, "LockRule of a locked rule", err)
	if l := listedByLockState(t, c, rbintypes.LockStateLocked); !slices.Equal(l, []string{*id}) {
		t.Fatalf("ListRules locked: %v", l)
	}
	if l := listedByLockState(t, c, rbintypes.LockStateUnlocked); !slices.Equal(l, []string{*tagged.Identifier}) {
		t.Fatalf("ListRules unlocked: %v", l)
	}

	before := time.Now()
	un, err := c.UnlockRule(ctx, &awsrbin.UnlockRuleInput{Identifier: id})
	if err != nil || un.LockState != rbintypes.LockStatePendingUnlock || un.LockEndTime == nil ||
		un.LockEndTime.Before(before.Add(7*time.Hour-time.Second)) || un.LockEndTime.After(time.Now().Add(7*time.Hour+time.Second)) {
		t.Fatalf("UnlockRule = %+v, %v", un, err)
	}
	got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: id})
	if err != nil || got.LockState != rbintypes.LockStatePendingUnlock || got.LockEndTime == nil || !got.LockEndTime.Equal(*un.LockEndTime) ||
		aws.ToString(got.Description) != "" || aws.ToInt32(got.RetentionPeriod.RetentionPeriodValue) != 3 {
		t.Fatalf("GetRule pending unlock = %+v, %v", got, err)
	}
	refused("pending unlock")
	_, err = c.UnlockRule(ctx, &awsrbin.UnlockRuleInput{Identifier: id})
	checkRuleConflict(t, "UnlockRule of a rule pending unlock", err)
	if l := listedByLockState(t, c, rbintypes.LockStatePendingUnlock); !slices.Equal(l, []string{*id}) {
		t.Fatalf("ListRules pending_unlock: %v", l)
	}
	_, err = c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: id, LockConfiguration: lockConfig(8)})
	checkRuleConflict(t, "LockRule with another delay while pending unlock", err)
	re, err := c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: id, LockConfiguration: lockConfig(7)})
	if err != nil || re.LockState != rbintypes.LockStateLocked {
		t.Fatalf("LockRule while pending unlock = %+v, %v", re, err)
	}
	if got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: id}); err != nil || got.LockState != rbintypes.LockStateLocked || got.LockEndTime != nil {
		t.Fatalf("GetRule locked again = %+v, %v", got, err)
	}
	refused("locked again")
}

// TestRbinRuleBadUnlockDelay: LockRule with an unlock delay out of 7 to 30
// DAYS is ValidationException and leaves the rule as it was.
func TestRbinRuleBadUnlockDelay(t *testing.T) {
	env := newTestEnv(t)
	c := rbinClient(env)
	ctx := context.Background()
	r, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(3), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		lc   *rbintypes.LockConfiguration
	}{
		{"6 days", lockConfig(6)},
		{"31 days", lockConfig(31)},
		{"0 days", lockConfig(0)},
		{"hours", &rbintypes.LockConfiguration{UnlockDelay: &rbintypes.UnlockDelay{UnlockDelayValue: aws.Int32(10), UnlockDelayUnit: "HOURS"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.LockRule(ctx, &awsrbin.LockRuleInput{Identifier: r.Identifier, LockConfiguration: tc.lc})
			var ve *rbintypes.ValidationException
			if !errors.As(err, &ve) || ve.Reason != rbintypes.ValidationExceptionReasonInvalidParameterValue {
				t.Fatalf("LockRule: %v, want ValidationException INVALID_PARAMETER_VALUE", err)
			}
			got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: r.Identifier})
			if err != nil || got.LockState != rbintypes.LockStateUnlocked || got.LockConfiguration != nil {
				t.Fatalf("after a refused LockRule: %+v, %v", got, err)
			}
		})
	}
	// The SDK refuses to send a LockConfiguration without UnlockDelay;
	// cowvol's client sends it.
	var ae *APIError
	if _, err := env.client.LockRule(ctx, *r.Identifier, LockConfiguration{}); !errors.As(err, &ae) || ae.Code != "ValidationException" {
		t.Fatalf("LockRule without UnlockDelay: %v", err)
	}
	if got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: r.Identifier}); err != nil || got.LockState != rbintypes.LockStateUnlocked {
		t.Fatalf("after LockRule without UnlockDelay: %+v, %v", got, err)
	}
}

// TestRbinRuleUnlockDelayEnds: when LockEndTime passes (a DAY is 50ms
// here) the rule is unlocked, with no LockEndTime, and can be updated and
// deleted.
func TestRbinRuleUnlockDelayEnds(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{RecycleBinDay: 50 * time.Millisecond}, Options{})
	c := rbinClient(env)
	ctx := context.Background()
	r, err := c.CreateRule(ctx, &awsrbin.CreateRuleInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot, LockConfiguration: lockConfig(7),
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(3), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays}})
	if err != nil {
		t.Fatal(err)
	}
	un, err := c.UnlockRule(ctx, &awsrbin.UnlockRuleInput{Identifier: r.Identifier})
	if err != nil || un.LockEndTime == nil {
		t.Fatalf("UnlockRule = %+v, %v", un, err)
	}
	time.Sleep(time.Until(*un.LockEndTime) + 10*time.Millisecond) // the delay itself (LockEndTime is to the millisecond)
	got, err := c.GetRule(ctx, &awsrbin.GetRuleInput{Identifier: r.Identifier})
	if err != nil || got.LockState != rbintypes.LockStateUnlocked || got.LockEndTime != nil || got.LockConfiguration == nil {
		t.Fatalf("GetRule after the unlock delay = %+v, %v", got, err)
	}
	if up, err := c.UpdateRule(ctx, &awsrbin.UpdateRuleInput{Identifier: r.Identifier, Description: aws.String("changed")}); err != nil ||
		aws.ToString(up.Description) != "changed" || up.LockState != rbintypes.LockStateUnlocked {
		t.Fatalf("UpdateRule after the unlock delay = %+v, %v", up, err)
	}
	if _, err := c.DeleteRule(ctx, &awsrbin.DeleteRuleInput{Identifier: r.Identifier}); err != nil {
		t.Fatalf("DeleteRule after the unlock delay: %v", err)
	}
}
