package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// testLockDay is the daemons' --test-lock-day: a lock day is this long, so
// a one-day lock expires within the test. Locks whose refusals the test
// checks are many days long, so a slow machine cannot see them expire
// under the checks.
const testLockDay = "3s"

// Two hosts of one account share a directory snapshot store. A snapshot
// locked in compliance mode on host A survives DeleteSnapshot from root on
// A (the AWS SDK over the socket, as root) and from host B, which reads
// the lock from the store, and after A restarts; one locked for a (short) day is deletable from
// host B once its lock has expired. A governance lock: delete refused,
// unlock-snapshot, delete works (the cowvol CLI verbs).
func TestSnapshotLocksAcrossHosts(t *testing.T) {
	requirePrereqs(t)
	store := t.TempDir()
	args := []string{"--snapshot-store", "file://" + store, "--test-lock-day", testLockDay}
	a := startDaemon(t, withDaemonArgs(args...))
	b := startDaemon(t, withDaemonArgs(args...))
	ca, cb := sdkClient(a), sdkClient(b)
	vol := a.createVolume(t, "64MiB")
	fillVolume(t, a.volumePath(vol.VolumeId), 4, mib)
	snaps := map[string]snapshot{}
	for _, name := range []string{"long", "short", "governance"} {
		s := a.createSnapshot(t, vol.VolumeId, "--description", name)
		a.waitSnapshotCompleted(t, s.SnapshotId)
		snaps[name] = s
	}
	long, short := snaps["long"].SnapshotId, snaps["short"].SnapshotId

	step(t, "host A: lock-snapshot compliance (100 days; one day for another) with the SDK", func(t *testing.T) {
		out, err := ca.LockSnapshot(sdkCtx(t), &awsec2.LockSnapshotInput{SnapshotId: aws.String(long),
			LockMode: types.LockModeCompliance, LockDuration: aws.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		if out.LockState != types.LockStateCompliance || aws.ToInt32(out.LockDuration) != 100 || out.LockExpiresOn == nil {
			t.Fatalf("LockSnapshot answered %+v", out)
		}
		requireRequestID(t, "LockSnapshot", out.ResultMetadata)
		if _, err := ca.LockSnapshot(sdkCtx(t), &awsec2.LockSnapshotInput{SnapshotId: aws.String(short),
			LockMode: types.LockModeCompliance, LockDuration: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	})

	step(t, "host A (root) and host B: DeleteSnapshot refused with SnapshotLocked; unlock refused", func(t *testing.T) {
		_, err := ca.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(long)})
		requireAPIError(t, "DeleteSnapshot on A", err, "SnapshotLocked")
		_, err = cb.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(long)})
		requireAPIError(t, "DeleteSnapshot on B", err, "SnapshotLocked")
		_, err = cb.UnlockSnapshot(sdkCtx(t), &awsec2.UnlockSnapshotInput{SnapshotId: aws.String(long)})
		requireAPIError(t, "UnlockSnapshot on B", err, "SnapshotLocked")
		_, err = ca.LockSnapshot(sdkCtx(t), &awsec2.LockSnapshotInput{SnapshotId: aws.String(long),
			LockMode: types.LockModeCompliance, LockDuration: aws.Int32(50)})
		requireAPIError(t, "shorten on A", err, "SnapshotLocked")
	})

	step(t, "the snapshot is intact: completed on A, its manifest in the store", func(t *testing.T) {
		got := a.describeSnapshots(t, "--snapshot-ids", long)
		if len(got) != 1 || got[0].State != "completed" {
			t.Fatalf("describe-snapshots: %+v", got)
		}
		if _, err := os.Stat(filepath.Join(store, "snapshots", long, "manifest")); err != nil {
			t.Fatal(err)
		}
	})

	step(t, "host A restarted: DeleteSnapshot still refused (the lock lives in the store)", func(t *testing.T) {
		if err := a.stop(t); err != nil {
			t.Fatal(err)
		}
		a.restart(t)
		_, err := sdkClient(a).DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(long)})
		requireAPIError(t, "DeleteSnapshot on A after a restart", err, "SnapshotLocked")
	})

	step(t, "host B sees the lock: describe-locked-snapshots", func(t *testing.T) {
		out, err := cb.DescribeLockedSnapshots(sdkCtx(t), &awsec2.DescribeLockedSnapshotsInput{SnapshotIds: []string{long}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Snapshots) != 1 || out.Snapshots[0].LockState != types.LockStateCompliance ||
			aws.ToString(out.Snapshots[0].OwnerId) != snaps["long"].OwnerId {
			t.Fatalf("DescribeLockedSnapshots on B: %+v", out.Snapshots)
		}
	})

	step(t, "host B: the one-day lock expires, then DeleteSnapshot works", func(t *testing.T) {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
			out, err := cb.DescribeLockedSnapshots(sdkCtx(t), &awsec2.DescribeLockedSnapshotsInput{SnapshotIds: []string{short}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Snapshots) == 1 && out.Snapshots[0].LockState == types.LockStateExpired {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the lock never expired: %+v", out.Snapshots)
			}
		}
		if _, err := cb.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(short)}); err != nil {
			t.Fatalf("DeleteSnapshot on B after expiry: %v", err)
		}
		for _, key := range []string{"manifest", "lock"} {
			if _, err := os.Stat(filepath.Join(store, "snapshots", short, key)); !os.IsNotExist(err) {
				t.Errorf("after deletion, the %s object: %v", key, err)
			}
		}
	})

	step(t, "governance (cowvol CLI): delete refused, unlock-snapshot, delete works", func(t *testing.T) {
		id := snaps["governance"].SnapshotId
		out := a.mustCLI(t, "lock-snapshot", "--snapshot-id", id, "--lock-mode", "governance", "--lock-duration", "30")
		if !strings.Contains(out, `"LockState": "governance"`) {
			t.Errorf("lock-snapshot printed %s", out)
		}
		if _, stderr, code := a.cli(t, "delete-snapshot", "--snapshot-id", id); code == 0 || !strings.Contains(stderr, "SnapshotLocked") {
			t.Fatalf("delete-snapshot of a locked snapshot: exit %d, %s", code, stderr)
		}
		if _, stderr, code := a.cli(t, "lock-snapshot", "--snapshot-id", id, "--lock-mode", "governance", "--lock-duration", "0"); code == 0 ||
			!strings.Contains(stderr, "InvalidParameterValue") {
			t.Errorf("lock-snapshot --lock-duration 0: exit %d, %s", code, stderr)
		}
		a.mustCLI(t, "unlock-snapshot", "--snapshot-id", id)
		a.mustCLI(t, "delete-snapshot", "--snapshot-id", id)
		if _, stderr, code := a.cli(t, "describe-snapshots", "--snapshot-ids", id); code == 0 || !strings.Contains(stderr, "InvalidSnapshot.NotFound") {
			t.Errorf("describe-snapshots of the deleted snapshot: exit %d, %s", code, stderr)
		}
		if got := a.describeSnapshots(t, "--snapshot-ids", long); len(got) != 1 || got[0].State != "completed" {
			t.Errorf("the compliance-locked snapshot: %+v", got)
		}
	})
}
