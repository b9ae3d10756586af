package integration

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// The archive tier, driven by the AWS SDK for Go v2's EC2 client against
// the daemon binary: archive (the standard store's copy of the data is
// freed), a temporary restore, its expiry back to the archive tier, and a
// permanent restore; after each restore a volume from the snapshot holds
// exactly the bytes snapshotted. A day of TemporaryRestoreDays is shortened
// with the daemon's hidden --tier-day.

// tierDay is the daemon's day in these tests: long enough to create a
// volume from a temporarily restored snapshot before it expires.
const tierDay = 20 * time.Second

// tierRegion is one region of the test volume that holds data.
type tierRegion struct {
	off  int64
	data []byte
}

func TestArchiveTierOnDirectoryStore(t *testing.T) {
	requirePrereqs(t)
	t.Parallel() // mostly waiting (grace periods, retention, schedules): with the other long waiters
	archive := "file://" + filepath.Join(t.TempDir(), "archive")
	d := startDaemon(t, withDaemonArgs("--archive-store", archive, "--tier-day", tierDay.String(), "--gc-grace", "1m"))
	std, err := snapstore.OpenDir(filepath.Join(d.DataDir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	archiveCycle(t, d, std)
}

func TestArchiveTierOnMinIO(t *testing.T) {
	requirePrereqs(t)
	// Not parallel: miniotest sets the process environment (t.Setenv).
	srv := miniotest.Start(t)
	stdURL := srv.URL("cowvol-tiers", "standard")
	d := startS3Daemon(t, srv, stdURL, "111111111111",
		"--archive-store", srv.URL("cowvol-tiers", "archive"), "--tier-day", tierDay.String(), "--gc-grace", "1m")
	std, err := snapstore.Open(context.Background(), stdURL)
	if err != nil {
		t.Fatal(err)
	}
	archiveCycle(t, d, std)
}

// archiveCycle runs the whole cycle on daemon d, whose standard store is std.
func archiveCycle(t *testing.T, d *daemon, std snapstore.Store) {
	c := sdkClient(d)
	var snapID string
	var want []tierRegion
	step(t, "a volume with data, snapshotted; the volume deleted, so only the snapshot holds the data", func(t *testing.T) {
		vol, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZone: aws.String("us-east-1a")})
		if err != nil {
			t.Fatal(err)
		}
		volID := aws.ToString(vol.VolumeId)
		want = writeRegions(t, d.volumePath(volID), 41)
		snap, err := c.CreateSnapshot(sdkCtx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String(volID)})
		if err != nil {
			t.Fatal(err)
		}
		snapID = aws.ToString(snap.SnapshotId)
		d.waitSnapshotCompleted(t, snapID)
		if _, err := c.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(volID)}); err != nil {
			t.Fatal(err)
		}
	})
	step(t, "bad input gets EC2's error codes and changes nothing", func(t *testing.T) {
		tierBadInput(t, c, snapID)
		if tier := snapshotTier(t, c, snapID); tier != types.StorageTierStandard {
			t.Fatalf("storage tier %q after refused requests, want standard", tier)
		}
	})
	step(t, "modify-snapshot-tier archive: archived, the standard store's data freed, volumes refused", func(t *testing.T) {
		out, err := c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String(snapID), StorageTier: types.TargetStorageTierArchive})
		if err != nil || aws.ToString(out.SnapshotId) != snapID || out.TieringStartTime == nil {
			t.Fatalf("ModifySnapshotTier = %+v, %v", out, err)
		}
		st := waitTierStatus(t, c, snapID, types.TieringOperationStatusArchivalCompleted)
		if st.ArchivalCompleteTime == nil || st.StorageTier != types.StorageTierArchive {
			t.Fatalf("tier status after archival: %+v", st)
		}
		if tier := snapshotTier(t, c, snapID); tier != types.StorageTierArchive {
			t.Fatalf("DescribeSnapshots: storage tier %q, want archive", tier)
		}
		_, err = c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String(snapID), StorageTier: types.TargetStorageTierArchive})
		requireAPIError(t, "ModifySnapshotTier of an archived snapshot", err, "IncorrectState")
		requireVolumeRefused(t, c, snapID)
		waitNoData(t, std)
	})
	step(t, "restore-snapshot-tier for a day: standard with an expiry, byte-exact", func(t *testing.T) {
		out, err := c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), TemporaryRestoreDays: aws.Int32(1)})
		if err != nil || aws.ToInt32(out.RestoreDuration) != 1 || aws.ToBool(out.IsPermanentRestore) {
			t.Fatalf("RestoreSnapshotTier = %+v, %v", out, err)
		}
		waitTierStatus(t, c, snapID, types.TieringOperationStatusTemporaryRestoreCompleted)
		requireVolumeMatches(t, c, d, snapID, want)
		s := describeSnapshot(t, c, snapID)
		if s.StorageTier != types.StorageTierStandard || s.RestoreExpiryTime == nil {
			t.Fatalf("temporarily restored: tier %q, expiry %v", s.StorageTier, s.RestoreExpiryTime)
		}
	})
	step(t, "the temporary restore expires: archived again, volumes refused", func(t *testing.T) {
		deadline := time.Now().Add(tierDay + 2*time.Minute)
		for snapshotTier(t, c, snapID) != types.StorageTierArchive {
			if time.Now().After(deadline) {
				t.Fatal("the temporary restore did not expire")
			}
			time.Sleep(time.Second)
		}
		requireVolumeRefused(t, c, snapID)
	})
	step(t, "restore-snapshot-tier permanently: standard for good, byte-exact", func(t *testing.T) {
		out, err := c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), PermanentRestore: aws.Bool(true)})
		if err != nil || !aws.ToBool(out.IsPermanentRestore) {
			t.Fatalf("RestoreSnapshotTier = %+v, %v", out, err)
		}
		waitTierStatus(t, c, snapID, types.TieringOperationStatusPermanentRestoreCompleted)
		s := describeSnapshot(t, c, snapID)
		if s.StorageTier != types.StorageTierStandard || s.RestoreExpiryTime != nil {
			t.Fatalf("permanently restored: tier %q, expiry %v", s.StorageTier, s.RestoreExpiryTime)
		}
		requireVolumeMatches(t, c, d, snapID, want)
		_, err = c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), PermanentRestore: aws.Bool(true)})
		requireAPIError(t, "RestoreSnapshotTier of a standard snapshot", err, "IncorrectState")
	})
}

