package cow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRuleMatches(t *testing.T) {
	tag := func(k, v string) RecycleRuleTag { return RecycleRuleTag{Key: k, Value: v} }
	snap := []Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "db"}}
	for _, tc := range []struct {
		name string
		rule RecycleRule
		tags []Tag
		want bool
	}{
		{"all, untagged snapshot", RecycleRule{}, nil, true},
		{"all, tagged snapshot", RecycleRule{}, snap, true},
		{"key and value", RecycleRule{ResourceTags: []RecycleRuleTag{tag("env", "prod")}}, snap, true},
		{"other value", RecycleRule{ResourceTags: []RecycleRuleTag{tag("env", "dev")}}, snap, false},
		{"key, any value", RecycleRule{ResourceTags: []RecycleRuleTag{tag("team", "")}}, snap, true},
		{"one of several", RecycleRule{ResourceTags: []RecycleRuleTag{tag("x", "y"), tag("team", "db")}}, snap, true},
		{"tag rule, untagged snapshot", RecycleRule{ResourceTags: []RecycleRuleTag{tag("env", "prod")}}, nil, false},
		{"value is case-sensitive", RecycleRule{ResourceTags: []RecycleRuleTag{tag("env", "Prod")}}, snap, false},
		{"excluded", RecycleRule{ExcludeTags: []RecycleRuleTag{tag("env", "prod")}}, snap, false},
		{"exclusion not carried", RecycleRule{ExcludeTags: []RecycleRuleTag{tag("env", "dev")}}, snap, true},
		{"another resource type", RecycleRule{ResourceType: "EC2_IMAGE"}, snap, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rule.ResourceType == "" {
				tc.rule.ResourceType = ResourceTypeEBSSnapshot
			}
			if got := ruleMatches(tc.rule, tc.tags); got != tc.want {
				t.Fatalf("ruleMatches = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRetainingRule: of the rules that match, the longest retention wins.
func TestRetainingRule(t *testing.T) {
	rules := []RecycleRule{
		{ID: "short", ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 1},
		{ID: "long", ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 30, ResourceTags: []RecycleRuleTag{{Key: "keep"}}},
		{ID: "other", ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 99, ResourceTags: []RecycleRuleTag{{Key: "x"}}},
	}
	for _, tc := range []struct {
		tags []Tag
		want string
	}{
		{nil, "short"},
		{[]Tag{{Key: "keep", Value: "1"}}, "long"},
		{[]Tag{{Key: "x", Value: ""}, {Key: "keep"}}, "other"},
	} {
		r, ok := retainingRule(rules, tc.tags)
		if !ok || r.ID != tc.want {
			t.Errorf("tags %v: rule %q (%v), want %q", tc.tags, r.ID, ok, tc.want)
		}
	}
	if _, ok := retainingRule(rules[1:], nil); ok {
		t.Error("an untagged snapshot matched tag rules only")
	}
}

func TestValidateRecycleRule(t *testing.T) {
	good := RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 7, RetentionUnit: RetentionUnitDays}
	tags := func(n int) []RecycleRuleTag { return make([]RecycleRuleTag, n) }
	for _, tc := range []struct {
		name   string
		change func(*RecycleRule)
		ok     bool
	}{
		{"good", func(*RecycleRule) {}, true},
		{"a day", func(r *RecycleRule) { r.RetentionValue = 1 }, true},
		{"ten years", func(r *RecycleRule) { r.RetentionValue = 3650 }, true},
		{"zero days", func(r *RecycleRule) { r.RetentionValue = 0 }, false},
		{"over ten years", func(r *RecycleRule) { r.RetentionValue = 3651 }, false},
		{"hours", func(r *RecycleRule) { r.RetentionUnit = "HOURS" }, false},
		{"images", func(r *RecycleRule) { r.ResourceType = "EC2_IMAGE" }, false},
		{"no type", func(r *RecycleRule) { r.ResourceType = "" }, false},
		{"long description", func(r *RecycleRule) { r.Description = strings.Repeat("d", 256) }, false},
		{"empty tag key", func(r *RecycleRule) { r.ResourceTags = tags(1) }, false},
		{"long tag key", func(r *RecycleRule) { r.ResourceTags = []RecycleRuleTag{{Key: strings.Repeat("k", 129)}} }, false},
		{"long tag value", func(r *RecycleRule) {
			r.ResourceTags = []RecycleRuleTag{{Key: "k", Value: strings.Repeat("v", 257)}}
		}, false},
		{"exclusions with resource tags", func(r *RecycleRule) {
			r.ResourceTags = []RecycleRuleTag{{Key: "a"}}
			r.ExcludeTags = []RecycleRuleTag{{Key: "b"}}
		}, false},
		{"six exclusions", func(r *RecycleRule) {
			r.ExcludeTags = []RecycleRuleTag{{Key: "a"}, {Key: "b"}, {Key: "c"}, {Key: "d"}, {Key: "e"}, {Key: "f"}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			err := validateRecycleRule(r)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidRecycleRule)) {
				t.Fatalf("validateRecycleRule = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestRecycleRuleIDs(t *testing.T) {
	for range 100 {
		if id := newRecycleRuleID(); !ValidRecycleRuleID(id) {
			t.Fatalf("drawn ID %q is not valid", id)
		}
	}
	for _, id := range []string{"", "abc", "a1234567890b", "a123456789-", "../../../.."} {
		if ValidRecycleRuleID(id) {
			t.Errorf("ValidRecycleRuleID(%q) = true", id)
		}
	}
}

// TestRecycleRulesDurable: rules survive a restart; update and delete
// change them; an unknown ID is ErrRecycleRuleNotFound.
func TestRecycleRulesDurable(t *testing.T) {
	dir := t.TempDir()
	eng, err := Open(Options{DataDir: dir, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, err := eng.CreateRecycleRule(ctx, RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 3,
		RetentionUnit: RetentionUnitDays, Description: "keep", ResourceTags: []RecycleRuleTag{{Key: "k", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CreateRecycleRule(ctx, RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 0,
		RetentionUnit: RetentionUnitDays}); !errors.Is(err, ErrInvalidRecycleRule) {
		t.Fatalf("zero retention: %v", err)
	}
	eng.Close()
	if eng, err = Open(Options{DataDir: dir, SyncInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	got, err := eng.GetRecycleRule(ctx, r.ID)
	if err != nil || got.Description != "keep" || got.RetentionValue != 3 || len(got.ResourceTags) != 1 {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
	days, desc := 9, "longer"
	if got, err = eng.UpdateRecycleRule(ctx, RecycleRuleUpdate{ID: r.ID, RetentionValue: &days, Description: &desc}); err != nil ||
		got.RetentionValue != 9 || got.Description != "longer" || len(got.ResourceTags) != 1 {
		t.Fatalf("UpdateRecycleRule = %+v, %v", got, err)
	}
	bad := 0
	if _, err := eng.UpdateRecycleRule(ctx, RecycleRuleUpdate{ID: r.ID, RetentionValue: &bad}); !errors.Is(err, ErrInvalidRecycleRule) {
		t.Fatalf("update to zero days: %v", err)
	}
	if err := eng.DeleteRecycleRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{eng.DeleteRecycleRule(ctx, r.ID), func() error { _, err := eng.GetRecycleRule(ctx, r.ID); return err }()} {
		if !errors.Is(err, ErrRecycleRuleNotFound) {
			t.Fatalf("a deleted rule: %v", err)
		}
	}
	if rules, _ := eng.RecycleRules(ctx); len(rules) != 0 {
		t.Fatalf("rules left: %+v", rules)
	}
}
