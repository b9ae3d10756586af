package cow

import (
	"errors"
	"testing"
	"time"
)

func TestRecycleRuleLockState(t *testing.T) {
	now := time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		lock  *RecycleRuleLock
		state string
		end   time.Time
	}{
		{"never locked", nil, RuleUnlocked, time.Time{}},
		{"locked", &RecycleRuleLock{State: RuleLocked, UnlockDelayValue: 7}, RuleLocked, time.Time{}},
		{"pending unlock", &RecycleRuleLock{State: RulePendingUnlock, UnlockAt: later}, RulePendingUnlock, later},
		{"delay ends now", &RecycleRuleLock{State: RulePendingUnlock, UnlockAt: now}, RuleUnlocked, time.Time{}},
		{"delay ended", &RecycleRuleLock{State: RulePendingUnlock, UnlockAt: now.Add(-time.Second)}, RuleUnlocked, time.Time{}},
		{"unlocked", &RecycleRuleLock{State: RuleUnlocked, UnlockDelayValue: 7}, RuleUnlocked, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, end := RecycleRuleLockState(RecycleRule{Lock: tc.lock}, now)
			if state != tc.state || !end.Equal(tc.end) {
				t.Fatalf("RecycleRuleLockState = %s, %v; want %s, %v", state, end, tc.state, tc.end)
			}
		})
	}
}

func TestNewRecycleRuleLock(t *testing.T) {
	for _, tc := range []struct {
		value int
		unit  string
		ok    bool
	}{
		{7, "DAYS", true}, {30, "DAYS", true}, {6, "DAYS", false}, {31, "DAYS", false}, {0, "DAYS", false},
		{10, "HOURS", false}, {10, "", false},
	} {
		l, err := NewRecycleRuleLock(tc.value, tc.unit)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidRecycleRule)) || (err == nil && l.State != RuleLocked) {
			t.Errorf("NewRecycleRuleLock(%d, %q) = %+v, %v; want ok %v", tc.value, tc.unit, l, err, tc.ok)
		}
	}
}

// TestRecycleRuleLockDurable: a locked rule refuses updates and deletion
// but not new tags of its own; the lock, and the unlock delay's end,
// survive a restart; a rule pending unlock refuses as a locked one does
// and can be locked again with its delay only; tag-level rules cannot be
// locked.
func TestRecycleRuleLockDurable(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: dir, SyncInterval: time.Hour, RecycleBinDay: time.Hour}
	eng, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := NewRecycleRuleLock(7, UnlockDelayUnitDays)
	if err != nil {
		t.Fatal(err)
	}
	all := RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 3, RetentionUnit: RetentionUnitDays, Lock: lock}
	tagged := all
	tagged.ResourceTags = []RecycleRuleTag{{Key: "k"}}
	if _, err := eng.CreateRecycleRule(ctx, tagged); !errors.Is(err, ErrInvalidRecycleRule) {
		t.Fatalf("a locked tag-level rule created: %v", err)
	}
	r, err := eng.CreateRecycleRule(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	tagged.Lock = nil
	tr, err := eng.CreateRecycleRule(ctx, tagged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.LockRecycleRule(ctx, tr.ID, 7, UnlockDelayUnitDays); !errors.Is(err, ErrRecycleRuleLockConflict) {
		t.Fatalf("LockRecycleRule of a tag-level rule: %v", err)
	}
	refused := func(when string) {
		t.Helper()
		days := 9
		if _, err := eng.UpdateRecycleRule(ctx, RecycleRuleUpdate{ID: r.ID, RetentionValue: &days}); !errors.Is(err, ErrRecycleRuleLockConflict) {
			t.Fatalf("%s: UpdateRecycleRule = %v", when, err)
		}
		if err := eng.DeleteRecycleRule(ctx, r.ID); !errors.Is(err, ErrRecycleRuleLockConflict) {
			t.Fatalf("%s: DeleteRecycleRule = %v", when, err)
		}
	}
	refused("locked")
	if _, err := eng.RetagRecycleRule(ctx, r.ID, []RecycleRuleTag{{Key: "team", Value: "db"}}, nil); err != nil {
		t.Fatalf("tagging a locked rule: %v", err)
	}
	if _, err := eng.LockRecycleRule(ctx, r.ID, 7, UnlockDelayUnitDays); !errors.Is(err, ErrRecycleRuleLockConflict) {
		t.Fatalf("locking a locked rule: %v", err)
	}
	eng.Close()
	if eng, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	defer func() { eng.Close() }()
	refused("locked, after a restart")
	before := time.Now()
	u, err := eng.UnlockRecycleRule(ctx, r.ID)
	state, end := RecycleRuleLockState(u, time.Now())
	if err != nil || state != RulePendingUnlock || end.Before(before.Add(7*time.Hour)) || end.After(time.Now().Add(7*time.Hour)) {
		t.Fatalf("UnlockRecycleRule = %s until %v, %v", state, end, err)
	}
	if _, err := eng.UnlockRecycleRule(ctx, r.ID); !errors.Is(err, ErrRecycleRuleLockConflict) {
		t.Fatalf("unlocking a rule pending unlock: %v", err)
	}
	eng.Close()
	if eng, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	got, err := eng.GetRecycleRule(ctx, r.ID)
	if s, e := RecycleRuleLockState(got, time.Now()); err != nil || s != RulePendingUnlock || !e.Equal(end) || len(got.Tags) != 1 {
		t.Fatalf("after a restart: %+v (%s until %v), %v", got, s, e, err)
	}
	refused("pending unlock")
	if _, err := eng.LockRecycleRule(ctx, r.ID, 8, UnlockDelayUnitDays); !errors.Is(err, ErrRecycleRuleLockConflict) {
		t.Fatalf("another unlock delay while pending unlock: %v", err)
	}
	if got, err = eng.LockRecycleRule(ctx, r.ID, 7, UnlockDelayUnitDays); err != nil || got.Lock.State != RuleLocked || !got.Lock.UnlockAt.IsZero() {
		t.Fatalf("locking again while pending unlock: %+v, %v", got.Lock, err)
	}
	refused("locked again")
}

// TestRecycleRuleUnlockDelayEnds: once the unlock delay is over (a DAY is
// 20ms here), the rule is unlocked: it can be updated (even to a
// tag-level rule) and deleted; it never goes back to "never locked".
func TestRecycleRuleUnlockDelayEnds(t *testing.T) {
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, RecycleBinDay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r, err := eng.CreateRecycleRule(ctx, RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: 3, RetentionUnit: RetentionUnitDays})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = eng.LockRecycleRule(ctx, r.ID, 7, UnlockDelayUnitDays); err != nil {
		t.Fatal(err)
	}
	if r, err = eng.UnlockRecycleRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(r.Lock.UnlockAt)) // the delay itself, not an ordering of steps
	if s, _ := RecycleRuleLockState(r, time.Now()); s != RuleUnlocked {
		t.Fatalf("after the delay: %s", s)
	}
	days := 9
	if r, err = eng.UpdateRecycleRule(ctx, RecycleRuleUpdate{ID: r.ID, RetentionValue: &days, ResourceTags: &[]RecycleRuleTag{{Key: "k"}}}); err != nil ||
		r.RetentionValue != 9 || r.Lock == nil {
		t.Fatalf("UpdateRecycleRule after the delay = %+v, %v", r, err)
	}
	if err := eng.DeleteRecycleRule(ctx, r.ID); err != nil {
		t.Fatalf("DeleteRecycleRule after the delay: %v", err)
	}
}
