package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdlm "github.com/aws/aws-sdk-go-v2/service/dlm"
	dlmtypes "github.com/aws/aws-sdk-go-v2/service/dlm/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// dlmSocketClient is the AWS SDK's DLM client, unmodified, on the daemon's
// unix socket, unsigned, without retries.
func dlmSocketClient(d *daemon) *awsdlm.Client {
	return awsdlm.New(awsdlm.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       sdkHTTPClient(unixDialer(d.Socket)),
		RetryMaxAttempts: 1,
	})
}

// testClock is the daemon's lifecycle clock (COWVOL_TEST_LIFECYCLE_CLOCK):
// set moves it to a time, from which it runs on in real time.
type testClock struct{ path string }

func (c testClock) set(t *testing.T, at time.Time) {
	t.Helper()
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(at.UTC().Format(time.RFC3339)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		t.Fatal(err)
	}
}

// policySnapshots returns, by volume, the IDs of the snapshots the policy
// made (its aws:dlm: tag), oldest first.
func policySnapshots(t *testing.T, c *awsec2.Client, policyID string) map[string][]types.Snapshot {
	t.Helper()
	by, err := tryPolicySnapshots(t, c, policyID)
	if err != nil {
		t.Fatal(err)
	}
	return by
}

func tryPolicySnapshots(t *testing.T, c *awsec2.Client, policyID string) (map[string][]types.Snapshot, error) {
	out, err := c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("tag:aws:dlm:lifecycle-policy-id"), Values: []string{policyID}}}})
	if err != nil {
		return nil, err
	}
	by := map[string][]types.Snapshot{}
	for _, s := range out.Snapshots {
		by[aws.ToString(s.VolumeId)] = append(by[aws.ToString(s.VolumeId)], s)
	}
	for _, ss := range by {
		slices.SortFunc(ss, func(a, b types.Snapshot) int { return aws.ToTime(a.StartTime).Compare(aws.ToTime(b.StartTime)) })
	}
	return by, nil
}

