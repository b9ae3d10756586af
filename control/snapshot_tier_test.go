package control

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestSnapshotTierRequests: the archive-tier actions' bad input gets EC2's
// codes and leaves the snapshot standard; an archival through the client
// shows in DescribeSnapshotTierStatus and DescribeSnapshots.
func TestSnapshotTierRequests(t *testing.T) {
	arc, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, cow.Options{ArchiveStore: arc, CatalogInterval: 20 * time.Millisecond}, Options{})
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	snap, err := env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol.VolumeID})
	if err != nil {
		t.Fatal(err)
	}
	for si, _ := env.engine.SnapshotInfo(snap.SnapshotID); si.State != cow.SnapshotCompleted; si, _ = env.engine.SnapshotInfo(snap.SnapshotID) {
		time.Sleep(5 * time.Millisecond)
	}
	id := snap.SnapshotID
	for _, tc := range []struct {
		name, body, code string
	}{
		{"modify: no snapshot", "Action=ModifySnapshotTier&StorageTier=archive", CodeMissingParameter},
		{"modify: malformed", "Action=ModifySnapshotTier&SnapshotId=snap-x&StorageTier=archive", CodeInvalidSnapshotIDMalformed},
		{"modify: unknown snapshot", "Action=ModifySnapshotTier&SnapshotId=snap-0123456789abcdef0", CodeInvalidSnapshotNotFound},
		{"modify: tier standard", "Action=ModifySnapshotTier&SnapshotId=" + id + "&StorageTier=standard", CodeInvalidParameterValue},
		{"modify: unknown parameter", "Action=ModifySnapshotTier&SnapshotId=" + id + "&Tier=archive", CodeUnknownParameter},
		{"modify: dry run", "Action=ModifySnapshotTier&SnapshotId=" + id + "&DryRun=true", CodeDryRunOperation},
		{"restore: standard snapshot", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&TemporaryRestoreDays=2", CodeIncorrectState},
		{"restore: neither", "Action=RestoreSnapshotTier&SnapshotId=" + id, CodeMissingParameter},
		{"restore: both", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&TemporaryRestoreDays=2&PermanentRestore=true", CodeInvalidParameterCombination},
		{"restore: 0 days", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&TemporaryRestoreDays=0", CodeInvalidParameterValue},
		{"restore: 181 days", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&TemporaryRestoreDays=181", CodeInvalidParameterValue},
		{"restore: days not a number", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&TemporaryRestoreDays=two", CodeInvalidParameterValue},
		{"restore: permanent not a boolean", "Action=RestoreSnapshotTier&SnapshotId=" + id + "&PermanentRestore=yes", CodeInvalidParameterValue},
		{"status: bad filter", "Action=DescribeSnapshotTierStatus&Filter.1.Name=color&Filter.1.Value.1=red", CodeInvalidParameterValue},
		{"status: snapshot IDs", "Action=DescribeSnapshotTierStatus&SnapshotId.1=" + id, CodeUnknownParameter},
	} {
		_, _, body := env.post(t, tc.body+v)
		if !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %s, want %s", tc.name, body, tc.code)
		}
	}
	out, err := env.client.DescribeSnapshotTierStatus(ctx, DescribeSnapshotTierStatusInput{})
	if err != nil || len(out.Items) != 1 || out.Items[0].StorageTier != "standard" || out.Items[0].LastTieringOperationStatus != "" {
		t.Fatalf("after refused requests: %+v, %v", out, err)
	}

	if _, err := env.client.ModifySnapshotTier(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	filter := []Filter{{Name: "last-tiering-operation", Values: []string{"archival-completed"}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err = env.client.DescribeSnapshotTierStatus(ctx, DescribeSnapshotTierStatusInput{Filters: filter})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no archival-completed in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	it := out.Items[0]
	if it.SnapshotID != id || it.StorageTier != "archive" || it.ArchivalCompleteTime == nil || it.LastTieringStartTime == nil ||
		it.LastTieringProgress == nil || *it.LastTieringProgress != 100 || it.Status != "completed" {
		t.Fatalf("tier status %+v", it)
	}
	snaps, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{Filters: []Filter{{Name: "storage-tier", Values: []string{"archive"}}}})
	if err != nil || len(snaps.Snapshots) != 1 || snaps.Snapshots[0].SnapshotID != id {
		t.Fatalf("DescribeSnapshots storage-tier=archive: %+v, %v", snaps, err)
	}
	_, err = env.client.CreateVolume(ctx, CreateVolumeInput{SnapshotID: id})
	if !isCode(err, CodeIncorrectState) {
		t.Fatalf("CreateVolume from an archived snapshot: %v, want %s", err, CodeIncorrectState)
	}
}