// tierBadInput sends requests EC2 refuses.
func tierBadInput(t *testing.T, c *awsec2.Client, snapID string) {
	_, err := c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String(snapID), StorageTier: "standard"})
	requireAPIError(t, "ModifySnapshotTier to standard", err, "InvalidParameterValue")
	_, err = c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String("snap-0123456789abcdef0"), StorageTier: types.TargetStorageTierArchive})
	requireAPIError(t, "ModifySnapshotTier of a missing snapshot", err, "InvalidSnapshot.NotFound")
	_, err = c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String("snap-nope"), StorageTier: types.TargetStorageTierArchive})
	requireAPIError(t, "ModifySnapshotTier of a malformed ID", err, "InvalidSnapshotID.Malformed")
	_, err = c.ModifySnapshotTier(sdkCtx(t), &awsec2.ModifySnapshotTierInput{SnapshotId: aws.String(snapID), StorageTier: types.TargetStorageTierArchive, DryRun: aws.Bool(true)})
	requireAPIError(t, "ModifySnapshotTier dry run", err, "DryRunOperation")
	_, err = c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), TemporaryRestoreDays: aws.Int32(1)})
	requireAPIError(t, "RestoreSnapshotTier of a standard snapshot", err, "IncorrectState")
	_, err = c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), TemporaryRestoreDays: aws.Int32(1), PermanentRestore: aws.Bool(true)})
	requireAPIError(t, "RestoreSnapshotTier with both", err, "InvalidParameterCombination")
	_, err = c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID)})
	requireAPIError(t, "RestoreSnapshotTier with neither", err, "MissingParameter")
	_, err = c.RestoreSnapshotTier(sdkCtx(t), &awsec2.RestoreSnapshotTierInput{SnapshotId: aws.String(snapID), TemporaryRestoreDays: aws.Int32(181)})
	requireAPIError(t, "RestoreSnapshotTier for 181 days", err, "InvalidParameterValue")
}