// waitSnapshots polls until ok accepts the policy's snapshots (the
// scheduler works in the background; its clock says when, not the test).
// A poll that fails fails the test: the "use of closed network connection"
// after an HTTP 200 once seen here under load was the SDK's (see
// sdk_http_test.go), which sdkHTTPClient avoids.
func waitSnapshots(t *testing.T, d *daemon, policyID, what string, ok func(map[string][]types.Snapshot) bool) map[string][]types.Snapshot {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	c := sdkClient(d)
	for {
		by, err := tryPolicySnapshots(t, c, policyID)
		if err != nil {
			t.Fatal(err)
		}
		if ok(by) {
			return by
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: the policy's snapshots are %v", what, snapshotIDs(by))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func snapshotIDs(by map[string][]types.Snapshot) map[string][]string {
	out := map[string][]string{}
	for v, ss := range by {
		for _, s := range ss {
			out[v] = append(out[v], aws.ToString(s.SnapshotId))
		}
	}
	return out
}

// eachHas reports whether each of vols has n snapshots.
func eachHas(vols []string, n int) func(map[string][]types.Snapshot) bool {
	return func(by map[string][]types.Snapshot) bool {
		for _, v := range vols {
			if len(by[v]) != n {
				return false
			}
		}
		return true
	}
}

// TestLifecyclePolicyRunsAcrossRestart: a policy every minute (the
// test-only flag) over three tagged volumes, retention of two, driven by
// the SDK's DLM client, on the daemon's test clock. The first run makes
// one snapshot of each tagged volume; the daemon stops and stays down
// over four scheduled runs; started again, it makes one snapshot for the
// missed runs (not four), then the next run's, and retention deletes the
// oldest, into the Recycle Bin (a rule made before the first run matches
// the policy's tags), from which each comes back byte-exact.
func TestLifecyclePolicyRunsAcrossRestart(t *testing.T) {
	requirePrereqs(t)
	t.Parallel() // mostly waiting (grace periods, retention, schedules): with the other long waiters
	clock := testClock{path: filepath.Join(t.TempDir(), "clock")}
	t0 := time.Date(2030, 1, 1, 0, 0, 20, 0, time.UTC)
	clock.set(t, t0)
	d := startDaemon(t, withDaemonArgs("--test-lifecycle-minutes"), withEnv("COWVOL_TEST_LIFECYCLE_CLOCK="+clock.path))
	ec2c, dlmc := sdkClient(d), dlmSocketClient(d)

	var vols []string
	patterns := map[string][]byte{}
	for i, name := range []string{"db", "web", "logs"} {
		v := d.createVolume(t, "64MiB", "backup=yes", "Name="+name).VolumeId
		vols = append(vols, v)
		// Data the first run's snapshot holds (for a restore check).
		patterns[v] = bytes.Repeat([]byte{byte('a' + i)}, 4096)
		writeAt(t, d.volumePath(v), patterns[v], 0)
	}
	other := d.createVolume(t, "64MiB", "backup=no").VolumeId

	out, err := dlmc.CreateLifecyclePolicy(sdkCtx(t), &awsdlm.CreateLifecyclePolicyInput{
		Description:      aws.String("every minute keep two"),
		ExecutionRoleArn: aws.String("arn:aws:iam::111122223333:role/AWSDataLifecycleManagerDefaultRole"),
		State:            dlmtypes.SettablePolicyStateValuesEnabled,
		PolicyDetails: &dlmtypes.PolicyDetails{
			PolicyType:    dlmtypes.PolicyTypeValuesEbsSnapshotManagement,
			ResourceTypes: []dlmtypes.ResourceTypeValues{dlmtypes.ResourceTypeValuesVolume},
			TargetTags:    []dlmtypes.Tag{{Key: aws.String("backup"), Value: aws.String("yes")}},
			Schedules: []dlmtypes.Schedule{{
				Name:       aws.String("minutely"),
				CopyTags:   aws.Bool(true),
				TagsToAdd:  []dlmtypes.Tag{{Key: aws.String("made-by"), Value: aws.String("dlm")}},
				CreateRule: &dlmtypes.CreateRule{Interval: aws.Int32(1), IntervalUnit: "MINUTES"},
				RetainRule: &dlmtypes.RetainRule{Count: aws.Int32(2)},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	policyID := aws.ToString(out.PolicyId)
	// What retention deletes goes to the Recycle Bin for a day.
	sdkRule(t, rbinSocketClient(d), 1, "made-by", "dlm")

	// Run 1 at 00:01:00 (the clock passes it 10s after this).
	clock.set(t, t0.Add(30*time.Second))
	first := waitSnapshots(t, d, policyID, "the first run", eachHas(vols, 1))
	for _, v := range vols {
		tags := sdkTags(first[v][0].Tags)
		if tags["aws:dlm:lifecycle-schedule-name"] != "minutely" || tags["made-by"] != "dlm" || tags["backup"] != "yes" || tags["Name"] == "" {
			t.Fatalf("%s: snapshot tags %v", v, tags)
		}
	}
	if by := policySnapshots(t, ec2c, policyID); len(by[other]) != 0 {
		t.Fatalf("the untagged volume %s has the policy's snapshots %v", other, snapshotIDs(by))
	}

	// Down over the runs of 00:02 to 00:05; up again at 00:05:20.
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	clock.set(t, t0.Add(5*time.Minute))
	d.restart(t)
	ec2c, dlmc = sdkClient(d), dlmSocketClient(d) // no connection kept to the old server
	got, err := dlmc.GetLifecyclePolicy(sdkCtx(t), &awsdlm.GetLifecyclePolicyInput{PolicyId: out.PolicyId})
	if err != nil || got.Policy.State != dlmtypes.GettablePolicyStateValuesEnabled {
		t.Fatalf("the policy after the restart: %v %+v", err, got)
	}
	missed := waitSnapshots(t, d, policyID, "the missed run, once", eachHas(vols, 2))
	for _, v := range vols {
		if aws.ToString(missed[v][0].SnapshotId) != aws.ToString(first[v][0].SnapshotId) {
			t.Fatalf("%s: the first run's snapshot is gone before retention needed it: %v", v, snapshotIDs(missed))
		}
	}

	// Run of 00:06: a third snapshot each, and retention deletes the
	// oldest (the first run's).
	final := waitSnapshots(t, d, policyID, "the 00:06 run and retention", func(by map[string][]types.Snapshot) bool {
		for _, v := range vols {
			if len(by[v]) != 2 || aws.ToString(by[v][0].SnapshotId) == aws.ToString(first[v][0].SnapshotId) {
				return false
			}
		}
		return true
	})
	for _, v := range vols {
		expiredID := aws.ToString(first[v][0].SnapshotId)
		_, err := ec2c.DescribeSnapshots(sdkCtx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{expiredID}})
		requireAPIError(t, "DescribeSnapshots of the expired "+expiredID, err, "InvalidSnapshot.NotFound")
		if aws.ToString(final[v][0].SnapshotId) != aws.ToString(missed[v][1].SnapshotId) {
			t.Fatalf("%s: kept %v, want the missed run's and the 00:06 run's", v, snapshotIDs(final))
		}
	}
	// The policy's snapshots are real ones: a volume made of each kept
	// snapshot holds what its volume held.
	for _, v := range vols {
		snap := aws.ToString(final[v][0].SnapshotId)
		d.waitSnapshotCompleted(t, snap)
		var out struct{ VolumeId string }
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap), &out)
		requireContent(t, d.volumePath(out.VolumeId), patterns[v])
	}
	// Retention deleted into the Recycle Bin (the rule made before the
	// first run, kept across the restart): the first run's snapshots are
	// listed there, and RestoreSnapshotFromRecycleBin brings each back
	// with its ID, byte-exact. The policy stays enabled: as DLM's, its
	// retention by count runs when it creates a snapshot (the test's clock
	// stands still from here), so a restored snapshot, which keeps the
	// policy's tags, is not deleted again in between.
	var expired []string
	for _, v := range vols {
		expired = append(expired, aws.ToString(first[v][0].SnapshotId))
	}
	slices.Sort(expired)
	if got := binList(t, ec2c); !slices.Equal(got, expired) {
		t.Fatalf("recycle bin %v, want the expired snapshots %v", got, expired)
	}
	for _, v := range vols {
		id := first[v][0].SnapshotId
		if _, err := ec2c.RestoreSnapshotFromRecycleBin(sdkCtx(t), &awsec2.RestoreSnapshotFromRecycleBinInput{SnapshotId: id}); err != nil {
			t.Fatalf("RestoreSnapshotFromRecycleBin %s: %v", aws.ToString(id), err)
		}
		d.waitSnapshotCompleted(t, aws.ToString(id))
		var out struct{ VolumeId string }
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", aws.ToString(id)), &out)
		requireContent(t, d.volumePath(out.VolumeId), patterns[v])
	}
	if got := binList(t, ec2c); len(got) != 0 {
		t.Fatalf("recycle bin after the restores: %v", got)
	}
}
