package integration

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsrbin "github.com/aws/aws-sdk-go-v2/service/rbin"
	rbintypes "github.com/aws/aws-sdk-go-v2/service/rbin/types"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// rbinSocketClient is the AWS SDK's Recycle Bin client, unmodified, on
// the daemon's socket, unsigned, without retries.
func rbinSocketClient(d *daemon) *awsrbin.Client {
	return awsrbin.New(awsrbin.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       sdkHTTPClient(unixDialer(d.Socket)),
		RetryMaxAttempts: 1,
	})
}

// snapshotObjects are the keys of the data objects (segments, and the
// packs and chunks they name) of snapshot id's manifest in st.
func snapshotObjects(t *testing.T, st snapstore.Store, id string) []string {
	t.Helper()
	b, err := st.Get(context.Background(), snapfmt.ManifestKey(id))
	if err != nil {
		t.Fatal(err)
	}
	m, err := snapfmt.DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, seg := range m.SegmentKeys() {
		sb, err := st.Get(context.Background(), seg)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := snapfmt.SegmentObjects(sb)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(append(keys, seg), objs...)
	}
	if len(keys) == 0 {
		t.Fatalf("snapshot %s names no data objects", id)
	}
	return keys
}

// existing counts the keys that are in st.
func existing(st snapstore.Store, keys []string) int {
	n := 0
	for _, k := range keys {
		if ok, _ := st.Exists(context.Background(), k); ok {
			n++
		}
	}
	return n
}

func sdkRule(t *testing.T, c *awsrbin.Client, days int32, key, value string) string {
	t.Helper()
	out, err := c.CreateRule(sdkCtx(t), &awsrbin.CreateRuleInput{
		ResourceType:    rbintypes.ResourceTypeEbsSnapshot,
		RetentionPeriod: &rbintypes.RetentionPeriod{RetentionPeriodValue: aws.Int32(days), RetentionPeriodUnit: rbintypes.RetentionPeriodUnitDays},
		ResourceTags:    []rbintypes.ResourceTag{{ResourceTagKey: aws.String(key), ResourceTagValue: aws.String(value)}},
		Description:     aws.String("retain " + key + "=" + value),
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Identifier)
}

// taggedVolumeSnapshot fills a new volume with data, snapshots it with tag
// key=value (none if key is empty) and waits for completed; it returns the
// snapshot, the volume and the volume's SHA-256.
func taggedVolumeSnapshot(t *testing.T, d *daemon, c *awsec2.Client, seed uint64, key, value string) (snap, vol, sum string) {
	t.Helper()
	v := d.createVolume(t, "64MiB")
	fillVolume(t, d.volumePath(v.VolumeId), seed, 8<<20)
	sum = fileSHA256(t, d.volumePath(v.VolumeId))
	in := &awsec2.CreateSnapshotInput{VolumeId: aws.String(v.VolumeId), Description: aws.String("rbin test")}
	if key != "" {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot,
			Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(value)}}}}
	}
	out, err := c.CreateSnapshot(sdkCtx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	d.waitSnapshotCompleted(t, aws.ToString(out.SnapshotId))
	return aws.ToString(out.SnapshotId), v.VolumeId, sum
}

