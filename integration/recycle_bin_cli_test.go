package integration

import (
	"strings"
	"testing"
	"time"
)

// TestRecycleBinCLI: the same session with cowvol's own verbs (as aws rbin
// and aws ec2 take them): create, get, update, list and delete a rule; a
// snapshot the rule matches is deleted, listed in the bin, restored and
// described again; bad input is a plain message and changes nothing.
func TestRecycleBinCLI(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	var rule struct {
		Identifier      string
		Status          string
		RetentionPeriod struct{ RetentionPeriodValue int }
		ResourceTags    []struct{ ResourceTagKey, ResourceTagValue string }
	}
	var snap snapshot

	step(t, "rbin create-rule, get-rule, update-rule, list-rules", func(t *testing.T) {
		d.mustJSON(t, d.mustCLI(t, "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT",
			"--retention-period", "RetentionPeriodValue=7,RetentionPeriodUnit=DAYS",
			"--resource-tags", "ResourceTagKey=backup,ResourceTagValue=yes", "--description", "backups"), &rule)
		if len(rule.Identifier) != 11 || rule.Status != "available" || rule.RetentionPeriod.RetentionPeriodValue != 7 ||
			len(rule.ResourceTags) != 1 || rule.ResourceTags[0].ResourceTagValue != "yes" {
			t.Fatalf("create-rule printed %+v", rule)
		}
		d.mustJSON(t, d.mustCLI(t, "rbin", "update-rule", "--identifier", rule.Identifier,
			"--retention-period", `{"RetentionPeriodValue":14,"RetentionPeriodUnit":"DAYS"}`), &rule)
		if rule.RetentionPeriod.RetentionPeriodValue != 14 || len(rule.ResourceTags) != 1 {
			t.Fatalf("update-rule printed %+v", rule)
		}
		if got := d.mustCLI(t, "rbin", "get-rule", "--identifier", rule.Identifier, "--query", "Description", "--output", "text"); strings.TrimSpace(got) != "backups" {
			t.Fatalf("get-rule --query Description: %q", got)
		}
		if got := d.mustCLI(t, "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT", "--query", "Rules[*].Identifier", "--output", "text"); strings.TrimSpace(got) != rule.Identifier {
			t.Fatalf("list-rules: %q", got)
		}
	})

	step(t, "bad input: a plain message, nothing changed", func(t *testing.T) {
		for _, args := range [][]string{
			{"rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT", "--retention-period", "RetentionPeriodValue=0,RetentionPeriodUnit=DAYS"},
			{"rbin", "get-rule", "--identifier", "abcdefghijk"},
			{"restore-snapshot-from-recycle-bin", "--snapshot-id", "snap-0123456789abcdef0"},
		} {
			_, stderr, code := d.cli(t, args...)
			if code == 0 || stderr == "" || strings.Contains(stderr, "panic") {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
		}
		if n := strings.Count(d.mustCLI(t, "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT"), `"Identifier"`); n != 1 {
			t.Fatalf("%d rules after the refused calls, want 1", n)
		}
	})

	step(t, "delete-snapshot sends it to the bin; restore brings it back", func(t *testing.T) {
		vol := d.createVolume(t, "16MiB")
		fillVolume(t, d.volumePath(vol.VolumeId), 9, 4<<20)
		snap = d.createSnapshot(t, vol.VolumeId, "--tag", "backup=yes")
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
		if got := d.describeSnapshots(t); len(got) != 0 {
			t.Fatalf("describe-snapshots after the deletion: %+v", got)
		}
		var bin struct {
			Snapshots []struct{ SnapshotId, VolumeId, RecycleBinEnterTime, RecycleBinExitTime string }
		}
		d.mustJSON(t, d.mustCLI(t, "list-snapshots-in-recycle-bin"), &bin)
		if len(bin.Snapshots) != 1 || bin.Snapshots[0].SnapshotId != snap.SnapshotId || bin.Snapshots[0].VolumeId != vol.VolumeId ||
			bin.Snapshots[0].RecycleBinExitTime <= bin.Snapshots[0].RecycleBinEnterTime {
			t.Fatalf("list-snapshots-in-recycle-bin: %+v", bin)
		}
		var restored struct{ SnapshotId, State string }
		d.mustJSON(t, d.mustCLI(t, "restore-snapshot-from-recycle-bin", "--snapshot-id", snap.SnapshotId), &restored)
		if restored.SnapshotId != snap.SnapshotId || restored.State != "completed" {
			t.Fatalf("restore-snapshot-from-recycle-bin printed %+v", restored)
		}
		if got := d.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId); len(got) != 1 || got[0].State != "completed" {
			t.Fatalf("describe-snapshots of the restored snapshot: %+v", got)
		}
	})

	step(t, "rbin delete-rule: the next deletion is for good", func(t *testing.T) {
		d.mustCLI(t, "rbin", "delete-rule", "--identifier", rule.Identifier)
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
		if out := d.mustCLI(t, "list-snapshots-in-recycle-bin"); strings.Contains(out, snap.SnapshotId) {
			t.Fatalf("deleted without a rule, yet in the bin: %s", out)
		}
	})
}