// writeRegions writes random data into a few regions of the volume file
// at path and returns them.
func writeRegions(t *testing.T, path string, seed int64) []tierRegion {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	regions := []tierRegion{{off: 0, data: make([]byte, 4*mib)}, {off: 300 * mib, data: make([]byte, 2*mib)}, {off: 1023 * mib, data: make([]byte, mib)}}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range regions {
		rng.Read(r.data)
		if _, err := f.WriteAt(r.data, r.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// A zero region between them, read back too.
	return append(regions, tierRegion{off: 100 * mib, data: make([]byte, mib)})
}

// requireVolumeMatches creates a volume from snapshot id and compares its
// regions with want.
func requireVolumeMatches(t *testing.T, c *awsec2.Client, d *daemon, id string, want []tierRegion) {
	t.Helper()
	vol, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: aws.String(id), AvailabilityZone: aws.String("us-east-1a")})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(d.volumePath(aws.ToString(vol.VolumeId)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range want {
		got := make([]byte, len(r.data))
		if _, err := f.ReadAt(got, r.off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, r.data) {
			t.Fatalf("volume %s from %s: %d bytes at %d differ from the data snapshotted", aws.ToString(vol.VolumeId), id, len(got), r.off)
		}
	}
}

func requireVolumeRefused(t *testing.T, c *awsec2.Client, id string) {
	t.Helper()
	_, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: aws.String(id), AvailabilityZone: aws.String("us-east-1a")})
	requireAPIError(t, "CreateVolume from an archived snapshot", err, "IncorrectState")
}

func describeSnapshot(t *testing.T, c *awsec2.Client, id string) types.Snapshot {
	t.Helper()
	out, err := c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s = %+v, %v", id, out, err)
	}
	return out.Snapshots[0]
}

func snapshotTier(t *testing.T, c *awsec2.Client, id string) types.StorageTier {
	return describeSnapshot(t, c, id).StorageTier
}

// waitTierStatus polls DescribeSnapshotTierStatus (filtered on the
// snapshot) until its last operation has status want.
func waitTierStatus(t *testing.T, c *awsec2.Client, id string, want types.TieringOperationStatus) types.SnapshotTierStatus {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := c.DescribeSnapshotTierStatus(sdkCtx(t), &awsec2.DescribeSnapshotTierStatusInput{
			Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: []string{id}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.SnapshotTierStatuses) != 1 {
			t.Fatalf("DescribeSnapshotTierStatus for %s: %d items", id, len(out.SnapshotTierStatuses))
		}
		st := out.SnapshotTierStatuses[0]
		switch st.LastTieringOperationStatus {
		case want:
			return st
		case types.TieringOperationStatusArchivalFailed, types.TieringOperationStatusTemporaryRestoreFailed, types.TieringOperationStatusPermanentRestoreFailed:
			t.Fatalf("%s: %s: %s", id, st.LastTieringOperationStatus, aws.ToString(st.LastTieringOperationStatusDetail))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last tiering operation %s, want %s", id, st.LastTieringOperationStatus, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNoData waits until the standard store holds no data objects (the
// collector runs a quarter of --gc-grace apart and keeps what is younger
// than it).
func waitNoData(t *testing.T, st snapstore.Store) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		n := 0
		for _, p := range []string{snapfmt.SegmentPrefix, snapfmt.PackPrefix, snapfmt.ChunkPrefix} {
			if err := st.List(context.Background(), p, func(snapstore.ObjectInfo) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d data objects still in the standard store %s after archiving", n, st)
		}
		time.Sleep(time.Second)
	}
}
