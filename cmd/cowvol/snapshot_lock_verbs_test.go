package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestSnapshotLockVerbs: lock-snapshot, describe-locked-snapshots and
// unlock-snapshot print what the aws CLI prints; bad command lines and
// refused requests exit 252 and 254 with a plain message.
func TestSnapshotLockVerbs(t *testing.T) {
	sock := startDaemon(t)
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)
	var snap struct{ SnapshotId string }
	out, _, code := run(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--wait")
	if err := json.Unmarshal([]byte(out), &snap); err != nil || code != 0 {
		t.Fatalf("create-snapshot --wait: exit %d, %v", code, err)
	}
	id := snap.SnapshotId

	var lock map[string]any
	out = runOK(t, "--socket", sock, "lock-snapshot", "--snapshot-id", id, "--lock-mode", "compliance", "--lock-duration", "7", "--cool-off-period", "2")
	if err := json.Unmarshal([]byte(out), &lock); err != nil {
		t.Fatalf("lock-snapshot: %v\n%s", err, out)
	}
	want := []string{"CoolOffPeriod", "CoolOffPeriodExpiresOn", "LockCreatedOn", "LockDuration", "LockDurationStartTime",
		"LockExpiresOn", "LockState", "SnapshotId"}
	if got := keys(lock); !reflect.DeepEqual(got, want) || lock["LockState"] != "compliance-cooloff" || lock["LockDuration"] != 7.0 {
		t.Errorf("lock-snapshot printed %v", lock)
	}

	var locked struct{ Snapshots []map[string]any }
	out = runOK(t, "--socket", sock, "describe-locked-snapshots", "--filters", "Name=lock-state,Values=compliance-cooloff")
	if err := json.Unmarshal([]byte(out), &locked); err != nil || len(locked.Snapshots) != 1 ||
		locked.Snapshots[0]["SnapshotId"] != id || locked.Snapshots[0]["OwnerId"] != "000000000000" {
		t.Fatalf("describe-locked-snapshots: %v\n%s", err, out)
	}
	out = runOK(t, "--socket", sock, "describe-locked-snapshots", "--filter", "lock-state=governance")
	if err := json.Unmarshal([]byte(out), &locked); err != nil || len(locked.Snapshots) != 0 {
		t.Fatalf("describe-locked-snapshots lock-state=governance: %v\n%s", err, out)
	}

	runCases(t, sock, []cliCase{
		{[]string{"lock-snapshot", "--lock-mode", "governance", "--lock-duration", "1"}, exitUsage, "--snapshot-id is required"},
		{[]string{"lock-snapshot", "--snapshot-id", id, "--lock-duration", "1"}, exitUsage, "--lock-mode"},
		{[]string{"lock-snapshot", "--snapshot-id", id, "--lock-mode", "governance", "--expiration-date", "soon"}, exitUsage, "--expiration-date"},
		{[]string{"lock-snapshot", "--snapshot-id", id, "--lock-mode", "governance", "--lock-duration", "1", "--cool-off-period", "1"},
			exitAPIError, "(InvalidParameterCombination)"},
		{[]string{"unlock-snapshot"}, exitUsage, "--snapshot-id is required"},
		{[]string{"delete-snapshot", "--snapshot-id", id}, exitAPIError, "(SnapshotLocked)"},
	})

	var unlocked map[string]any
	out = runOK(t, "--socket", sock, "unlock-snapshot", "--snapshot-id", id)
	if err := json.Unmarshal([]byte(out), &unlocked); err != nil || !reflect.DeepEqual(unlocked, map[string]any{"SnapshotId": id}) {
		t.Errorf("unlock-snapshot printed %s (%v)", out, err)
	}
	runOK(t, "--socket", sock, "delete-snapshot", "--snapshot-id", id)
}