// TestRecycleBinWithTheAWSCLI: the aws CLI itself, on --listen with SigV4
// (services rbin and ec2): create-rule, list-rules, get-rule, a tagged
// snapshot deleted, listed in the bin, restored; an unknown rule is
// ResourceNotFoundException; a locked rule refuses deletion, before and
// after unlock-rule.
func TestRecycleBinWithTheAWSCLI(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	var rule struct{ Identifier, Status string }
	a.mustJSON(t, &rule, "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT",
		"--retention-period", "RetentionPeriodValue=3,RetentionPeriodUnit=DAYS",
		"--resource-tags", "ResourceTagKey=backup,ResourceTagValue=yes")
	if len(rule.Identifier) != 11 || rule.Status != "available" {
		t.Fatalf("aws rbin create-rule: %+v", rule)
	}
	var list struct{ Rules []struct{ Identifier string } }
	a.mustJSON(t, &list, "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT")
	if len(list.Rules) != 1 || list.Rules[0].Identifier != rule.Identifier {
		t.Fatalf("aws rbin list-rules: %+v", list)
	}
	a.mustJSON(t, nil, "rbin", "get-rule", "--identifier", rule.Identifier)
	a.mustFail(t, "ResourceNotFoundException", "rbin", "get-rule", "--identifier", "abcdefghijk")

	// The rule's own tags: aws rbin tag-resource, cowvol rbin
	// list-tags-for-resource and untag-resource on the rule's ARN.
	var full struct{ RuleArn string }
	d.mustJSON(t, d.mustCLI(t, "rbin", "get-rule", "--identifier", rule.Identifier), &full) // Debian's aws CLI 2.9 does not print RuleArn
	a.mustJSON(t, nil, "rbin", "tag-resource", "--resource-arn", full.RuleArn, "--tags", "Key=team,Value=storage", "Key=env,Value=prod")
	var tags struct{ Tags []struct{ Key, Value string } }
	d.mustJSON(t, d.mustCLI(t, "rbin", "list-tags-for-resource", "--resource-arn", full.RuleArn), &tags)
	if len(tags.Tags) != 2 || tags.Tags[0].Key != "team" || tags.Tags[1].Value != "prod" {
		t.Fatalf("cowvol rbin list-tags-for-resource after aws rbin tag-resource: %+v", tags)
	}
	if out := d.mustCLI(t, "rbin", "untag-resource", "--resource-arn", full.RuleArn, "--tag-keys", "team"); out != "" {
		t.Fatalf("untag printed %q", out)
	}
	tags.Tags = nil
	a.mustJSON(t, &tags, "rbin", "list-tags-for-resource", "--resource-arn", full.RuleArn)
	if len(tags.Tags) != 1 || tags.Tags[0].Key != "env" {
		t.Fatalf("aws rbin list-tags-for-resource after the untag: %+v", tags)
	}
	a.mustFail(t, "ValidationException", "rbin", "tag-resource", "--resource-arn", full.RuleArn, "--tags", "Key=aws:x,Value=y")

	vol := d.createVolume(t, "16MiB")
	fillVolume(t, d.volumePath(vol.VolumeId), 11, 1<<20)
	snap := d.createSnapshot(t, vol.VolumeId, "--tag", "backup=yes").SnapshotId
	d.waitSnapshotCompleted(t, snap)
	a.mustJSON(t, nil, "ec2", "delete-snapshot", "--snapshot-id", snap)
	var bin struct{ Snapshots []struct{ SnapshotId string } }
	a.mustJSON(t, &bin, "ec2", "list-snapshots-in-recycle-bin")
	if len(bin.Snapshots) != 1 || bin.Snapshots[0].SnapshotId != snap {
		t.Fatalf("aws ec2 list-snapshots-in-recycle-bin: %+v", bin)
	}
	var restored struct{ SnapshotId, State string }
	a.mustJSON(t, &restored, "ec2", "restore-snapshot-from-recycle-bin", "--snapshot-id", snap)
	if restored.SnapshotId != snap || restored.State != "completed" {
		t.Fatalf("aws ec2 restore-snapshot-from-recycle-bin: %+v", restored)
	}
	a.mustJSON(t, nil, "rbin", "delete-rule", "--identifier", rule.Identifier)

	// Rule locks, as AWS's: a Region-level rule created locked refuses
	// update-rule and delete-rule; unlock-rule starts its unlock delay (7
	// DAYS), during which it still refuses; cowvol rbin sees the same.
	var locked struct{ Identifier, LockState string }
	a.mustJSON(t, &locked, "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT",
		"--retention-period", "RetentionPeriodValue=1,RetentionPeriodUnit=DAYS",
		"--lock-configuration", "UnlockDelay={UnlockDelayValue=7,UnlockDelayUnit=DAYS}")
	if locked.LockState != "locked" {
		t.Fatalf("aws rbin create-rule --lock-configuration: %+v", locked)
	}
	a.mustFail(t, "ConflictException", "rbin", "delete-rule", "--identifier", locked.Identifier)
	a.mustFail(t, "ConflictException", "rbin", "update-rule", "--identifier", locked.Identifier, "--description", "changed")
	a.mustFail(t, "ValidationException", "rbin", "lock-rule", "--identifier", locked.Identifier,
		"--lock-configuration", "UnlockDelay={UnlockDelayValue=31,UnlockDelayUnit=DAYS}")
	var unlocking struct{ LockState, LockEndTime string }
	before := time.Now()
	a.mustJSON(t, &unlocking, "rbin", "unlock-rule", "--identifier", locked.Identifier)
	end, err := time.Parse(time.RFC3339, unlocking.LockEndTime)
	if err != nil || unlocking.LockState != "pending_unlock" || end.Before(before.Add(7*24*time.Hour-time.Second)) || end.After(time.Now().Add(7*24*time.Hour)) {
		t.Fatalf("aws rbin unlock-rule: %+v (%v)", unlocking, err)
	}
	a.mustFail(t, "ConflictException", "rbin", "delete-rule", "--identifier", locked.Identifier)
	list.Rules = nil
	a.mustJSON(t, &list, "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT", "--lock-state", "pending_unlock")
	if len(list.Rules) != 1 || list.Rules[0].Identifier != locked.Identifier {
		t.Fatalf("aws rbin list-rules --lock-state pending_unlock: %+v", list)
	}
	var seen struct{ LockState, LockEndTime string }
	d.mustJSON(t, d.mustCLI(t, "rbin", "get-rule", "--identifier", locked.Identifier), &seen)
	if got, err := time.Parse(time.RFC3339, seen.LockEndTime); err != nil || seen.LockState != "pending_unlock" || !got.Equal(end) {
		t.Fatalf("cowvol rbin get-rule of the rule pending unlock: %+v (%v), want LockEndTime %v", seen, err, end)
	}
}
