package integration

import (
	"path/filepath"
	"testing"
	"time"
)

// TestAWSCLIArchiveTier: the aws CLI's modify-snapshot-tier,
// describe-snapshot-tier-status and restore-snapshot-tier against the
// daemon's --listen endpoint, as a user types them.
func TestAWSCLIArchiveTier(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID,
		"--archive-store", "file://"+filepath.Join(t.TempDir(), "archive")))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	var v struct{ VolumeId string }
	a.mustJSON(t, &v, "ec2", "create-volume", "--size", "1", "--availability-zone", "us-east-1a")
	var s struct{ SnapshotId string }
	a.mustJSON(t, &s, "ec2", "create-snapshot", "--volume-id", v.VolumeId)
	d.waitSnapshotCompleted(t, s.SnapshotId)

	a.mustFail(t, "IncorrectState", "ec2", "restore-snapshot-tier", "--snapshot-id", s.SnapshotId, "--temporary-restore-days", "1")
	a.mustFail(t, "InvalidParameterCombination", "ec2", "restore-snapshot-tier", "--snapshot-id", s.SnapshotId,
		"--temporary-restore-days", "1", "--permanent-restore")
	var mod struct{ SnapshotId, TieringStartTime string }
	a.mustJSON(t, &mod, "ec2", "modify-snapshot-tier", "--snapshot-id", s.SnapshotId, "--storage-tier", "archive")
	if mod.SnapshotId != s.SnapshotId || mod.TieringStartTime == "" {
		t.Fatalf("modify-snapshot-tier printed %+v", mod)
	}
	awsWaitTier(t, a, s.SnapshotId, "archival-completed")
	var snaps struct {
		Snapshots []struct{ StorageTier string }
	}
	a.mustJSON(t, &snaps, "ec2", "describe-snapshots", "--snapshot-ids", s.SnapshotId)
	if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].StorageTier != "archive" {
		t.Fatalf("describe-snapshots: %+v", snaps)
	}
	a.mustFail(t, "IncorrectState", "ec2", "create-volume", "--snapshot-id", s.SnapshotId, "--availability-zone", "us-east-1a")
	var res struct {
		SnapshotId         string
		IsPermanentRestore bool
	}
	a.mustJSON(t, &res, "ec2", "restore-snapshot-tier", "--snapshot-id", s.SnapshotId, "--permanent-restore")
	if res.SnapshotId != s.SnapshotId || !res.IsPermanentRestore {
		t.Fatalf("restore-snapshot-tier printed %+v", res)
	}
	awsWaitTier(t, a, s.SnapshotId, "permanent-restore-completed")
	a.mustJSON(t, nil, "ec2", "create-volume", "--snapshot-id", s.SnapshotId, "--availability-zone", "us-east-1a")
}

// awsWaitTier polls aws ec2 describe-snapshot-tier-status until the
// snapshot's last tiering operation has status want.
func awsWaitTier(t *testing.T, a *awsCLI, id, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var out struct {
			SnapshotTierStatuses []struct {
				SnapshotId, StorageTier, LastTieringOperationStatus string
			}
		}
		a.mustJSON(t, &out, "ec2", "describe-snapshot-tier-status", "--filters", "Name=snapshot-id,Values="+id)
		if len(out.SnapshotTierStatuses) != 1 {
			t.Fatalf("describe-snapshot-tier-status: %+v", out)
		}
		if out.SnapshotTierStatuses[0].LastTieringOperationStatus == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v, want %s", id, out.SnapshotTierStatuses[0], want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