func binList(t *testing.T, c *awsec2.Client) []string {
	t.Helper()
	out, err := c.ListSnapshotsInRecycleBin(sdkCtx(t), &awsec2.ListSnapshotsInRecycleBinInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Snapshots {
		ids = append(ids, aws.ToString(s.SnapshotId))
	}
	slices.Sort(ids)
	return ids
}

// TestRecycleBinAcrossHosts: two daemons share a directory snapshot store.
// On A, rules by tag (durable across a restart) send deleted snapshots to
// the recycle bin; both hosts list them; A stops, and B's garbage
// collection keeps the data of the one still retained while it deletes
// the expired one and its data; B restores the retained one with its ID
// and a volume made from it is byte-exact. All through the AWS SDK's rbin
// and ec2 clients. A retention "day" is a second here (--recycle-bin-day).
func TestRecycleBinAcrossHosts(t *testing.T) {
	requirePrereqs(t)
	t.Parallel() // mostly waiting (grace periods, retention, schedules): with the other long waiters
	storeDir := filepath.Join(t.TempDir(), "store")
	st, err := snapstore.OpenDir(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	args := withDaemonArgs("--snapshot-store", "file://"+storeDir, "--recycle-bin-day", "1s", "--gc-grace", "1m")
	a, b := startDaemon(t, args), startDaemon(t, args)
	ec2A, ec2B, rbinA := sdkClient(a), sdkClient(b), rbinSocketClient(a)
	var keepRule string
	var kept, short, plain, keptSum string
	var keptObjs, shortObjs []string

	step(t, "create rules by tag; they survive a restart", func(t *testing.T) {
		keepRule = sdkRule(t, rbinA, 3600, "backup", "keep") // an hour
		sdkRule(t, rbinA, 20, "backup", "short")             // 20 seconds
		if err := a.stop(t); err != nil {
			t.Fatal(err)
		}
		a.restart(t)
		out, err := rbinA.ListRules(sdkCtx(t), &awsrbin.ListRulesInput{ResourceType: rbintypes.ResourceTypeEbsSnapshot})
		if err != nil || len(out.Rules) != 2 {
			t.Fatalf("ListRules after a restart: %+v, %v", out, err)
		}
		got, err := rbinA.GetRule(sdkCtx(t), &awsrbin.GetRuleInput{Identifier: aws.String(keepRule)})
		if err != nil || aws.ToInt32(got.RetentionPeriod.RetentionPeriodValue) != 3600 || got.Status != rbintypes.RuleStatusAvailable {
			t.Fatalf("GetRule after a restart: %+v, %v", got, err)
		}
	})

	step(t, "snapshots tagged keep, short and none; their volumes deleted", func(t *testing.T) {
		var vols [3]string
		kept, vols[0], keptSum = taggedVolumeSnapshot(t, a, ec2A, 1, "backup", "keep")
		short, vols[1], _ = taggedVolumeSnapshot(t, a, ec2A, 2, "backup", "short")
		plain, vols[2], _ = taggedVolumeSnapshot(t, a, ec2A, 3, "", "")
		keptObjs, shortObjs = snapshotObjects(t, st, kept), snapshotObjects(t, st, short)
		for _, v := range vols {
			if _, err := ec2A.DeleteVolume(sdkCtx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(v)}); err != nil {
				t.Fatal(err)
			}
		}
	})

	step(t, "delete-snapshot: the tagged ones are in the bin on both hosts, none is described", func(t *testing.T) {
		for _, id := range []string{kept, short, plain} {
			if _, err := ec2A.DeleteSnapshot(sdkCtx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{kept, short}
		slices.Sort(want)
		for _, c := range []*awsec2.Client{ec2A, ec2B} {
			if got := binList(t, c); !slices.Equal(got, want) {
				t.Fatalf("bin = %v, want %v", got, want)
			}
		}
		out, err := ec2A.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
		if err != nil || len(out.Snapshots) != 0 {
			t.Fatalf("DescribeSnapshots after the deletions: %+v, %v", out.Snapshots, err)
		}
		_, err = ec2A.RestoreSnapshotFromRecycleBin(sdkCtx(t), &awsec2.RestoreSnapshotFromRecycleBinInput{SnapshotId: aws.String(plain)})
		requireAPIError(t, "RestoreSnapshotFromRecycleBin of a snapshot deleted for good", err, "InvalidSnapshot.NotFound")
	})

	step(t, "A stops; B's collection deletes the expired snapshot's data, keeps the retained one's", func(t *testing.T) {
		if err := a.stop(t); err != nil {
			t.Fatal(err)
		}
		// B collects once a grace period (1m); the short snapshot's
		// retention ends after 20s and its data is past the grace
		// period a minute after it was stored.
		deadline := time.Now().Add(5 * time.Minute)
		for existing(st, shortObjs) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the expired snapshot's data is still stored (%d of %d objects)\n%s", existing(st, shortObjs), len(shortObjs), b.logTail(30))
			}
			time.Sleep(2 * time.Second)
		}
		if n := existing(st, keptObjs); n != len(keptObjs) {
			t.Fatalf("B's collection took %d of the %d objects of the snapshot still in the bin", len(keptObjs)-n, len(keptObjs))
		}
		if got := binList(t, ec2B); !slices.Equal(got, []string{kept}) {
			t.Fatalf("bin after expiry = %v, want [%s]", got, kept)
		}
		_, err := ec2B.RestoreSnapshotFromRecycleBin(sdkCtx(t), &awsec2.RestoreSnapshotFromRecycleBinInput{SnapshotId: aws.String(short)})
		requireAPIError(t, "RestoreSnapshotFromRecycleBin of an expired snapshot", err, "InvalidSnapshot.NotFound")
	})

	step(t, "B restores the retained snapshot: same ID, a volume from it is byte-exact", func(t *testing.T) {
		out, err := ec2B.RestoreSnapshotFromRecycleBin(sdkCtx(t), &awsec2.RestoreSnapshotFromRecycleBinInput{SnapshotId: aws.String(kept)})
		if err != nil || aws.ToString(out.SnapshotId) != kept || out.State != types.SnapshotStateCompleted {
			t.Fatalf("RestoreSnapshotFromRecycleBin = %+v, %v", out, err)
		}
		if got := binList(t, ec2B); len(got) != 0 {
			t.Fatalf("bin after the restore = %v", got)
		}
		ds, err := ec2B.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{kept}})
		if err != nil || len(ds.Snapshots) != 1 || sdkTags(ds.Snapshots[0].Tags)["backup"] != "keep" {
			t.Fatalf("DescribeSnapshots of the restored snapshot: %+v, %v", ds, err)
		}
		v, err := ec2B.CreateVolume(sdkCtx(t), &awsec2.CreateVolumeInput{SnapshotId: aws.String(kept), AvailabilityZone: aws.String("us-east-1a")})
		if err != nil {
			t.Fatal(err)
		}
		if got := fileSHA256(t, b.volumePath(aws.ToString(v.VolumeId))); got != keptSum {
			t.Fatalf("volume from the restored snapshot: SHA-256 %s, want %s", got, keptSum)
		}
	})
}
