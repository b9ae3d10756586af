package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cowvol/cowvol/control"
)

func TestParseLockConfig(t *testing.T) {
	for _, tc := range []struct {
		in      string
		days    int
		unit    string
		wantErr bool
	}{
		{"UnlockDelay={UnlockDelayValue=7,UnlockDelayUnit=DAYS}", 7, "DAYS", false},
		{"UnlockDelay={UnlockDelayUnit=DAYS,UnlockDelayValue=30}", 30, "DAYS", false},
		{`{"UnlockDelay":{"UnlockDelayValue":10,"UnlockDelayUnit":"DAYS"}}`, 10, "DAYS", false},
		{"UnlockDelayValue=7,UnlockDelayUnit=DAYS", 0, "", true},
		{"UnlockDelay={UnlockDelayValue=seven,UnlockDelayUnit=DAYS}", 0, "", true},
		{"UnlockDelay={Days=7}", 0, "", true},
		{`{"UnlockDelay":{}}`, 0, "", true},
	} {
		got, err := parseLockConfig(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseLockConfig(%q) = %+v, %v; want error %v", tc.in, got, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (*got.UnlockDelay.UnlockDelayValue != tc.days || got.UnlockDelay.UnlockDelayUnit != tc.unit) {
			t.Errorf("parseLockConfig(%q) = %d %s, want %d %s", tc.in, *got.UnlockDelay.UnlockDelayValue, got.UnlockDelay.UnlockDelayUnit, tc.days, tc.unit)
		}
	}
}

// TestRuleLockVerbs: create-rule --lock-configuration, lock-rule and
// unlock-rule print the rule as aws rbin does (LockEndTime in ISO 8601);
// delete-rule and update-rule of a locked rule exit 254 with
// ConflictException; bad command lines exit 252.
func TestRuleLockVerbs(t *testing.T) {
	sock := startDaemon(t)
	var rule struct {
		Identifier        string
		LockState         string
		LockEndTime       string
		LockConfiguration control.LockConfiguration
	}
	out := runOK(t, "--socket", sock, "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT",
		"--retention-period", "RetentionPeriodValue=7,RetentionPeriodUnit=DAYS", "--lock-configuration", "UnlockDelay={UnlockDelayValue=7,UnlockDelayUnit=DAYS}")
	if err := json.Unmarshal([]byte(out), &rule); err != nil || rule.LockState != "locked" || *rule.LockConfiguration.UnlockDelay.UnlockDelayValue != 7 {
		t.Fatalf("create-rule --lock-configuration: %v\n%s", err, out)
	}
	id := rule.Identifier
	runCases(t, sock, []cliCase{
		{[]string{"rbin", "delete-rule", "--identifier", id}, exitAPIError, "(ConflictException)"},
		{[]string{"rbin", "update-rule", "--identifier", id, "--description", "x"}, exitAPIError, "(ConflictException)"},
		{[]string{"rbin", "lock-rule", "--identifier", id}, exitUsage, "--lock-configuration are required"},
		{[]string{"rbin", "lock-rule", "--identifier", id, "--lock-configuration", "UnlockDelay={UnlockDelayValue=5,UnlockDelayUnit=DAYS}"},
			exitAPIError, "(ValidationException)"},
		{[]string{"rbin", "unlock-rule"}, exitUsage, "--identifier is required"},
	})
	before := time.Now()
	out = runOK(t, "--socket", sock, "rbin", "unlock-rule", "--identifier", id)
	if err := json.Unmarshal([]byte(out), &rule); err != nil || rule.LockState != "pending_unlock" {
		t.Fatalf("unlock-rule: %v\n%s", err, out)
	}
	end, err := time.Parse("2006-01-02T15:04:05.000000-07:00", rule.LockEndTime)
	if err != nil || end.Before(before.Add(7*24*time.Hour-time.Second)) || end.After(time.Now().Add(7*24*time.Hour)) {
		t.Fatalf("unlock-rule LockEndTime %q (%v)", rule.LockEndTime, err)
	}
	runCases(t, sock, []cliCase{{[]string{"rbin", "delete-rule", "--identifier", id}, exitAPIError, "(ConflictException)"}})
	out = runOK(t, "--socket", sock, "rbin", "lock-rule", "--identifier", id, "--lock-configuration", `{"UnlockDelay":{"UnlockDelayValue":7,"UnlockDelayUnit":"DAYS"}}`)
	rule.LockEndTime = ""
	if err := json.Unmarshal([]byte(out), &rule); err != nil || rule.LockState != "locked" || rule.LockEndTime != "" {
		t.Fatalf("lock-rule: %v\n%s", err, out)
	}
	var listed struct {
		Rules []struct{ Identifier, LockState string }
	}
	out = runOK(t, "--socket", sock, "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT", "--lock-state", "locked")
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Rules) != 1 || listed.Rules[0].Identifier != id {
		t.Fatalf("list-rules --lock-state locked: %v\n%s", err, out)
	}
}
