package control

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestForeignSnapshotsHiddenUntilShared: as on EC2, another account's
// snapshot in a shared store is not in DescribeSnapshots' answer (even
// when named: left out, not an error) and does not exist for CreateVolume
// and CopySnapshot (InvalidSnapshot.NotFound) until its owner gives this
// account createVolumePermission; then it is listed and restorable.
func TestForeignSnapshotsHiddenUntilShared(t *testing.T) {
	store, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "shared"))
	if err != nil {
		t.Fatal(err)
	}
	theirs := newTestEnvWith(t, cow.Options{SnapshotStore: store, AccountID: "111111111111"}, Options{AccountID: "111111111111"})
	ours := newTestEnvWith(t, cow.Options{SnapshotStore: store, AccountID: "222222222222", CatalogInterval: 20 * time.Millisecond},
		Options{AccountID: "222222222222"})
	vol := theirs.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	snap := theirs.snapshotOf(t, vol)
	ctx := context.Background()
	// Our engine knows the snapshot (the store's catalogue), so what
	// follows tests the permission, not the catalogue's refresh.
	waitFor(t, "our catalogue lists their snapshot", func() bool {
		infos, err := ours.engine.DescribeSnapshots(ctx)
		return err == nil && slices.ContainsFunc(infos, func(si cow.SnapshotInfo) bool { return si.ID == snap })
	})

	c := sdkClientOf(ours)
	listed := func(in *awsec2.DescribeSnapshotsInput) []string {
		t.Helper()
		out, err := c.DescribeSnapshots(ctx, in)
		if err != nil {
			t.Fatalf("DescribeSnapshots: %v", err)
		}
		var ids []string
		for _, s := range out.Snapshots {
			ids = append(ids, aws.ToString(s.SnapshotId))
		}
		return ids
	}
	if ids := listed(&awsec2.DescribeSnapshotsInput{}); slices.Contains(ids, snap) {
		t.Errorf("unshared: DescribeSnapshots lists %v, with their snapshot", ids)
	}
	if ids := listed(&awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}); len(ids) != 0 {
		t.Errorf("unshared, named: DescribeSnapshots lists %v, want nothing", ids)
	}
	notFound := func(what string, err error) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != CodeInvalidSnapshotNotFound {
			t.Errorf("%s of an unshared snapshot: %v, want %s", what, err, CodeInvalidSnapshotNotFound)
		}
	}
	_, err = c.CreateVolume(ctx, &awsec2.CreateVolumeInput{SnapshotId: aws.String(snap), AvailabilityZone: aws.String(ZoneName(DefaultRegion))})
	notFound("CreateVolume", err)
	_, err = c.CopySnapshot(ctx, &awsec2.CopySnapshotInput{SourceSnapshotId: aws.String(snap), SourceRegion: aws.String(DefaultRegion)})
	notFound("CopySnapshot", err)

	_, err = sdkClientOf(theirs).ModifySnapshotAttribute(ctx, &awsec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: []string{"222222222222"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "their snapshot listed once shared", func() bool { return slices.Contains(listed(&awsec2.DescribeSnapshotsInput{}), snap) })
	if ids := listed(&awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}); len(ids) != 1 {
		t.Errorf("shared, named: DescribeSnapshots lists %v, want %s", ids, snap)
	}
	if _, err := c.CreateVolume(ctx, &awsec2.CreateVolumeInput{SnapshotId: aws.String(snap), AvailabilityZone: aws.String(ZoneName(DefaultRegion))}); err != nil {
		t.Errorf("CreateVolume of a shared snapshot: %v", err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
