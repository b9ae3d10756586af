package integration

import (
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// Fast snapshot restores through the AWS SDK's EC2 client, against a
// daemon whose snapshots are in MinIO: a bad zone refuses the call and
// changes nothing; enabling answers enabling (and an unsuccessful item
// for a snapshot that does not exist), then optimizing and enabled follow;
// a volume created from the snapshot becomes available holding its bytes;
// the CLI lists the state, disabling it answers disabling, then disabled.
func TestFastSnapshotRestoreFromS3(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	d := startS3Daemon(t, srv, srv.URL("cowvol-fsr", "snaps"), "111111111111")
	c := sdkClient(d)
	vol := d.createVolume(t, "64MiB")
	data := make([]byte, 64<<20)
	rand.Read(data)
	f, err := os.OpenFile(d.volumePath(vol.VolumeId), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := fileSHA256(t, d.volumePath(vol.VolumeId))
	snap := d.createSnapshot(t, vol.VolumeId)
	d.waitSnapshotCompleted(t, snap.SnapshotId)
	const zone = "us-east-1a"
	states := func(t *testing.T) map[string]string {
		out, err := c.DescribeFastSnapshotRestores(sdkCtx(t), &awsec2.DescribeFastSnapshotRestoresInput{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, f := range out.FastSnapshotRestores {
			if aws.ToString(f.AvailabilityZone) != zone {
				t.Errorf("described in zone %q, want %s", aws.ToString(f.AvailabilityZone), zone)
			}
			m[aws.ToString(f.SnapshotId)] = string(f.State)
		}
		return m
	}
	waitState := func(t *testing.T, want string) {
		deadline := time.Now().Add(time.Minute)
		for states(t)[snap.SnapshotId] != want {
			if time.Now().After(deadline) {
				t.Fatalf("snapshot never %s: %v", want, states(t))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	step(t, "another zone: InvalidParameterValue, nothing enabled", func(t *testing.T) {
		_, err := c.EnableFastSnapshotRestores(sdkCtx(t), &awsec2.EnableFastSnapshotRestoresInput{
			AvailabilityZones: []string{"us-east-1z"}, SourceSnapshotIds: []string{snap.SnapshotId}})
		requireAPIError(t, "EnableFastSnapshotRestores", err, "InvalidParameterValue")
		if m := states(t); len(m) != 0 {
			t.Fatalf("after a refused call: %v", m)
		}
	})
	step(t, "enable: enabling, and unsuccessful for a missing snapshot; then enabled", func(t *testing.T) {
		out, err := c.EnableFastSnapshotRestores(sdkCtx(t), &awsec2.EnableFastSnapshotRestoresInput{
			AvailabilityZones: []string{zone}, SourceSnapshotIds: []string{snap.SnapshotId, "snap-0123456789abcdef0"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Successful) != 1 || aws.ToString(out.Successful[0].SnapshotId) != snap.SnapshotId ||
			out.Successful[0].EnablingTime == nil || aws.ToString(out.Successful[0].OwnerId) != "111111111111" {
			t.Fatalf("successful: %+v", out.Successful)
		}
		if s := out.Successful[0].State; s != types.FastSnapshotRestoreStateCodeEnabling && s != types.FastSnapshotRestoreStateCodeOptimizing && s != types.FastSnapshotRestoreStateCodeEnabled {
			t.Fatalf("enable answered state %s", s)
		}
		if len(out.Unsuccessful) != 1 || len(out.Unsuccessful[0].FastSnapshotRestoreStateErrors) != 1 ||
			aws.ToString(out.Unsuccessful[0].FastSnapshotRestoreStateErrors[0].Error.Code) != "InvalidSnapshot.NotFound" {
			t.Fatalf("unsuccessful: %+v", out.Unsuccessful)
		}
		waitState(t, "enabled")
	})
	step(t, "a volume created from it is available with the snapshot's bytes", func(t *testing.T) {
		cv, err := c.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: aws.String(snap.SnapshotId), AvailabilityZone: aws.String(zone)})
		if err != nil {
			t.Fatal(err)
		}
		if s := cv.State; s != types.VolumeStateCreating && s != types.VolumeStateAvailable {
			t.Fatalf("CreateVolume answered state %s", s)
		}
		if err := awsec2.NewVolumeAvailableWaiter(c).Wait(sdkCtx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(cv.VolumeId)}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := fileSHA256(t, d.volumePath(aws.ToString(cv.VolumeId))); got != want {
			t.Fatalf("the fast restore volume's SHA-256 %s, want %s", got, want)
		}
	})
	step(t, "the CLI lists it enabled, disables it: disabling, then disabled", func(t *testing.T) {
		var listed struct {
			FastSnapshotRestores []struct{ SnapshotId, State, AvailabilityZone string }
		}
		d.mustJSON(t, d.mustCLI(t, "describe-fast-snapshot-restores", "--filters", "Name=state,Values=enabled"), &listed)
		if len(listed.FastSnapshotRestores) != 1 || listed.FastSnapshotRestores[0].SnapshotId != snap.SnapshotId {
			t.Fatalf("describe-fast-snapshot-restores: %+v", listed)
		}
		var res struct {
			Successful []struct{ SnapshotId, State string }
		}
		d.mustJSON(t, d.mustCLI(t, "disable-fast-snapshot-restores", "--availability-zones", zone, "--source-snapshot-ids", snap.SnapshotId), &res)
		if len(res.Successful) != 1 || res.Successful[0].State != "disabling" && res.Successful[0].State != "disabled" {
			t.Fatalf("disable-fast-snapshot-restores: %+v", res)
		}
		waitState(t, "disabled")
	})
}
